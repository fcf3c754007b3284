"""Neuron conductance of many layers in one pass.

Dhamdhere et al., *How important is a neuron?* (ICLR 2019), discretised as in Y-Drop
(Eq. 2) and Captum's ``LayerConductance(method="riemann_trapezoid", n_steps=steps)``:

    Y_k = sum_{i=0}^{steps-1} dF(x_i)/dy_k * (y_k(x_{i+1}) - y_k(x_i)),
    x_i = x' + (i / steps) (x - x'),

F the target logit, y_k unit k's output. The (steps + 1) points of every sample run
as ONE batch, ONE backward gives the gradient at every layer (``_gradients``): L
layers cost less than one of Captum's calls. Assumes that the model in eval mode
treats samples independently. Shapes: inputs (B, *); result {layer: (B, N)}, N the
units along the layer's ``unit_dim``, the other non-batch dimensions summed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._validation import check_positive_int
from ._gradients import gradients_along, layer_gradients
from ._hooks import LayerSpec, eval_mode, prepare_call
from ._units import per_unit

__all__ = ["conductance", "path_points", "riemann_trapezoid", "conductance_above_stem"]


def conductance(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor | int,
    layers: LayerSpec | Sequence[LayerSpec],
    baseline: Tensor | float | None = None,
    steps: int = 5,
    internal_batch_size: int | None = None,
) -> dict[nn.Module, Tensor]:
    """Conductance of every unit of every layer in ``layers`` for the target logit.

    Args:
        model: maps a batch (B, *) to logits (B, classes); scored in eval mode (every
            module's flag restored after).
        inputs: (B, *) batch. target: class per sample, (B,) (or one int for all).
        layers: modules of ``model`` or their names; units along each one's
            ``unit_dim`` attribute when it has one (guided layers), else the default.
        baseline: reference input x': None (zeros), a number or a tensor
            broadcastable to ``inputs``.
        steps: n_c (>= 1); steps + 1 points are run.
        internal_batch_size: at most this many rows per forward (at least one
            sample's steps + 1 points); bounds memory, same numbers.

    Returns:
        ``{layer: Tensor (B, N)}``, signed conductances, keyed by the module.
    """
    target, modules = prepare_call(model, inputs, target, layers)
    steps = check_positive_int("steps", steps)
    baseline = _expand_baseline(baseline, inputs)
    per_pass = inputs.shape[0] or 1
    if internal_batch_size is not None:
        per_pass = max(1, check_positive_int("internal_batch_size", internal_batch_size) // (steps + 1))
    with eval_mode(model):
        parts = [
            model_conductance(model, inputs[start:start + per_pass], baseline[start:start + per_pass],
                              target[start:start + per_pass], modules, steps)[0]
            for start in range(0, max(inputs.shape[0], 1), per_pass)
        ]
    return {module: torch.cat([part[i] for part in parts]) for i, module in enumerate(modules)}


def _expand_baseline(baseline: Tensor | float | None, inputs: Tensor) -> Tensor:
    """``baseline`` as a (B, *) tensor (a shared one stays a broadcast view)."""
    if baseline is None or isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return inputs.new_full((), float(baseline or 0.0)).expand_as(inputs)
    if not isinstance(baseline, Tensor):
        raise TypeError(f"baseline must be None, a number or a tensor, got {type(baseline).__name__}")
    try:
        return baseline.to(inputs).expand_as(inputs)
    except RuntimeError:
        raise ValueError(f"baseline of shape {tuple(baseline.shape)} does not broadcast to the inputs' "
                         f"shape {tuple(inputs.shape)}") from None


def path_points(start: Tensor, end: Tensor, steps: int) -> Tensor:
    """The path's points x' + (i / steps) (x - x'), i = 0 .. steps, point-major:
    ((steps + 1) B, *) rows from ``start`` and ``end`` (B, *). Captum's floats
    (``linspace``) and rounding (a product, then a sum)."""
    if not end.is_floating_point():  # a path between token ids is not one
        raise TypeError(f"conductance interpolates the inputs, so it needs floating-point inputs, got {end.dtype} "
                        "(token ids? use score='gradxact', or score conductance above the embedding)")
    delta = end - start
    alphas = torch.linspace(0, 1, steps + 1, dtype=delta.dtype, device=delta.device)
    points = alphas.reshape((-1,) + (1,) * delta.dim()) * delta + start
    return points.flatten(0, 1)


def riemann_trapezoid(outputs: Tensor, grads: Tensor | None, steps: int, unit_dim: int | None = None) -> Tensor:
    """Eq. 2 from a layer's outputs on the path ((steps + 1) B, *) and the target
    logit's gradient there at the points 0 .. steps - 1, (steps, B, *): the sum of
    gradient times the layer's step, per unit (B, N). A gradient that is the same at
    every point (a stride-0 view) telescopes the sum; None conducts nothing."""
    points = outputs.detach().unflatten(0, (steps + 1, -1))
    if grads is None:
        return per_unit(torch.zeros_like(points[0]), unit_dim)
    if steps > 1 and grads.stride(0) == 0:
        return per_unit(grads[0] * (points[-1] - points[0]), unit_dim)
    return per_unit((grads * (points[1:] - points[:-1])).sum(dim=0), unit_dim)


def model_conductance(
    model: nn.Module, inputs: Tensor, baseline: Tensor, target: Tensor, modules: list[nn.Module], steps: int
) -> tuple[list[Tensor], int]:
    """The computation, model already in eval mode: one (B, N) tensor per module, in
    order, and the model's number of classes."""
    path = path_points(baseline, inputs, steps)
    shared = baseline.stride(0) == 0 and not getattr(model, "per_sample_inputs", False)  # one start point for all
    outputs, grads, classes = layer_gradients(model, path, target, modules, steps, inputs[:1], shared)
    return _scores(outputs, grads, steps, modules), classes


def conductance_above_stem(
    chain: Sequence[nn.Module], stem_output: Tensor, target: Tensor, modules: list[nn.Module], stem: nn.Module
) -> list[Tensor]:
    """Conductance of ``modules`` (inside ``chain``, the modules above the affine
    ``stem``, in eval mode) for the zero baseline, from the stem's output (B, *): an
    affine map's outputs on the model's path interpolate its outputs at the two ends,
    at zero its bias, exactly. The Guide's pass inside the training forward."""
    at_zero = stem_output.new_zeros(())
    if stem.bias is not None:
        shape = (-1,) if isinstance(stem, nn.Linear) else (-1,) + (1,) * (stem_output.dim() - 2)
        at_zero = stem.bias.detach().reshape(shape).to(stem_output.dtype)
    steps = getattr(modules[0], "steps", 5)
    path = path_points(at_zero.expand_as(stem_output), stem_output, steps)
    outputs, grads, _ = gradients_along(chain, path, target, modules, steps, shared=True)
    return _scores(outputs, grads, steps, modules)


def _scores(outputs: list[Tensor], grads: list, steps: int, modules: list[nn.Module]) -> list[Tensor]:
    scores = [riemann_trapezoid(out, grad, steps, getattr(m, "unit_dim", None))
              for out, grad, m in zip(outputs, grads, modules)]
    return [score.to(torch.promote_types(score.dtype, torch.float32)) for score in scores]  # bf16: float32
