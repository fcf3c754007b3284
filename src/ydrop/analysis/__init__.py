"""Analysis of trained layers: conductance spread, utilisation, conservative units,
robustness to removing units (Y-Drop sec. 6.2-6.3, Excitation Dropout sec. 4.3-4.4).

Plots live in :mod:`ydrop.analysis.plots` (imported on demand: it loads matplotlib).
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
    spread_from_scores,
    utilisation,
    utilisation_from_scores,
)
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
    "RobustnessCurve",
    "remove_units",
    "evaluate",
    "random_removal",
    "ranked_removal",
    "peb_threshold_removal",
    "threshold_masks",
]
