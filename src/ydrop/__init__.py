"""ydrop: importance-guided dropout for PyTorch.

Y-Drop (conductance-guided, Georgiou et al.), Excitation Dropout and Activation
Dropout (Zunino et al.), as drop-in replacements for ``nn.Dropout``, with a
:class:`Guide` that scores every guided layer in one pass per step.
"""

# scores before layers: the excitation rules name the layer classes, and the
# layers read the activation score; this order loads each module once, fully.
from .scores import activation, conductance, excitation_backprop  # isort: skip
from .guide import Guide
from .layers import ActivationDropout, ExcitationDropout, GuidedDropout, YDrop

__version__ = "0.1.0"

__all__ = [
    "YDrop",
    "ExcitationDropout",
    "ActivationDropout",
    "GuidedDropout",
    "Guide",
    "conductance",
    "excitation_backprop",
    "activation",
    "__version__",
]
