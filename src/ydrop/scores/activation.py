"""Activation score of Activation Dropout (Zunino et al., *Excitation Dropout*, sec. 5):
p_Act(a_i) = a_i / sum_k a_k over a layer's units, per sample, from its own
(post-ReLU) activations; no backward. Shapes: (B, *) -> (B, N) along ``unit_dim``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._validation import single_call_outputs
from ._hooks import LayerSpec, capture_outputs, eval_mode, resolve_layers
from ._units import normalise_rows, per_unit

__all__ = ["activation_score", "activation"]


def activation_score(activations: Tensor, unit_dim: int | None = None) -> Tensor:
    """Normalised activations, (B, *) -> (B, N), rows summing to 1; negative values
    count as 0, a sample whose units are all zero gets the uniform 1/N."""
    return normalise_rows(per_unit(activations.clamp(min=0), unit_dim))


def activation(
    model: nn.Module, inputs: Tensor, layers: LayerSpec | Sequence[LayerSpec]
) -> dict[nn.Module, Tensor]:
    """p_Act of each layer's output for ``inputs``, in eval mode: {layer: (B, N)}."""
    modules = [module for _, module in resolve_layers(model, layers)]
    with torch.no_grad(), eval_mode(model), capture_outputs(modules) as captured:
        model(inputs)
    outputs = single_call_outputs(modules, captured, model, inputs.shape[0])
    return {module: activation_score(output, getattr(module, "unit_dim", None))
            for module, output in zip(modules, outputs)}
