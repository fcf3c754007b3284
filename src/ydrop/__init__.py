"""ydrop: importance-guided dropout for PyTorch.

Y-Drop (conductance-guided, Georgiou et al.), Excitation Dropout and Activation
Dropout (Zunino et al.), as drop-in replacements for ``nn.Dropout``, with a
:class:`Guide` that scores every guided layer in one pass per step.
"""

# scores before layers: the excitation rules name the layer classes, and the
# layers read the activation score; this order loads each module once, fully.
from .scores import activation, conductance, excitation_backprop, register_excitation_rule  # isort: skip
from .guide import Guide
from . import models
from .layers import (
    ActivationDropout,
    CurriculumDropout,
    Dropout,
    ExcitationDropout,
    GuidedDropout,
    InformationDropout,
    StandoutDropout,
    YDrop,
    create_dropout,
    information_kl,
)

__version__ = "0.1.0"

__all__ = [
    "YDrop",
    "ExcitationDropout",
    "ActivationDropout",
    "GuidedDropout",
    "Guide",
    "Dropout",
    "CurriculumDropout",
    "StandoutDropout",
    "InformationDropout",
    "information_kl",
    "create_dropout",
    "models",
    "conductance",
    "excitation_backprop",
    "register_excitation_rule",
    "activation",
    "__version__",
]
