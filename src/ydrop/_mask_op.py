"""The custom op ``ydrop::mask`` (``torch.ops.ydrop.mask``): a guided layer's training
mask, opaque to ``torch.compile`` (``_opaque.py`` says why and how it finds its layer).
Imported by ``_opaque.register_owner`` when the first layer is built."""

from __future__ import annotations

import torch
from torch import Tensor

from ._opaque import _OWNERS, mask_dtype

__all__ = ["mask"]


# ``disable``: the compiled graph calls the op's body while Dynamo's frame hook is
# still set, which would otherwise trace the body as user code. The schema is given
# because ``disable``'s wrapper hides the annotations' module.
@torch.library.custom_op("ydrop::mask", mutates_args=(),
                         schema="(Tensor x, Tensor owner, SymInt[] shape) -> Tensor",
                         tags=(torch.Tag.nondeterministic_seeded, torch.Tag.cudagraph_unsafe))
@torch.compiler.disable
def mask(x: Tensor, owner: Tensor, shape: list[int]) -> Tensor:
    layer = _OWNERS[int(owner)]
    drawn = layer._draw_mask(x)
    if drawn.shape != tuple(shape):  # the compiled graph was built for ``shape``
        raise RuntimeError(f"{type(layer).__name__}._draw_mask returned a mask of shape {tuple(drawn.shape)} "
                           f"but _mask_shape declared {tuple(shape)} for an input of shape {tuple(x.shape)}")
    return drawn


@mask.register_fake
def _(x: Tensor, owner: Tensor, shape: list[int]) -> Tensor:
    return x.new_empty(shape, dtype=mask_dtype(x.dtype))
