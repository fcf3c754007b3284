"""The hook by which a :class:`~ydrop.Guide` scores inside the training forward.

A ``Tap`` sits on an anchor module (``guide.py``'s module docstring) and hands the
anchor's input or output in the next training forward to the callbacks the Guide
armed it with, once. A tap belongs to its Guide: once that Guide is gone (a new
Guide built every epoch on the same model), it removes itself at its next call. A
copy of the model (``copy.deepcopy``, ``pickle``, ``torch.save(model)``) copies its
hooks too; the copy of a tap belongs to no Guide: it carries no callbacks (the
original's would score the *original* layers with the copy's activations, and they
do not pickle) and removes itself from the copy at its first call. A Guide built on
the copy adds a tap of its own.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Tap"]


class Tap:
    """A hook on ``module`` that hands its input (``read_input``) or output in the
    next training forward to each of ``callbacks``, once; inert while not armed.
    ``owner``: the Guide, held weakly (module docstring)."""

    def __init__(self, module: nn.Module, read_input: bool, owner: object) -> None:
        self.callbacks: list[Callable[[Tensor], None]] = []
        self.read_input = read_input
        self.owner: weakref.ref | None = weakref.ref(owner)
        self.handle = (module.register_forward_pre_hook if read_input else module.register_forward_hook)(self)
        torch.compiler.reset()  # Dynamo does not guard on hooks: code compiled before this one would never call it

    def __getstate__(self) -> dict[str, Any]:
        # The handle's state is the hooks dict it belongs to: in a copied model, the copy's.
        return {"callbacks": [], "read_input": self.read_input, "owner": None, "handle": self.handle}

    @torch.compiler.disable
    def __call__(self, module: nn.Module, args: tuple, output: Any = None) -> None:
        if self.owner is None or self.owner() is None:  # a copy's, or its Guide is gone
            self.handle.remove()
            return
        if not self.callbacks or not module.training:
            return
        callbacks, self.callbacks = self.callbacks, []
        value = args[0] if self.read_input else output
        # Inside a checkpointed block (torch.utils.checkpoint, non-reentrant), the
        # checkpoint's hooks would hold the pass's own graph as the block's and find
        # it missing when the block recomputes: the pass keeps its tensors itself.
        with torch.autograd.graph.saved_tensors_hooks(_detached, _as_is):
            for callback in callbacks if isinstance(value, Tensor) else ():
                callback(value)


def _detached(tensor: Tensor) -> Tensor:
    # Not the tensor itself: an op that saves its own output would then hold that
    # output, whose grad_fn is the op: a cycle through C++ that no collector frees,
    # and the pass's graph would stay in memory after every step.
    return tensor.detach()


def _as_is(tensor: Tensor) -> Tensor:
    return tensor
