"""Training: configs, seeded resumable runs, grids of runs (shardable, locked), sweeps and result tables (DESIGN section 4)."""

from .config import PROTOCOLS, TrainConfig
from .evaluation import loss_and_accuracy
from .grid import finished_results, run_configs, run_grid
from .lock import RunLocked
from .run import RunResult, train_run
from .store import run_dir
from .sweep import summarize_sweep, sweep_configs, sweep_csv, sweep_markdown
from .table import collect_results, plot_validation_curves, summarize, to_csv, to_latex, to_markdown

__all__ = [
    "TrainConfig",
    "PROTOCOLS",
    "train_run",
    "RunResult",
    "loss_and_accuracy",
    "run_dir",
    "run_grid",
    "run_configs",
    "finished_results",
    "RunLocked",
    "sweep_configs",
    "summarize_sweep",
    "sweep_markdown",
    "sweep_csv",
    "collect_results",
    "summarize",
    "to_markdown",
    "to_csv",
    "to_latex",
    "plot_validation_curves",
]
