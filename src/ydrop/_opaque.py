"""The guided layers' training mask as an op that ``torch.compile`` keeps opaque.

A guided layer's mask reads Python state that changes between steps (the scores
handed in, the epoch, counters). While a model is being compiled, the mask is drawn
by a custom op (``torch.library.custom_op``) that the compiler does not look into:
the graph does not break at the layer (``fullgraph=True`` works), and it guards on
none of that state, so it is not recompiled when the state changes. The op is tagged
as random (never merged with another call, never recomputed in the backward) and
as unsafe for CUDA graphs (``mode="reduce-overhead"`` runs it outside the graph, so
it draws a new mask at every step). Run eagerly, the layer's method is called
directly: the op costs nothing outside compilation. The op is defined
(``_mask_op.py``) when the first layer is built: defining it loads torch's compiler,
seconds that ``import ydrop`` alone need not pay.

The op finds its layer by a key of its own, a CPU int64 tensor attribute
(``_mask_key``) that the compiled graph takes as an input, in a table of weak
references filled when the layer is built (or unpickled, or deep-copied: a copy gets
a new key). A key, not the layer's ``id`` baked into the graph as a constant: Dynamo
would guard on the layer object, so that every new model (a sweep, a copy) would be
compiled again and, past Dynamo's recompile limit (8), run eagerly. Keys are never
reused. Layers implement ``_draw_mask(x)`` and ``_mask_shape(x)`` (traced while
compiling: the op's declared shape); the mask broadcasts against ``x`` (see
``layers/base.py``).
"""

from __future__ import annotations

import itertools
import weakref

import torch
from torch import Tensor

__all__ = ["register_owner", "mask_dtype", "opaque_mask"]

_OWNERS: weakref.WeakValueDictionary[int, object] = weakref.WeakValueDictionary()
_KEYS = itertools.count()


def register_owner(owner: object) -> None:
    """Give ``owner`` a new key (``_mask_key``) by which the op finds it; called
    when a layer is built and again on its copies (a copy arrives with the key of
    its original)."""
    from . import _mask_op  # noqa: F401  defines torch.ops.ydrop.mask; loads torch's compiler, so not at import

    key = next(_KEYS)
    # A plain attribute, not a buffer: it stays on the CPU (read without a device
    # sync) and out of ``state_dict``.
    owner._mask_key = torch.tensor(key, device="cpu")  # also under a default device (a meta key: no mask drawn)
    _OWNERS[key] = owner


def mask_dtype(dtype: torch.dtype) -> torch.dtype:
    """Masks are float32 at least: in bf16, 1 / (1 - p) rounds (0.9 is 0.898)."""
    return torch.promote_types(dtype, torch.float32)


def opaque_mask(owner, x: Tensor) -> Tensor:
    """``owner._draw_mask(x)``; a custom op while compiling."""
    if torch.compiler.is_compiling():
        return torch.ops.ydrop.mask(x.detach(), owner._mask_key, owner._mask_shape(x))
    return owner._draw_mask(x)
