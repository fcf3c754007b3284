"""ydrop: importance-guided dropout for PyTorch.

Y-Drop (conductance-guided, Georgiou et al.), Excitation Dropout and Activation
Dropout (Zunino et al.), as drop-in replacements for ``nn.Dropout``, with a
:class:`Guide` that scores every guided layer in one pass per step.
"""

# scores before layers: the excitation rules name the layer classes, and the
# layers read the activation score; this order loads each module once, fully.
from .scores import (  # isort: skip
    activation, conductance, excitation_backprop, gradxact, register_excitation_rule, register_score,
)
from .guide import Guide
from . import models
from .layers import (
    ActivationDropout,
    CurriculumDropout,
    Dropout,
    ExcitationDropout,
    GuidedDropout,
    InformationDropout,
    guided_layers,
    StandoutDropout,
    YDrop,
    create_dropout,
    information_kl,
)
from .convert import convert  # the function; it shadows the submodule's name on purpose

__version__ = "0.1.0"

# Loaded on first use, so that ``import ydrop`` stays light: ``ydrop.data.load_dataset``,
# ``ydrop.train.TrainConfig``, ``ydrop.analysis.evaluate`` work after ``import ydrop``.
_LAZY_SUBMODULES = ("analysis", "data", "integrations", "train")


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "YDrop",
    "ExcitationDropout",
    "ActivationDropout",
    "GuidedDropout",
    "guided_layers",
    "Guide",
    "Dropout",
    "CurriculumDropout",
    "StandoutDropout",
    "InformationDropout",
    "information_kl",
    "create_dropout",
    "convert",
    "register_score",
    "models",
    "conductance",
    "gradxact",
    "excitation_backprop",
    "register_excitation_rule",
    "activation",
    "__version__",
]
