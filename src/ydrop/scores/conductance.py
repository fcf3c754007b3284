"""Neuron conductance of many layers in one pass.

Dhamdhere, Sundararajan, Yan, *How important is a neuron?* (ICLR 2019), in the
discretised form of the Y-Drop paper (Eq. 2, ``shared/papers/y-drop.txt``) and of
Captum's ``LayerConductance(method="riemann_trapezoid", n_steps=steps)``:

    Y_k = sum_{i=0}^{steps-1} dF(x_i)/dy_k * (y_k(x_{i+1}) - y_k(x_i)),
    x_i = x' + (i / steps) (x - x'),

F the target logit, y_k the output of unit k of the layer. The (steps + 1)
interpolation points of every sample go through the network as ONE batch and ONE
backward yields the gradient at every requested layer, so scoring L layers costs
less than what Captum pays for one. Inside that pass only the rows Eq. 2 needs are
computed: nothing below the lowest scored layer is recorded for autograd, the
alpha = 0 point of a shared baseline runs once, and the alpha = 1 rows get no
backward (``_lean_layers``); on the CPU, a Linear whose cotangent changes little
from one point to the next (below a linear head only the ReLU pattern changes)
multiplies only the changes (``_row_differences``). When the layers above the
lowest scored one form a chain of Linear and ReLU layers (an MLP, a CNN's FC
head), the backward is written out instead of recorded (``_chain_backward``), and
when the whole model is a plain ``nn.Sequential`` of such layers (the Guide's chain
above an MLP's stem) the forward runs op by op too (``_sequential_pass``).
Like Captum's, the result assumes that the model, in eval mode, treats the
samples of a batch independently. Shapes: inputs (B, *), result {layer: (B, N)},
N the layer's units (channels of a conv map, summed over positions).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache

import torch
from torch import Tensor, nn

from .._validation import check_logits, check_positive_int, check_targets
from ._chain_backward import ChainRecorder, chain_gradients, may_be_chain
from ._hooks import LayerSpec, capture_outputs, eval_mode, resolve_layers, single_call_outputs
from ._path import AFFINE, POOLING, PathRows, interpolated_stem, once_for_shared_start
from ._products import linear
from ._row_differences import rows_times_weight
from ._sequential_pass import GAVE_UP, sequential_pass
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
            _conductance(model, inputs[start:end], baseline[start:end], target[start:end], modules, steps)[0]
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


@lru_cache(maxsize=None)
def _alpha_column(steps: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``_alphas(steps)`` as a tensor, made once per dtype and device (never
    changed in place), so that a scoring step copies nothing to the device."""
    return torch.tensor(_alphas(steps), dtype=dtype, device=device)


def _conductance(
    model: nn.Module, inputs: Tensor, baseline: Tensor, target: Tensor, modules: list[nn.Module], steps: int
) -> tuple[list[Tensor], int]:
    """The computation, model already in eval mode: one forward of the B (steps + 1)
    path rows, one backward (each skipping the rows ``_lean_layers`` names), written
    out when the layers above the lowest scored one form a chain
    (``_chain_backward``), else by autograd. Returns one (B, N) tensor per module,
    in order, and the model's number of classes."""
    batch = inputs.shape[0]
    delta = inputs - baseline
    # Captum's points, rounded as Captum rounds them (a product, then a sum; a
    # fused multiply-add would differ in the last bit), in two broadcast ops.
    alphas = _alpha_column(steps, delta.dtype, delta.device).reshape((-1,) + (1,) * delta.dim())
    # The path owns its storage: the stem (``_lean_layers``) knows its views (an
    # nn.Flatten's output) by their base.
    path = delta.new_empty(((steps + 1) * batch,) + delta.shape[1:])
    points = path.view((steps + 1,) + delta.shape)
    with torch.no_grad():  # the pass differentiates with respect to layer outputs only
        torch.mul(alphas, delta, out=points).add_(baseline)
    layout = PathRows(path, steps + 1, batch, shared_start=batch == 1 or baseline.stride(0) == 0)
    passes = None
    if _may_write_backward(path):
        # Op by op first: its checks cost nothing to repeat, so it is not skipped
        # for a model the module-by-module pass once failed on (a hook since removed).
        passes = _op_by_op_pass(model, path, target, modules, layout)
        if passes is None and _key(modules) not in _NOT_CHAINS.get(model, ()):
            if _tree_may_be_chain(model, modules):
                passes = _pass_without_autograd(model, path, target, modules, layout)
            if passes is None:
                _NOT_CHAINS.setdefault(model, set()).add(_key(modules))
    outputs, grads, classes = passes or _pass_with_autograd(model, path, target, modules, layout)
    results = []
    for output, grad in zip(outputs, grads):
        points = output.detach().unflatten(0, (steps + 1, batch))
        if grad is None:  # the layer does not reach the logits: it conducts nothing
            results.append(per_unit(torch.zeros_like(points[0])))
            continue
        if grad.shape[0] > 1 and grad.stride(0) == 0:
            # The same gradient at every point (a layer above the last ReLU: the
            # head's row of the target class): the sum of the steps telescopes.
            results.append(per_unit(grad[0] * (points[-1] - points[0])))
            continue
        # Left Riemann sum of gradient times the layer's step along the path.
        results.append(per_unit((grad * (points[1:] - points[:-1])).sum(dim=0)))
    return results, classes


# Models (weakly held) and the sets of scored modules for which the layers above
# the lowest scored one are not a chain: they go straight to autograd, so that the
# check (a walk of the module tree, or a forward that failed it) is paid once.
_NOT_CHAINS: weakref.WeakKeyDictionary[nn.Module, set[tuple[int, ...]]] = weakref.WeakKeyDictionary()


# ... and those for which the module tree allows a chain (``may_be_chain``): its walks
# of the tree cost about 5 % of the Guide's fixed cost per pass. Only a hint:
# the forward decides (``ChainRecorder``), so a model changed since cannot mislead it.
_TREE_CHAINS: weakref.WeakKeyDictionary[nn.Module, set[tuple[int, ...]]] = weakref.WeakKeyDictionary()


def _tree_may_be_chain(model: nn.Module, modules: list[nn.Module]) -> bool:
    known, key = _TREE_CHAINS.setdefault(model, set()), _key(modules)
    if key not in known:
        if not may_be_chain(model, modules):
            return False
        known.add(key)
    return True


# ... and those plain nn.Sequential models that the op-by-op pass (``_sequential_pass``)
# gave up on midway (a parameter-free leaf that is not an identity, e.g. Tanh, after
# the products below it ran), so that they do not run twice on every pass.
_NOT_SEQUENTIAL: weakref.WeakKeyDictionary[nn.Module, set[tuple[int, ...]]] = weakref.WeakKeyDictionary()


def _op_by_op_pass(
    model: nn.Module, path: Tensor, target: Tensor, modules: list[nn.Module], layout: PathRows
) -> tuple[list[Tensor], list[Tensor], int] | None:
    key = _key(modules)
    if not isinstance(model, nn.Sequential) or key in _NOT_SEQUENTIAL.get(model, ()):
        return None
    with torch.no_grad():
        passes = sequential_pass(model, path, target, modules, layout)
    if passes is GAVE_UP:
        _NOT_SEQUENTIAL.setdefault(model, set()).add(key)
        return None
    return passes


def _key(modules: list[nn.Module]) -> tuple[int, ...]:
    return tuple(sorted(id(module) for module in modules))


def _may_write_backward(path: Tensor) -> bool:
    """Whether to try the written backward: switched on, not under autocast (whose
    casts only autograd's backward mirrors) or inference mode (no version counters)."""
    return WRITTEN_BACKWARD and not (torch.is_autocast_enabled(path.device.type) or torch.is_inference_mode_enabled())


# Off: every pass goes through autograd (tests compare the two; benchmarks time them).
WRITTEN_BACKWARD = True


def _pass_without_autograd(
    model: nn.Module, path: Tensor, target: Tensor, modules: list[nn.Module], layout: PathRows
) -> tuple[list[Tensor], list[Tensor], int] | None:
    """(outputs (rows, *), gradients (points - 1, B, *), classes) of the scored
    layers from a forward without graph and the backward of ``_chain_backward``;
    None when the layers above the lowest scored one are not a chain it supports."""
    recorder = ChainRecorder(modules)
    with torch.no_grad(), _lean_layers(model, layout, recorder):
        logits = model(path)
    classes = check_logits(logits, target, layout.batch)
    chain = recorder.chain(logits, model)
    if chain is None:
        return None
    with torch.no_grad():
        gradients = chain_gradients(chain, modules, target, layout)
    outputs = {id(call.module): call.output for call in chain}
    return [outputs[id(module)] for module in modules], [gradients[module] for module in modules], classes


def _pass_with_autograd(
    model: nn.Module, path: Tensor, target: Tensor, modules: list[nn.Module], layout: PathRows
) -> tuple[list[Tensor], list[Tensor | None], int]:
    """(outputs (rows, *), gradients (points - 1, B, *) or None for a layer that
    does not reach the logits, classes), by one backward of autograd."""
    with torch.enable_grad():
        # Order matters: the graph starts before the copies protect the recorded
        # outputs from in-place ops further up.
        with _graph_from(modules), capture_outputs(modules, detach_from_inplace=True) as captured, \
                _lean_layers(model, layout):
            logits = model(path)
        classes = check_logits(logits, target, layout.batch)
        outputs = single_call_outputs(modules, captured)
        # The last point's gradient is not in Eq. 2: its logits stay out of the sum.
        rows = layout.rows_with_gradient
        chosen = logits[:rows].gather(1, target.repeat(layout.points - 1).unsqueeze(1)).sum()
        grads = torch.autograd.grad(chosen, outputs, allow_unused=True)
    grads = [None if grad is None else grad[:rows].unflatten(0, (layout.points - 1, layout.batch)) for grad in grads]
    return outputs, grads, classes


@contextmanager
def _graph_from(modules: list[nn.Module]) -> Iterator[None]:
    """Run the forward without autograd until a scored layer returns: the pass
    differentiates with respect to those outputs only, so the network below the
    lowest of them (a CNN's whole feature extractor) needs no graph. Each scored
    output that carries no graph yet becomes a leaf; from the first of them on,
    autograd records."""

    def hook(_module, _inputs, output):
        torch.set_grad_enabled(True)
        if isinstance(output, Tensor) and not output.requires_grad:
            return output.detach().requires_grad_()
        return None

    handles = []
    try:
        with torch.no_grad():
            for module in modules:
                handles.append(module.register_forward_hook(hook))
            yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def _lean_layers(model: nn.Module, layout: PathRows, recorder: ChainRecorder | None = None) -> Iterator[None]:
    """While active, the modules of ``model`` skip the path's redundant rows.

    * The first Linear / Conv, reading the path itself (or a view of it,
      ``nn.Flatten``), sees points b + a (x - b), so its output is
      f(b) + a (f(x) - f(b)): it runs its two end points (f(b) one row when shared)
      and interpolates the rest.
    * Below the graph (``_graph_from``), a module without submodules that has
      weights or pools, fed the path's rows, runs a shared first group once.
    * In the graph, a Linear / Conv fed the path's rows does the same, and its
      backward returns zeros for the last group (``_LeanAffine``).
    All exact up to float rounding; anything else runs as usual. Every module
    must treat rows independently, as in eval mode they do. A ``recorder`` sees
    every call on the path's rows.
    """
    patched = [m for m in model.modules() if next(m.children(), None) is None and "forward" not in m.__dict__]

    def make_forward(module: nn.Module):
        original = type(module).forward
        # What runs a row-wise module on the rows it needs: an exact nn.Linear on the
        # pass's product kernel (``_products``).
        on_rows = _linear_forward if original is nn.Linear.forward else original
        affine = type(module) in AFFINE
        # Worth a copy of the output: layers with weights, and pooling. Elementwise
        # ones (ReLU, dropout in eval mode) cost less than the copy would.
        costly = isinstance(module, POOLING) or next(module.parameters(recurse=False), None) is not None

        def forward(*args, **kwargs):
            inputs = args[0] if len(args) == 1 and not kwargs else None
            if not isinstance(inputs, Tensor) or inputs.dim() == 0:
                return original(module, *args, **kwargs)
            if inputs.shape[0] != layout.rows:  # e.g. a view merging samples with tokens
                return original(module, inputs)
            if recorder is None:
                return on_path_rows(inputs)
            version = inputs._version
            output = on_path_rows(inputs)
            recorder.record(module, inputs, output, version)
            return output

        def on_path_rows(inputs: Tensor):
            if inputs is layout.path or inputs._base is layout.path:
                # Views of the path (nn.Flatten) stay views, for the stem to see.
                return interpolated_stem(module, inputs, layout) if affine else original(module, inputs)
            if not torch.is_grad_enabled() and costly:
                return once_for_shared_start(lambda rows: on_rows(module, rows), inputs, layout)
            if affine and _lean_backward_supported(module):
                return _LeanAffine.apply(inputs, module, on_rows, layout)
            return original(module, inputs)

        return forward

    try:
        for module in patched:
            # Straight into the instance dict: nn.Module.__setattr__'s checks cost
            # more than the rest of entering, on every pass.
            module.__dict__["forward"] = make_forward(module)
        yield
    finally:
        for module in patched:
            module.__dict__.pop("forward", None)


def _linear_forward(module: nn.Linear, rows: Tensor) -> Tensor:
    return linear(rows, module.weight, module.bias)


class _LeanAffine(torch.autograd.Function):
    """An affine layer on the path's rows: forward without the repeats of a shared
    first group, backward without the last group (whose cotangent is zero: the
    target logits of alpha = 1 are not summed). Weight gradients are never made;
    the pass differentiates only with respect to layer outputs."""

    @staticmethod
    def forward(ctx, inputs: Tensor, module: nn.Module, original, layout: PathRows) -> Tensor:
        ctx.module, ctx.layout, ctx.input_shape = module, layout, inputs.shape
        return once_for_shared_start(lambda rows: original(module, rows), inputs, layout)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        rows = ctx.layout.rows_with_gradient
        grad = _input_gradient(
            ctx.module, grad_output[:rows], (rows,) + tuple(ctx.input_shape[1:]), groups=ctx.layout.points - 1
        )
        skipped = grad.new_zeros((ctx.input_shape[0] - rows,) + grad.shape[1:])
        return torch.cat([grad, skipped]), None, None, None


def _lean_backward_supported(module: nn.Module) -> bool:
    """Whether ``_LeanAffine`` can run ``module``: Linear, and Conv whose padding
    torch's input-gradient function takes."""
    if isinstance(module, nn.Linear):
        return True
    return module.padding_mode == "zeros" and not isinstance(module.padding, str)


def _input_gradient(
    module: nn.Module, grad_output: Tensor, input_shape: tuple[int, ...], groups: int
) -> Tensor:
    """The transposed (bias-free) map of ``module`` applied to ``grad_output``, in
    its dtype (under autocast the weights are float32, the cotangent may not be).
    ``grad_output`` holds ``groups`` groups of rows, one per point with a gradient; a
    Linear reads only what changes from one group to the next where that is little
    (``rows_times_weight``: below a linear head, only the ReLU pattern changes)."""
    weight = module.weight.to(grad_output.dtype)
    if isinstance(module, nn.Linear):
        grouped = grad_output.reshape(groups, -1, grad_output.shape[-1])
        return rows_times_weight(grouped, weight).reshape(input_shape)
    conv_input = {1: torch.nn.grad.conv1d_input, 2: torch.nn.grad.conv2d_input, 3: torch.nn.grad.conv3d_input}
    return conv_input[len(module.kernel_size)](
        input_shape, weight, grad_output, module.stride, module.padding, module.dilation, module.groups
    )
