"""The guided layers' training mask as an op that ``torch.compile`` keeps opaque.

A guided layer's mask reads Python state that changes between steps (the scores
handed in, the epoch, counters). While a model is being compiled, the mask is drawn
by a custom op (``torch.library.custom_op``) that the compiler does not look into:
the graph does not break at the layer (``fullgraph=True`` works), and it guards on
none of that state, so it is not recompiled when the state changes. The op is tagged
as random (never merged with another call, never recomputed in the backward) and
as unsafe for CUDA graphs (``mode="reduce-overhead"`` runs it outside the graph, so
it draws a new mask at every step). Run eagerly, the layer's method is called
directly: the op costs nothing outside compilation.

The op finds its layer by ``id`` in a table of weak references, filled when the
layer is built (or unpickled, or deep-copied). Layers implement ``_draw_mask(x)``
and ``_mask_shape(x)``; the mask broadcasts against ``x`` (see ``layers/base.py``).
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

__all__ = ["register_owner", "mask_dtype", "opaque_mask"]

_OWNERS: weakref.WeakValueDictionary[int, object] = weakref.WeakValueDictionary()


def register_owner(owner: object) -> None:
    """Make ``owner`` reachable from the op (idempotent)."""
    _OWNERS[id(owner)] = owner


def mask_dtype(dtype: torch.dtype) -> torch.dtype:
    """Masks are float32 at least: in bf16, 1 / (1 - p) rounds (0.9 is 0.898)."""
    return torch.promote_types(dtype, torch.float32)


def opaque_mask(owner, x: Tensor) -> Tensor:
    """``owner._draw_mask(x)``; a custom op while compiling."""
    if torch.compiler.is_compiling():
        return _mask_op(x.detach(), id(owner))
    return owner._draw_mask(x)


# ``disable``: the compiled graph calls the op's body while Dynamo's frame hook is
# still set, which would otherwise trace the body as user code. The schema is given
# because ``disable``'s wrapper hides the annotations' module.
@torch.library.custom_op("ydrop::mask", mutates_args=(), schema="(Tensor x, int owner) -> Tensor",
                         tags=(torch.Tag.nondeterministic_seeded, torch.Tag.cudagraph_unsafe))
@torch.compiler.disable
def _mask_op(x: Tensor, owner: int) -> Tensor:
    return _OWNERS[owner]._draw_mask(x)


@_mask_op.register_fake
def _(x: Tensor, owner: int) -> Tensor:
    return x.new_empty(_OWNERS[owner]._mask_shape(x), dtype=mask_dtype(x.dtype))
