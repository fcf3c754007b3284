"""Excitation Backprop of many layers in one pass.

Zhang et al., *Top-down neural attention by excitation backprop* (IJCV 2018), as in
Zunino et al., *Excitation Dropout* (sec. 3.1, Eq. 1-2), DESIGN section 3. From a
one-hot at the target class, P goes down; through a linear or conv map W of input a,

    P(a_i) = sum_j  a+_i W+_ji / (sum_i' a+_i' W+_ji')  P(a_j),     (Eq. 1-2)

W+ = max(W, 0), no bias, 0/0 = 0, a+ = max(a, 0). ReLU, batch norm, dropout and
ydrop's layers pass P on; max pooling gives it to each winner; average pooling is
linear. One forward, one backward: in eval mode hooks replace each ruled module's
output by an autograd Function (same values, the EB rule backward), so
``autograd.grad(logits, layer outputs, one_hot)`` *is* P. Functional code in a
``forward`` is differentiated as usual (not the EB rule for residual additions).
Shapes: inputs (B, *); result ``{layer: (B, N)}`` along each ``unit_dim``, rows
summing to 1 (uniform 1/N where nothing reached the layer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import check_logits, gradients_off_error, module_name, single_call_outputs
from ._hooks import LayerSpec, capture_outputs, eval_mode, prepare_call, target_gradients
from ._units import normalise_rows, one_hot_targets, per_unit

__all__ = ["excitation_backprop", "register_excitation_rule", "excitation_along"]

# A rule says how P gets from a module's output to its input. "pass": P at the input
# equals P at the output (same shape), the module's derivative unused (batch norm
# would scale P, ReLU cut it). "gradient": the module's own derivative carries P
# (eval-mode identities, reshapes, max pooling's winner). ``positive_map(module, a)
# -> z``: the module as a linear map of ``a`` (clamped >= 0) with weights clamped to
# >= 0 and no bias; the EB rule is applied with it.
PositiveMap = Callable[[nn.Module, Tensor], Tensor]
Rule = str | PositiveMap
_RULE_NAMES = ("pass", "gradient")


def _linear(module: nn.Linear, a: Tensor) -> Tensor:
    return F.linear(a, module.weight.detach().clamp(min=0))


_CONVS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _conv(module: nn.Conv2d, a: Tensor) -> Tensor:
    """The conv's map with clamped weights, from its public attributes (stride,
    dilation, groups, padding and padding_mode)."""
    padding = module.padding
    if module.padding_mode != "zeros":
        # Padding other than zeros is applied first, as nn.Conv does; then none.
        if isinstance(padding, str):
            raise ValueError(f"excitation_backprop: padding={padding!r} with padding_mode="
                             f"{module.padding_mode!r} is not supported; use an explicit padding")
        pads = [amount for amount in reversed(padding) for _ in range(2)]
        a, padding = F.pad(a, pads, mode=module.padding_mode), 0
    conv = _CONVS[len(module.kernel_size)]
    return conv(a, module.weight.detach().clamp(min=0), None, module.stride, padding, module.dilation, module.groups)


def _pool(module: nn.Module, a: Tensor) -> Tensor:
    # Average pooling has positive weights and no bias: it is its own positive map.
    # ``forward`` rather than ``__call__`` so the hooks of this pass do not fire again.
    return module.forward(a)


_RULES: dict[type, Rule] = {
    nn.Linear: _linear, nn.Conv1d: _conv, nn.Conv2d: _conv, nn.Conv3d: _conv,
    nn.AvgPool1d: _pool, nn.AvgPool2d: _pool, nn.AvgPool3d: _pool,
    nn.AdaptiveAvgPool1d: _pool, nn.AdaptiveAvgPool2d: _pool, nn.AdaptiveAvgPool3d: _pool,
    nn.BatchNorm1d: "pass", nn.BatchNorm2d: "pass", nn.BatchNorm3d: "pass", nn.ReLU: "pass",
    **{kind: "gradient" for kind in (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d,
                                     nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Dropout, nn.Dropout1d,
                                     nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
                                     nn.Flatten, nn.Identity)},
}


def _rules() -> dict[type, Rule]:
    """The rules, with ydrop's guided layers (identities in eval) added here: at
    module level ``scores`` and ``layers`` would import each other."""
    from ..layers.base import GuidedDropout

    _RULES.setdefault(GuidedDropout, "gradient")
    return _RULES


def register_excitation_rule(module_type: type, rule: Rule) -> None:
    """Teach :func:`excitation_backprop` how P crosses modules of ``module_type`` (and
    its subclasses): ``rule`` "pass", "gradient" or a ``positive_map`` (see ``Rule``),
    e.g. ``lambda m, a: F.linear(a, m.weight.clamp(min=0))``."""
    if not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise TypeError(f"module_type must be a subclass of nn.Module, got {module_type!r}")
    if not (callable(rule) or rule in _RULE_NAMES):
        raise ValueError(f"rule must be 'pass', 'gradient' or a callable positive_map(module, a) -> z, got {rule!r}")
    _rules()[module_type] = rule


def _rule_for(module: nn.Module) -> Rule | None:
    rules = _rules()
    for cls in type(module).__mro__:  # subclasses inherit their base's rule
        if cls in rules:
            return rules[cls]
    return None


def excitation_backprop(
    model: nn.Module, inputs: Tensor, target: Tensor | int, layers: LayerSpec | Sequence[LayerSpec]
) -> dict[nn.Module, Tensor]:
    """p_EB ``{layer: (B, N)}`` of the output units of every layer in ``layers`` for
    the ``target`` class of each sample of ``inputs`` (B, *): rows summing to 1, the
    uniform 1/N where nothing reached the layer. The model runs in eval mode (every
    flag restored after); every module between the first requested layer and the
    logits needs a rule (:func:`register_excitation_rule`), those below may be anything.
    """
    target, modules = prepare_call(model, inputs, target, layers)
    with eval_mode(model):
        return dict(zip(modules, _excitation_backprop(model, inputs, target, modules)[0]))


def _excitation_backprop(
    model: nn.Module, inputs: Tensor, target: Tensor, modules: list[nn.Module], unit_dims: list | None = None
) -> tuple[list[Tensor], int]:
    """One forward, one backward, model in eval mode: p_EB (B, N) per module, in order
    (units along ``unit_dims``, by default each module's ``unit_dim``), and the classes."""
    outputs, logits = _forward(model, inputs, modules)
    classes = check_logits(logits, target, inputs.shape[0])
    for module, output in zip(modules, outputs):
        if not output.requires_grad:  # the requested hook starts a graph at every layer where gradients are on
            raise gradients_off_error(module, model)
    grads = target_gradients(logits, outputs, one_hot_targets(target, logits))
    unit_dims = unit_dims or [getattr(module, "unit_dim", None) for module in modules]
    return [normalise_rows(per_unit((torch.zeros_like(out) if grad is None else grad).detach(), unit_dim))
            for out, grad, unit_dim in zip(outputs, grads, unit_dims)], classes


def excitation_along(chain: Sequence[nn.Module], start: Tensor, target: Tensor, modules: list[nn.Module],
                     start_module: nn.Module) -> list[Tensor]:
    """p_EB (B, N) of ``modules`` from one EB pass over ``chain`` (in eval mode), fed
    ``start``, the output of ``start_module``: the Guide's pass inside the training
    forward, from the lowest guided layer's input (its output in eval mode)."""
    sequence = nn.Sequential(nn.Identity(), *chain)
    scored = [sequence[0] if module is start_module else module for module in modules]
    with eval_mode(sequence):
        return _excitation_backprop(sequence, start, target, scored, [getattr(m, "unit_dim", None) for m in modules])[0]


class _State:
    """Per-call bookkeeping of the hooks: whether the first requested layer has run
    (only what runs after it can carry P), and the inputs of in-place "pass" modules
    (``ReLU(inplace=True)``) kept before they are overwritten."""

    def __init__(self) -> None:
        self.started = False
        self.saved_inputs: dict[int, Tensor] = {}


def _forward(model: nn.Module, inputs: Tensor, modules: list[nn.Module]) -> tuple[list[Tensor], object]:
    """One forward with the EB hooks; returns the requested outputs and the logits."""
    state = _State()
    with torch.enable_grad(), _excitation_hooks(model, modules, state), capture_outputs(modules) as captured:
        logits = model(inputs)
    return single_call_outputs(modules, captured, model, inputs.shape[0]), logits


@contextmanager
def _excitation_hooks(model: nn.Module, requested: list[nn.Module], state: _State) -> Iterator[None]:
    """The rule hooks, then the requested layers' (so that a requested module's rule
    sees whether an *earlier* one has run, and ``capture_outputs``, registered after,
    records the replaced outputs); all removed in ``finally``."""
    ruled, unruled_leaves = _ruled_modules(model)
    handles = []
    try:
        for module, rule in ruled:
            if rule == "gradient":
                continue
            if rule == "pass" and getattr(module, "inplace", False):
                handles.append(module.register_forward_pre_hook(_keep_input_hook(state)))
            handles.append(module.register_forward_hook(_rule_hook(rule, state, model)))
        for module in unruled_leaves:
            handles.append(module.register_forward_hook(_check_hook(state, model)))
        for module in requested:
            handles.append(module.register_forward_hook(_requested_hook(state)))
        yield
    finally:
        for handle in handles:
            handle.remove()
        state.saved_inputs.clear()


def _ruled_modules(model: nn.Module) -> tuple[list[tuple[nn.Module, Rule]], list[nn.Module]]:
    """Outermost modules with a rule, and leaves not covered by any rule."""
    ruled: list[tuple[nn.Module, Rule]] = []
    unruled: list[nn.Module] = []
    seen: set[int] = set()

    def visit(module: nn.Module) -> None:
        if id(module) in seen:  # shared modules are hooked once
            return
        seen.add(id(module))
        rule = _rule_for(module)
        if rule is not None:
            ruled.append((module, rule))  # its rule covers its children
            return
        children = list(module.children())
        if not children and not isinstance(module, nn.Sequential):  # an empty Sequential: the identity
            unruled.append(module)
        for child in children:
            visit(child)

    visit(model)
    return ruled, unruled


def _where(module: nn.Module, model: nn.Module) -> str:  # an error's name for it, as the user's model's
    return f"module {module_name(module, model) or 'model'!r} ({type(module).__name__})"


def _keep_input_hook(state: _State):
    def hook(module: nn.Module, args: tuple):
        if not state.started or not args or not isinstance(args[0], Tensor):
            return None
        # The module overwrites its input: keep the original and let it write a copy.
        state.saved_inputs[id(module)] = args[0]
        return (args[0].clone(), *args[1:])

    return hook


def _rule_hook(rule: Rule, state: _State, model: nn.Module):
    def hook(module: nn.Module, args: tuple, output):
        if not state.started:
            return None  # below every requested layer: P never goes through it
        a = state.saved_inputs.pop(id(module), args[0] if args else None)  # the input an in-place module overwrote
        if not isinstance(a, Tensor):
            raise ValueError(f"excitation_backprop: {_where(module, model)} was called without a tensor as first "
                             "argument; its rule needs it")
        if not a.requires_grad:
            return None  # not fed by a requested layer: no P to carry
        if not torch.is_grad_enabled():  # P cannot cross it (a reentrant checkpoint's block, torch.no_grad)
            raise gradients_off_error(module, model, scored=False)
        if not isinstance(output, Tensor) or rule == "pass" and output.shape != a.shape:
            got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise ValueError(f"excitation_backprop: {_where(module, model)} returned {got} for an input of shape "
                             f"{tuple(a.shape)}; its rule needs one tensor (the 'pass' rule: of the input's shape)")
        # ``output`` is boxed in a list so autograd sees a new tensor, not an input
        # returned as is (which it would turn into a view of that input).
        return _ExcitationRule.apply(a, [output.detach()], module, None if rule == "pass" else rule)

    return hook


def _check_hook(state: _State, model: nn.Module):
    def hook(module: nn.Module, args: tuple, output):
        if not state.started:
            return None  # the feature extractor below the requested layers: anything goes
        if not any(isinstance(arg, Tensor) and arg.requires_grad for arg in args):
            return None  # not fed by a requested layer
        raise ValueError(f"excitation_backprop has no rule for {_where(module, model)}, which runs between a "
                         "requested layer and the model's output. Supported types: "
                         f"{', '.join(cls.__name__ for cls in _rules())}. Request a layer above it, or add a "
                         "rule with ydrop.register_excitation_rule(module_type, rule).")

    return hook


def _requested_hook(state: _State):
    def hook(module: nn.Module, args: tuple, output):
        state.started = True
        if isinstance(output, Tensor) and not output.requires_grad and output.is_floating_point():
            # Nothing below has parameters: start the graph here. The clone keeps
            # the leaf safe from in-place operations later in the forward.
            return output.detach().requires_grad_().clone()
        return None

    return hook


class _ExcitationRule(torch.autograd.Function):
    """Forward: the module's own output values. Backward: the EB rule (Eq. 1-2)
    P_in = a+ * (dz/da+)^T (P_out / z), z = positive_map(a+), 0 where z == 0; with
    no map (the "pass" rule) P_in = P_out."""

    @staticmethod
    def forward(ctx, a: Tensor, output: list[Tensor], module: nn.Module, positive_map: PositiveMap | None) -> Tensor:
        ctx.save_for_backward(a)  # version-checked: an in-place change of ``a`` raises
        ctx.module = module
        ctx.positive_map = positive_map
        return output[0]

    @staticmethod
    def backward(ctx, p_out: Tensor):
        (a,) = ctx.saved_tensors
        if ctx.positive_map is None:
            return p_out, None, None, None
        with torch.enable_grad():
            a_pos = a.detach().clamp(min=0).requires_grad_()
            z = ctx.positive_map(ctx.module, a_pos)
            # z >= 0; where it is 0 no child is excited and the share is 0 (0/0 = 0).
            excited = z.detach() > 0
            share = (p_out / z.detach().masked_fill(~excited, 1.0)).masked_fill(~excited, 0.0)
            (collected,) = torch.autograd.grad(z, a_pos, share)
        return a_pos.detach() * collected, None, None, None
