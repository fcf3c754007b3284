"""Neuron conductance of many layers in one pass.

Dhamdhere, Sundararajan, Yan, *How important is a neuron?* (ICLR 2019), in the
discretised form of the Y-Drop paper (Eq. 2, ``shared/papers/y-drop.txt``) and of
Captum's ``LayerConductance(method="riemann_trapezoid", n_steps=steps)``:

    Y_k = sum_{i=0}^{steps-1} dF(x_i)/dy_k * (y_k(x_{i+1}) - y_k(x_i)),
    x_i = x' + (i / steps) (x - x'),

F the target logit, y_k the output of unit k of the layer. The (steps + 1)
interpolation points of every sample go through the network as ONE batch and ONE
backward yields the gradient at every requested layer, so scoring L layers costs
what Captum pays for one. Shapes: inputs (B, *), result {layer: (B, N)}, N the
layer's units (channels of a conv map, summed over positions).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import check_positive_int, check_targets
from ._hooks import LayerSpec, capture_outputs, eval_mode, resolve_layers, single_call_outputs
from ._units import per_unit

__all__ = ["conductance"]


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
        model: maps a batch (B, *) to logits (B, classes). Scored in eval mode
            (dropout off, batch norm on running statistics); every module's
            train/eval flag is restored afterwards.
        inputs: (B, *) batch.
        target: class index per sample, LongTensor (B,) (or one int for all).
        layers: modules of ``model`` (or their qualified names).
        baseline: reference input x'; ``None`` is zeros; a tensor broadcastable
            to ``inputs`` or a number.
        steps: n_c, number of interpolation steps (>= 1); steps + 1 points are run.
        internal_batch_size: at most this many rows per forward (a whole
            sample's steps + 1 points always go together, so at least one sample);
            bounds memory and gives the same numbers.

    Returns:
        ``{layer: Tensor (B, N)}``, signed conductances, keyed by the module.
    """
    if not isinstance(inputs, Tensor) or inputs.dim() < 1:
        raise ValueError(f"inputs must be a tensor of shape (B, ...), got {type(inputs).__name__}")
    steps = check_positive_int("steps", steps)
    target = check_targets("target", target, inputs.shape[0]).to(inputs.device)
    modules = [module for _, module in resolve_layers(model, layers)]
    baseline = _expand_baseline(baseline, inputs)
    if internal_batch_size is None:
        samples_per_pass = max(inputs.shape[0], 1)
    else:
        samples_per_pass = max(1, check_positive_int("internal_batch_size", internal_batch_size) // (steps + 1))
    with eval_mode(model):
        parts = [
            _conductance(model, inputs[start:end], baseline[start:end], target[start:end], modules, steps)
            for start, end in _chunks(inputs.shape[0], samples_per_pass)
        ]
    return {module: torch.cat([part[i] for part in parts]) for i, module in enumerate(modules)}


def _chunks(total: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, total)) for start in range(0, total, size)] or [(0, 0)]


def _expand_baseline(baseline: Tensor | float | None, inputs: Tensor) -> Tensor:
    """``baseline`` as a (B, *) tensor. A baseline shared by every sample (None, a
    number, a tensor without a batch dimension or with batch 1) stays a stride-0
    view, which tells the stem (below) that one row of it is enough."""
    if baseline is None:
        baseline = 0.0
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return inputs.new_full((), float(baseline)).expand_as(inputs)
    if not isinstance(baseline, Tensor):
        raise TypeError(f"baseline must be None, a number or a tensor, got {type(baseline).__name__}")
    try:
        return baseline.to(inputs).expand_as(inputs)
    except RuntimeError:
        raise ValueError(
            f"baseline of shape {tuple(baseline.shape)} does not broadcast to the inputs' "
            f"shape {tuple(inputs.shape)}"
        ) from None


@lru_cache(maxsize=None)
def _alphas(steps: int) -> tuple[float, ...]:
    """The path's points, the same floats as Captum's (computed once per ``steps``,
    so that a scoring step never copies a tensor to the host)."""
    return tuple(torch.linspace(0, 1, steps + 1).tolist())


def _conductance(
    model: nn.Module, inputs: Tensor, baseline: Tensor, target: Tensor, modules: list[nn.Module], steps: int
) -> list[Tensor]:
    """The computation, model already in eval mode: one forward of B (steps + 1)
    rows, one backward. Returns one (B, N) tensor per module, in order."""
    batch = inputs.shape[0]
    alphas = _alphas(steps)
    delta = inputs - baseline
    path = torch.cat([baseline + alpha * delta for alpha in alphas]).requires_grad_()
    shared_baseline = batch == 1 or baseline.stride(0) == 0
    stem = _interpolated_stem(model, path, steps + 1, shared_baseline)
    with torch.enable_grad():
        # Copies protect the recorded outputs from in-place ops further up.
        with capture_outputs(modules, detach_from_inplace=True) as captured, stem:
            logits = model(path)
        if logits.dim() != 2:
            raise ValueError(f"the model must return logits of shape (B, classes), got {tuple(logits.shape)}")
        check_targets("target", target, batch, num_classes=logits.shape[1])
        outputs = single_call_outputs(modules, captured)
        chosen = logits.gather(1, target.repeat(steps + 1).unsqueeze(1)).sum()
        grads = torch.autograd.grad(chosen, outputs, allow_unused=True)
    results = []
    for output, grad in zip(outputs, grads):
        points = output.detach().unflatten(0, (steps + 1, batch))
        if grad is None:  # the layer does not reach the logits: it conducts nothing
            results.append(per_unit(torch.zeros_like(points[0])))
            continue
        grad = grad.unflatten(0, (steps + 1, batch))
        # Left Riemann sum of gradient times the layer's step along the path.
        results.append(per_unit((grad[:-1] * (points[1:] - points[:-1])).sum(dim=0)))
    return results


# The first affine layer that reads the path sees points b + a (x - b): its output
# is f(b) + a (f(x) - f(b)), so two evaluations per sample replace steps + 1.
_AFFINE_STEMS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@contextmanager
def _interpolated_stem(model: nn.Module, path: Tensor, points: int, shared_baseline: bool) -> Iterator[None]:
    """While active, an affine layer (Linear / Conv) whose input is the path
    itself, or a view of it (``nn.Flatten``), computes only its two end points
    and interpolates the rest. Layers fed anything else run as usual. Exact up to
    float rounding; it saves (points - 2) / points of the first layer's work.
    With ``shared_baseline`` (every sample has the same baseline, e.g. the default
    zeros) the start point f(b) is computed for one row and broadcast: the layer
    then costs one row per sample instead of points."""
    patched = [m for m in model.modules() if type(m) in _AFFINE_STEMS and "forward" not in m.__dict__]

    def make_forward(module: nn.Module):
        original = type(module).forward

        def forward(inputs: Tensor) -> Tensor:
            if inputs is not path and inputs._base is not path:
                return original(module, inputs)
            ends = inputs.unflatten(0, (points, -1))
            start = original(module, ends[0][:1] if shared_baseline else ends[0])
            # f(x) - f(b) is the bias-free map of x - b: one product, not two.
            step = _without_bias(module, ends[-1] - ends[0])
            alphas = torch.linspace(0, 1, points, dtype=step.dtype, device=step.device)
            alphas = alphas.reshape((points,) + (1,) * step.dim())
            return (start.unsqueeze(0) + alphas * step.unsqueeze(0)).flatten(0, 1)

        return forward

    try:
        for module in patched:
            module.forward = make_forward(module)
        yield
    finally:
        for module in patched:
            module.__dict__.pop("forward", None)


def _without_bias(module: nn.Module, inputs: Tensor) -> Tensor:
    if isinstance(module, nn.Linear):
        return F.linear(inputs, module.weight)
    return module._conv_forward(inputs, module.weight, None)
