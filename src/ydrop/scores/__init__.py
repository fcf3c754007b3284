"""Importance scores, usable on their own (like Captum's): ``{layer: (B, N)}``, N the
units along each layer's ``unit_dim``; the built-in kinds are registered here
exactly as a user registers one (``register_score``).
"""

from ._hooks import eval_mode
from .activation import activation, activation_score
from .conductance import conductance, conductance_above_stem
from .excitation import excitation_along, excitation_backprop, register_excitation_rule
from .gradxact import gradxact, gradxact_along
from .registry import register_score, registered_scores, score_kind


def _conductance_of(model, inputs, target, layers):
    # A Y-Drop layer carries its own n_c; the Guide groups layers by it.
    return conductance(model, inputs, target, layers, steps=getattr(layers[0], "steps", 5))


register_score("conductance", _conductance_of, whole_batch=False, along=conductance_above_stem, anchor="stem")
register_score("gradxact", gradxact, whole_batch=False, along=gradxact_along)
register_score("excitation", excitation_backprop, along=excitation_along)
register_score("activation", lambda model, inputs, target, layers: activation(model, inputs, layers),
               from_input=activation_score)

__all__ = ["conductance", "excitation_backprop", "register_excitation_rule", "activation", "activation_score",
           "gradxact", "register_score", "registered_scores", "score_kind", "eval_mode"]
