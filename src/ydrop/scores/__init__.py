"""Importance scores of a layer's units, usable on their own (like Captum's).

Every function returns ``{layer: Tensor (B, N)}`` with N the layer's units (the
channels of a conv feature map, summed over positions).
"""

from .activation import activation, activation_score
from .conductance import conductance

__all__ = ["conductance", "activation", "activation_score"]
