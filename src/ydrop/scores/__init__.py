"""Importance scores of a layer's units, usable on their own (like Captum's).

Every function returns ``{layer: Tensor (B, N)}`` with N the layer's units (the
channels of a conv feature map, summed over positions).
"""

from .activation import activation, activation_score
from .conductance import conductance
from .excitation import excitation_backprop, register_excitation_rule

__all__ = ["conductance", "excitation_backprop", "register_excitation_rule", "activation", "activation_score"]
