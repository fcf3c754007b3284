"""Analysis of trained layers: conductance spread, utilisation, conservative units,
robustness to removing units (Y-Drop sec. 6.2-6.3, Excitation Dropout sec. 4.3-4.4),
and how much a layer's rescale shrinks its active units in training (``rescale``).

Finished training runs are rebuilt and analysed by :mod:`ydrop.analysis.runs`, and
reported (tables, figures) by :mod:`ydrop.analysis.report` (``ydrop analyze``). Plots
live in :mod:`ydrop.analysis.plots` (imported on demand: it loads matplotlib).
"""

from .metrics import (
    DEFAULT_TOP_FRACTIONS,
    ConductanceSpread,
    ConservativeResult,
    ConservativeUnits,
    SpreadResult,
    Utilisation,
    UtilisationResult,
    conductance_spread,
    conservative_units,
    feeding_layer,
    spread_from_scores,
    utilisation,
    utilisation_from_scores,
)
from .report import Report, analyze, summarize_analyses, write_report
from .rescale import ScaleResult, train_test_scale
from .robustness import (
    DEFAULT_FRACTIONS,
    DEFAULT_THRESHOLDS,
    RobustnessCurve,
    evaluate,
    peb_threshold_removal,
    random_removal,
    ranked_removal,
    remove_units,
    threshold_masks,
)
from .runs import (
    DEFAULT_CONSERVATIVE_DELTA,
    DEFAULT_REPEATS,
    LoadedRun,
    RunAnalysis,
    analyse_run,
    check_layer,
    default_layer,
    find_runs,
    load_run,
    run_layers,
)

__all__ = [
    "DEFAULT_TOP_FRACTIONS",
    "DEFAULT_FRACTIONS",
    "DEFAULT_THRESHOLDS",
    "SpreadResult",
    "ConductanceSpread",
    "conductance_spread",
    "spread_from_scores",
    "UtilisationResult",
    "Utilisation",
    "utilisation",
    "utilisation_from_scores",
    "ConservativeResult",
    "ConservativeUnits",
    "conservative_units",
    "feeding_layer",
    "ScaleResult",
    "train_test_scale",
    "RobustnessCurve",
    "remove_units",
    "evaluate",
    "random_removal",
    "ranked_removal",
    "peb_threshold_removal",
    "threshold_masks",
    "DEFAULT_REPEATS",
    "DEFAULT_CONSERVATIVE_DELTA",
    "LoadedRun",
    "RunAnalysis",
    "find_runs",
    "load_run",
    "check_layer",
    "run_layers",
    "default_layer",
    "analyse_run",
    "Report",
    "analyze",
    "summarize_analyses",
    "write_report",
]
