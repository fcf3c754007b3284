"""The conductance pass's backward, written out, above the lowest scored layer.

Above its lowest scored layer, a network of the Y-Drop paper (FC_k, and the FC head
of S_k) is a chain of Linear, ReLU and dropout layers, and dropout is the identity
in eval mode. There the gradient of the target logit needs no autograd: it starts
as the head's row of the target class, a ReLU keeps it where its output is
positive, a Linear multiplies it by its weight (``rows_times_weight``, Eq. 2's
points as groups of rows). Written out, the pass runs the forward without
recording a graph and skips autograd's bookkeeping (a Function call and its saved
tensors per layer, the engine, the copies that protect recorded outputs from
in-place ops): FC_1's pass takes 0.92-0.95 of the time it takes with
autograd (docs/performance.md).

The chain is read off the forward itself, so no extra forward probes the model:
``ChainRecorder`` sees every call of a leaf module on the path's rows, and the calls
from the lowest scored layer up must each take the previous call's output (the same
tensor object), the last must return the model's output, and each must be a
Linear, a ReLU, a Flatten or a module that returned its input untouched (eval-mode
dropout, ``nn.Identity``). Anything else (a residual addition, functional code
between modules, a module with hooks, an in-place change of a tensor the backward
reads) returns None, and the caller falls back to autograd.

Shapes: the path's rows (points * batch, *), point-major; a recorded output
(points * batch, *); the gradient handed back per scored layer
(points - 1, batch, *), the points that have one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import torch
from torch import Tensor, nn

from ._chain import is_plain_sequential, modules_above
from ._path import PathRows
from ._row_differences import MIN_REPEATS_WEIGHT, repeated_by_class, rows_times_weight
from ._units import one_hot_targets

__all__ = [
    "may_be_chain", "ChainRecorder", "ChainCall", "chain_gradients",
    "global_forward_hooks", "any_global_hooks", "has_hooks", "KNOWN_FORWARDS",
]


def may_be_chain(model: nn.Module, scored: list[nn.Module]) -> bool:
    """Whether the module tree allows a chain (``ChainRecorder`` decides, from the
    forward): one scored module sits in plain ``nn.Sequential`` containers followed
    by every other scored module, and what follows it is Linear layers, modules
    without parameters or submodules, and plain containers of those. Saves the
    forward of a failed attempt on models that are plainly not chains."""
    wanted = {id(module) for module in scored}
    for lowest in scored:
        above = modules_above(model, lowest)
        if above is None:
            continue
        tail = above[0]
        inside = {id(module) for top in tail for module in top.modules()}
        if wanted - {id(lowest)} <= inside and all(_may_pass(module, wanted) for module in tail):
            return True
    return False


def _may_pass(module: nn.Module, scored: set[int]) -> bool:
    if id(module) in scored or type(module).forward is nn.Linear.forward:
        return True
    if next(module.children(), None) is not None:
        return is_plain_sequential(module) and all(_may_pass(child, scored) for child in module.children())
    return next(module.parameters(recurse=False), None) is None


@dataclass
class ChainCall:
    """One call of a leaf module on the path's rows, and the input and output
    versions that tell whether anything changed them in place."""

    module: nn.Module
    input: Tensor
    output: Tensor
    input_version_before: int
    output_version: int
    kind: str | None = None  # set by ChainRecorder.chain: see _kind


@dataclass
class ChainRecorder:
    """Collects the leaf modules' calls during the pass's forward (``_lean_layers``
    calls :meth:`record`) from the first scored layer's on, and reads the chain."""

    scored: list[nn.Module]
    calls: list[ChainCall] = field(default_factory=list)

    def record(self, module: nn.Module, inputs: Tensor, output: object, input_version_before: int) -> None:
        # Nothing below the lowest scored layer is kept: a CNN's feature maps are
        # freed as the forward goes on, as without the recorder.
        if not self.calls and all(module is not scored for scored in self.scored):
            return
        if isinstance(output, Tensor):
            self.calls.append(ChainCall(module, inputs, output, input_version_before, output._version))

    def chain(self, logits: Tensor, model: nn.Module) -> list[ChainCall] | None:
        """The calls from the lowest scored layer to ``model``'s output ``logits``
        when they form a chain the written backward supports, else None."""
        chain = self.calls  # from the first scored layer's call on (``record``)
        # Hooks on a container (the model itself, a block) run around the leaves'
        # calls, where the chain cannot see what they change.
        containers = (module for module in model.modules() if next(module.children(), None) is not None)
        if not chain or any_global_hooks() or any(has_hooks(module) for module in containers):
            return None
        scored = {id(module) for module in self.scored}
        if chain[-1].output is not logits or sum(id(call.module) in scored for call in chain) != len(scored):
            return None
        for below, call in zip(chain, chain[1:]):
            call.kind = _kind(call)
            if call.input is not below.output or call.kind is None:
                return None
        # Everything the backward reads (scored outputs, ReLU outputs) must still hold
        # what its module returned.
        read = [call for call in chain if id(call.module) in scored or call.kind == "relu"]
        if any(call.output._version != call.output_version for call in read):
            return None
        return chain


# The modules the backward passes a cotangent through, by their exact forward (a
# subclass may compute otherwise); besides these, modules that return their input.
KNOWN_FORWARDS = {nn.Linear.forward: "linear", nn.ReLU.forward: "relu", nn.Flatten.forward: "flatten"}


def _kind(call: ChainCall) -> str | None:
    """How the backward passes a cotangent through ``call``; None: not supported."""
    module = call.module
    if has_hooks(module):
        return None
    known = KNOWN_FORWARDS.get(type(module).forward)
    if known is not None:
        return known
    if call.output is call.input and call.input._version == call.input_version_before:
        return "identity"  # returned its input untouched: eval-mode dropout, nn.Identity
    return None


def any_global_hooks() -> bool:
    hooks = torch.nn.modules.module
    return global_forward_hooks() or bool(hooks._global_backward_hooks or hooks._global_backward_pre_hooks)


def global_forward_hooks() -> bool:
    """Whether forward hooks registered for every module (``register_module_forward_hook``) exist."""
    hooks = torch.nn.modules.module
    return bool(hooks._global_forward_hooks or hooks._global_forward_pre_hooks)


def has_hooks(module: nn.Module) -> bool:
    # The written backward would skip what hooks add (or replace).
    return bool(
        module._forward_hooks or module._forward_pre_hooks or module._backward_hooks or module._backward_pre_hooks
    )


def chain_gradients(
    chain: list[ChainCall], scored: list[nn.Module], target: Tensor, layout: PathRows
) -> dict[nn.Module, Tensor]:
    """The target logit's gradient at the output of every ``scored`` module of
    ``chain`` (whose first call is the lowest of them), at the points 0 .. points - 2
    of ``layout``: ``{module: (points - 1, batch, *)}``. ``target``: (batch,) class
    indices.

    The cotangent is carried as (batch, *) while it is the same at every point (from
    the head down to the first ReLU), then as (points - 1, batch, *). At a shared
    start (alpha = 0 is one point for all samples) the first point's cotangent
    depends only on the class, so a Linear multiplies one row per class present
    (``RepeatedRows``).
    """
    batch = layout.batch
    groups, rows = layout.points - 1, layout.rows_with_gradient
    # Looked up once, by the first Linear large enough for it to pay.
    class_repeats = cache(lambda: repeated_by_class(target) if layout.shared_start else None)
    wanted = {id(module) for module in scored}
    cotangent: Tensor | None = None  # None: one-hot at the target class, on the logits
    per_point = False
    gradients: dict[nn.Module, Tensor] = {}
    for call in reversed(chain):
        if id(call.module) in wanted:
            at_output = one_hot_targets(target, call.output) if cotangent is None else cotangent
            gradients[call.module] = at_output if per_point else at_output.expand((groups,) + at_output.shape)
        if call is chain[0]:
            break
        kind = call.kind
        if kind == "linear":
            weight = call.module.weight
            if cotangent is None:
                cotangent = weight.index_select(0, target)  # the head's row of the target class
            else:
                leading = (groups, batch) if per_point else (batch,)
                # Rows of (B, T, D) inputs: one group per point of B T rows.
                grouped = cotangent.reshape(groups if per_point else 1, -1, weight.shape[0])
                # The first group's rows repeat by class (all of them while the
                # cotangent is the same at every point) when a group is the batch's rows.
                repeats = grouped.shape[1] == batch and weight.numel() >= MIN_REPEATS_WEIGHT
                first_point = class_repeats() if repeats else None
                product = rows_times_weight(grouped, weight.to(cotangent.dtype), first_point)
                cotangent = product.reshape(leading + call.input.shape[1:])
        elif kind == "relu":
            if cotangent is None:
                cotangent = one_hot_targets(target, call.output)
            output = call.output[:rows].unflatten(0, (groups, batch))
            if not per_point:
                cotangent = cotangent.expand_as(output)
            # ReLU's own backward kernel: zero where the output is not positive. On the
            # CPU it takes 25 us on 5 x 12 x 2048 entries, where torch.where with a
            # boolean mask takes 410 us (FC_2's pass has two such ReLUs).
            cotangent = torch.ops.aten.threshold_backward(cotangent, output, 0)
            per_point = True
        elif kind == "flatten":
            if cotangent is None:
                cotangent = one_hot_targets(target, call.output)
            leading = (groups, batch) if per_point else (batch,)
            cotangent = cotangent.reshape(leading + call.input.shape[1:])
        # "identity": the cotangent passes unchanged.
    return gradients
