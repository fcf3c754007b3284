"""Gradient x activation: first-order Taylor importance of a unit.

Molchanov et al., *Pruning convolutional neural networks for resource efficient
inference* (ICLR 2017): removing unit y_k changes the target logit F by y_k dF/dy_k
to first order. Signed, like conductance (its one-point case); one forward and one
backward of the scored samples, where conductance runs steps + 1 points of each.
Shapes: inputs (B, *); result {layer: (B, N)}, units along each layer's ``unit_dim``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ._gradients import gradients_along, layer_gradients
from ._hooks import LayerSpec, eval_mode, prepare_call
from ._units import per_unit

__all__ = ["gradxact", "gradxact_along"]


def gradxact(
    model: nn.Module, inputs: Tensor, target: Tensor | int, layers: LayerSpec | Sequence[LayerSpec]
) -> dict[nn.Module, Tensor]:
    """y_k dF/dy_k of every unit of every layer in ``layers``, F the target logit,
    the model in eval mode: ``{layer: (B, N)}``."""
    target, modules = prepare_call(model, inputs, target, layers)
    with eval_mode(model):
        outputs, grads, _ = layer_gradients(model, inputs, target, modules, 1, inputs[:1])
    return dict(zip(modules, _products(modules, outputs, grads)))


def gradxact_along(
    chain: list[nn.Module], start: Tensor, target: Tensor, modules: list[nn.Module], start_module: nn.Module
) -> list[Tensor]:
    """The same from ``start`` (B, *), the output of ``start_module`` (in eval mode),
    through ``chain``, the modules mapping it to the logits (the Guide's pass
    inside the training forward)."""
    outputs, grads, _ = gradients_along(chain, start, target, modules, 1, start_module=start_module)
    return _products(modules, outputs, grads)


def _products(modules: list[nn.Module], outputs: list[Tensor], grads: list) -> list[Tensor]:
    return [
        per_unit(output.detach() * (0 if grad is None else grad[0]), getattr(module, "unit_dim", None))
        for module, output, grad in zip(modules, outputs, grads)
    ]
