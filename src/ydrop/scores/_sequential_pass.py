"""The conductance pass over a plain ``nn.Sequential``, op by op, without module calls.

When the model handed to the pass (Y-Drop, Eq. 2) is a plain ``nn.Sequential``
(nested plain containers allowed) of Linear, ReLU and Flatten layers and of modules
that return their input untouched in eval mode (dropout, ``nn.Identity``), with no
hook anywhere, its forward is known op by op. The pass then runs those ops itself,
on the same rows and with the same kernels as the module-by-module pass of
``conductance.py`` (the same floats, bit for bit): no forward patching, no recorded
calls read back into a chain, no module call per layer, and no product for the
head, whose logits the written backward does not read (it starts from the head's
row of the target class). On FC_1's pass from the stem's rows, the module-by-module
pass took 1.20 times as long as the same ops written out by hand, this one 1.07-1.09
times (docs/performance.md).

The Guide hands its pass exactly such a chain: the modules above the stem of an
MLP (``_stem``), i.e. every FC_k step; a user's ``nn.Sequential`` MLP gets it in
``ydrop.conductance`` too. Anything else returns None before any product runs (a
layer with weights it does not run, a hook, a module held twice), or ``GAVE_UP``
when a parameter-free leaf turns out not to return its input (a Tanh), and the
caller takes the general pass (remembering the model in the second case).

Shapes: the path's rows (points * batch, *), point-major (``PathRows``); a scored
layer's output the same; gradients (points - 1, batch, *).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._validation import check_logits, check_targets
from ._chain import is_plain_sequential
from ._chain_backward import KNOWN_FORWARDS, ChainCall, any_global_hooks, chain_gradients, has_hooks
from ._path import PathRows, interpolated_stem, once_for_shared_start
from ._products import linear

__all__ = ["sequential_pass", "GAVE_UP"]

# The pass runs the ops of the modules the written backward knows (KNOWN_FORWARDS).
# Any other leaf must have no parameters and return its input untouched, which only
# its own forward can tell, so it is checked on every pass.

# Returned when a leaf turned out not to return its input, after the products below
# it ran: the caller remembers the model and does not try it again.
GAVE_UP = "gave up"


def sequential_pass(model: nn.Module, path: Tensor, target: Tensor, scored: list[nn.Module], layout: PathRows):
    """(outputs (rows, *), gradients (points - 1, B, *), classes) of the ``scored``
    modules; None when ``model`` is not a plain ``nn.Sequential`` of supported,
    hook-free leaves holding every scored module once (checked before anything
    runs), ``GAVE_UP`` when a parameter-free leaf did not return its input untouched.
    ``model`` is in eval mode, autograd off."""
    leaves = _plain_leaves(model)
    if leaves is None or any_global_hooks():
        return None
    positions = {id(module): index for index, module in enumerate(leaves)}
    if len(positions) != len(leaves) or any(id(module) not in positions for module in scored):
        return None
    kinds = [KNOWN_FORWARDS.get(type(module).forward) for module in leaves]
    if any(kind is None and next(module.parameters(), None) is not None for module, kind in zip(leaves, kinds)):
        return None  # a layer with weights it does not run (Conv, batch norm): before any product
    lowest = min(positions[id(module)] for module in scored)
    # The head, a last Linear that is not scored: the written backward starts from its
    # weight's target rows and never reads the logits, so its product is skipped.
    head = leaves[-1] if kinds[-1] == "linear" and id(leaves[-1]) not in {id(m) for m in scored} else None
    calls: list[ChainCall] = []
    hidden, head_skipped = path, False
    for index, (module, kind) in enumerate(zip(leaves, kinds)):
        if hidden.dim() == 0 or hidden.shape[0] != layout.rows:
            return GAVE_UP  # rows merged (a Flatten over dim 0): not the path's layout
        version = hidden._version
        if module is head and hidden.dim() == 2:  # logits (rows, classes); otherwise run it and let them be refused
            calls.append(ChainCall(module, hidden, hidden, version, version, kind))  # output: never read
            head_skipped = True
            break
        if kind == "linear":
            if hidden is layout.path or hidden._base is layout.path:
                output = interpolated_stem(module, hidden, layout)
            else:
                output = once_for_shared_start(lambda rows: linear(rows, module.weight, module.bias), hidden, layout)
        elif kind == "relu":
            output = torch.relu(hidden)  # in place or not, the same values: the pass owns its rows
        elif kind == "flatten":
            output = hidden.flatten(module.start_dim, module.end_dim)
        else:
            output = type(module).forward(module, hidden)  # no hooks: the module's own forward is its call
            if output is not hidden or hidden._version != version:
                return GAVE_UP
            kind = "identity"  # eval-mode dropout, nn.Identity
        if index >= lowest:
            calls.append(ChainCall(module, hidden, output, version, output._version, kind))
        hidden = output
    if head_skipped:  # its logits would be (rows, out_features)
        classes = head.out_features
        check_targets("target", target, layout.batch, num_classes=classes)
    else:
        classes = check_logits(hidden, target, layout.batch)
    gradients = chain_gradients(calls, scored, target, layout)
    outputs = {id(call.module): call.output for call in calls}
    return [outputs[id(module)] for module in scored], [gradients[module] for module in scored], classes


def _plain_leaves(model: nn.Module) -> list[nn.Module] | None:
    """The leaf modules of a plain ``nn.Sequential`` (nested plain containers
    allowed), in call order, when none carries a hook or a ``forward`` of its own
    (set on the instance); else None."""
    if not is_plain_sequential(model) or has_hooks(model) or "forward" in model.__dict__:
        return None
    leaves: list[nn.Module] = []
    for child in model._modules.values():
        if child is None:
            continue
        if next(child.children(), None) is not None:
            inner = _plain_leaves(child)
            if inner is None:
                return None
            leaves += inner
        elif has_hooks(child) or "forward" in child.__dict__:
            return None
        else:
            leaves.append(child)
    return leaves
