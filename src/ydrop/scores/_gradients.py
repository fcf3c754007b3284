"""The target logit's gradient at the outputs of scored layers: the two passes.

Rows come as ``groups`` leading groups of B rows (the path's points, point-major, or
the samples) and the rest; wanted: each scored output on all rows and the gradient
there on the groups. ``autograd_pass`` (any model): one forward, recorded from the
first scored output on, one ``autograd.grad``. ``chain_pass`` (Linear, ReLU, Flatten
and eval-mode identities above the lowest scored layer): the forward op by op, the
backward written out; the cotangent starts as the head's row of the target class, is
shared by every point down to the first ReLU (a stride-0 view), then is cut where a
ReLU's output is not positive and multiplied by each weight.
Shapes: gradients (groups, B, *), None for a layer that does not reach the logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import check_logits, gradients_off_error, single_call_outputs
from ._hooks import eval_mode, target_gradients
from ._units import one_hot_targets
from .plan import chain_leaves, identity_in_eval, lowest_anchor

__all__ = ["layer_gradients", "gradients_along"]

Passes = tuple[list[Tensor], list[Tensor | None], int]


def layer_gradients(model: nn.Module, rows: Tensor, target: Tensor, modules: list[nn.Module], groups: int,
                    probe: Tensor, shared: bool = False) -> Passes:
    """(outputs, gradients, classes) of ``modules`` for ``rows`` through ``model`` (in
    eval mode), by the chain pass where its plan (read with ``probe``) allows, else autograd."""
    lowest = lowest_anchor(model, modules, probe)
    if lowest is not None and chain_leaves(lowest.chain, _written) is not None:
        skip = target.shape[0] - 1 if shared else 0  # a shared first group's point runs once
        start = _output_of(model, lowest.module, rows[skip:])
        start = torch.cat([start[:1].expand((skip,) + start.shape[1:]), start]) if skip else start
        return gradients_along(lowest.chain, start, target, modules, groups, lowest.module, shared)
    return autograd_pass(model, rows, target, modules, groups)


def gradients_along(
    chain: Sequence[nn.Module], start: Tensor, target: Tensor, modules: list[nn.Module], groups: int,
    start_module: nn.Module | None = None, shared: bool = False,
) -> Passes:
    """The same for ``chain`` fed ``start``, the output of ``start_module`` (scored if
    listed); ``shared``: the first group's rows are one point (a shared baseline)."""
    stand_in = nn.Identity()  # the start module, whose output is ``start``
    scored = [stand_in if module is start_module else module for module in modules]
    leaves = chain_leaves(tuple(chain), _written)
    if leaves is not None:  # runs no module: their train / eval flags do not matter
        return chain_pass([stand_in, *leaves], start, target, scored, groups, shared)
    sequence = nn.Sequential(stand_in, *chain)
    with eval_mode(sequence):
        return autograd_pass(sequence, start, target, scored, groups)


class _Stop(BaseException):  # not an Exception: a model's own ``except Exception`` lets it through
    """Ends a forward once the wanted output exists."""


def _output_of(model: nn.Module, layer: nn.Module, rows: Tensor) -> Tensor:
    """``layer``'s output when ``model`` runs on ``rows``; the rest of the forward is skipped."""
    found: list[Tensor] = []

    def hook(_module, _args, output):
        found.append(output)
        raise _Stop

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(rows)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not found or not isinstance(found[0], Tensor):
        raise ValueError(f"layer {type(layer).__name__} did not return a tensor in the model's forward")
    return found[0]


def _tracking_hook(model: nn.Module, slot: list[Tensor], ran: list[nn.Module]):
    """A forward hook that turns autograd on at a scored layer's output, keeps that
    output (a leaf of the pass's graph) in ``slot`` and lists the layer in ``ran``."""

    def hook(module, _args, output):
        if not isinstance(output, Tensor):
            raise TypeError(f"{type(module).__name__} returned {type(output).__name__}; a scored layer must "
                            "return a single tensor")
        if ran and not torch.is_grad_enabled():  # turned off again since the first scored output
            raise gradients_off_error(module, model, before=ran[-1])
        ran.append(module)
        torch.set_grad_enabled(True)  # autograd records from the first scored output on
        tracked = output if output.requires_grad else output.detach().requires_grad_()
        slot.append(tracked)
        # The network goes on with a copy, which an in-place op above (ReLU(inplace=True)) may change.
        return tracked.clone()

    return hook


def autograd_pass(model: nn.Module, rows: Tensor, target: Tensor, modules: list[nn.Module], groups: int) -> Passes:
    batch = target.shape[0]
    captured: list[list[Tensor]] = [[] for _ in modules]
    ran: list[nn.Module] = []
    handles = [module.register_forward_hook(_tracking_hook(model, slot, ran)) for module, slot in zip(modules, captured)]
    try:
        with torch.no_grad():
            logits = model(rows)
            turned_off = bool(ran) and not torch.is_grad_enabled()
    finally:
        for handle in handles:
            handle.remove()
    outputs, classes = single_call_outputs(modules, captured, model, rows.shape[0]), check_logits(logits, target, batch)
    if turned_off:  # after the last scored output: e.g. it sits inside a reentrant checkpoint
        raise gradients_off_error(ran[-1], model)
    with torch.enable_grad():  # the caller may be under torch.no_grad: the selection must be recorded too
        chosen = logits[: groups * batch].gather(1, target.repeat(groups).unsqueeze(1))
    grads = target_gradients(chosen, outputs, torch.ones_like(chosen))
    return outputs, [None if g is None else g[: groups * batch].unflatten(0, (groups, batch)) for g in grads], classes


def _written(module: nn.Module) -> bool:
    return type(module) in (nn.Linear, nn.ReLU, nn.Flatten) or identity_in_eval(module)


def _apply(leaf: nn.Module, x: Tensor) -> Tensor:
    kind = type(leaf)
    if kind is nn.Linear:
        return F.linear(x, leaf.weight, leaf.bias)
    if kind is nn.ReLU:
        return F.relu(x)
    if kind is nn.Flatten:
        return x.flatten(leaf.start_dim, leaf.end_dim)
    return x  # the identity in eval mode


def chain_pass(leaves: list[nn.Module], start: Tensor, target: Tensor, modules: list[nn.Module],
               groups: int, shared: bool = False) -> Passes:
    wanted = {id(module) for module in modules}
    skip = target.shape[0] - 1 if shared else 0  # a shared first group runs as its last row
    trace: list[tuple[nn.Module, Tensor, Tensor]] = []
    with torch.no_grad():
        x = start[skip:]
        for leaf in leaves:
            trace.append((leaf, x, x := _apply(leaf, x)))
        classes = check_logits(x, target, target.shape[0])
        unfolded: dict[int, Tensor] = {}  # the rows of a shared first group, put back once per tensor

        def full(y: Tensor) -> Tensor:
            if skip and id(y) not in unfolded:
                unfolded[id(y)] = torch.cat([y[:1].expand((skip,) + y.shape[1:]), y])
            return unfolded[id(y)] if skip else y

        grads = _written_backward(trace, target, groups, wanted, full)
        outputs = {id(leaf): full(y) for leaf, _, y in trace if id(leaf) in wanted}
    return [outputs[id(m)] for m in modules], [grads.get(id(m)) for m in modules], classes


def _written_backward(trace: list, target: Tensor, groups: int, wanted: set[int], full) -> dict[int, Tensor]:
    """{id(scored leaf): the target logit's gradient at its output, (groups, B, *)};
    ``full(output)``: all rows of an output."""
    batch = target.shape[0]
    cotangent: Tensor | None = None  # None: the one-hot at the target class, on the logits
    per_point = False  # False: one (B, *) cotangent shared by every point
    grads: dict[int, Tensor] = {}
    for leaf, inputs, output in reversed(trace):
        if id(leaf) in wanted:
            at_output = _or_one_hot(cotangent, target, output)
            grads[id(leaf)] = at_output if per_point else at_output.expand((groups,) + at_output.shape)
            if len(grads) == len(wanted):
                return grads  # nothing below is read
        if type(leaf) is nn.Linear:
            weight = leaf.weight.to(output.dtype)
            cotangent = weight.index_select(0, target) if cotangent is None else cotangent @ weight
        elif type(leaf) is nn.ReLU:
            # ReLU's derivative is sign(output): a float product, not a slower boolean mask.
            positive = full(output)[: groups * batch].unflatten(0, (groups, batch)).sign()
            cotangent, per_point = _or_one_hot(cotangent, target, output) * positive, True
        elif type(leaf) is nn.Flatten:
            leading = (groups, batch) if per_point else (batch,)
            cotangent = _or_one_hot(cotangent, target, output).reshape(leading + inputs.shape[1:])
    return grads


def _or_one_hot(cotangent: Tensor | None, target: Tensor, logits: Tensor) -> Tensor:
    return one_hot_targets(target, logits) if cotangent is None else cotangent
