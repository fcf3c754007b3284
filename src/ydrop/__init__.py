"""ydrop: importance-guided dropout for PyTorch.

Y-Drop (conductance-guided, Georgiou et al.), Excitation Dropout and Activation
Dropout (Zunino et al.), as drop-in replacements for ``nn.Dropout``, with a
:class:`Guide` that scores every guided layer in one pass per step.
"""

from .layers import ActivationDropout, ExcitationDropout, GuidedDropout, YDrop
from .scores import activation, conductance

__version__ = "0.1.0"

__all__ = [
    "YDrop",
    "ExcitationDropout",
    "ActivationDropout",
    "GuidedDropout",
    "conductance",
    "activation",
    "__version__",
]
