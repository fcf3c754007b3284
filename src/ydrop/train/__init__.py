"""Training: configs, seeded resumable runs, grids of runs and result tables (DESIGN section 4)."""

from .config import PROTOCOLS, TrainConfig
from .grid import run_grid
from .run import RunResult, train_run
from .store import run_dir
from .table import collect_results, plot_validation_curves, summarize, to_csv, to_latex, to_markdown

__all__ = [
    "TrainConfig",
    "PROTOCOLS",
    "train_run",
    "RunResult",
    "run_dir",
    "run_grid",
    "collect_results",
    "summarize",
    "to_markdown",
    "to_csv",
    "to_latex",
    "plot_validation_curves",
]
