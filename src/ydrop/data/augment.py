"""Batch augmentation on whole tensors, on whatever device the batch is on.

Both functions take a batch (B, C, H, W) and draw all their random numbers at once
(one offset pair or one coin per sample), so there is no Python loop over samples.
Random numbers are drawn on the generator's device (the CPU when ``generator`` is
``None``, from torch's default generator) and then moved to the batch's device: a
CPU generator therefore gives the same augmentation for a CPU or a GPU batch.

They mirror torchvision's ``RandomCrop(size, padding)`` (zero padding) and
``RandomHorizontalFlip(p)``, applied to [0, 1] images before normalisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._validation import check_non_negative_int, check_rate

__all__ = ["random_pad_crop", "random_horizontal_flip", "PadCropFlip"]


def _check_batch(images: object) -> Tensor:
    if not isinstance(images, Tensor) or images.dim() != 4:
        got = f"a tensor of shape {tuple(images.shape)}" if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor of shape (B, C, H, W), got {got}")
    return images


def _check_generator(generator: object) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return generator


def _draw_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def random_pad_crop(images: Tensor, padding: int = 4, generator: torch.Generator | None = None) -> Tensor:
    """Zero-pad each image by ``padding`` pixels on every side, then crop back to H x W
    at a random offset drawn independently per sample.

    Args:
        images: (B, C, H, W), any dtype and device.
        padding: pixels added on each side, >= 0; 0 returns an unchanged copy.
        generator: source of the offsets (see the module docstring).

    Returns:
        A new tensor (B, C, H, W) on the same device.
    """
    _check_batch(images)
    check_non_negative_int("padding", padding)
    _check_generator(generator)
    b, c, h, w = images.shape
    # offsets in [0, 2 * padding]: row 0 = top, row 1 = left; offset = padding is no shift
    offsets = torch.randint(0, 2 * padding + 1, (2, b), generator=generator, device=_draw_device(generator))
    offsets = offsets.to(images.device)
    if padding == 0 or b == 0:
        return images.clone()
    padded = F.pad(images, (padding, padding, padding, padding))
    device = images.device
    rows = offsets[0].view(b, 1, 1, 1) + torch.arange(h, device=device).view(1, 1, h, 1)
    cols = offsets[1].view(b, 1, 1, 1) + torch.arange(w, device=device).view(1, 1, 1, w)
    batch = torch.arange(b, device=device).view(b, 1, 1, 1)
    channel = torch.arange(c, device=device).view(1, c, 1, 1)
    # one advanced-indexing gather: out[n, k, i, j] = padded[n, k, top_n + i, left_n + j]
    return padded[batch, channel, rows, cols]


def random_horizontal_flip(images: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Mirror each image left-right with probability ``p``, independently per sample.

    Args:
        images: (B, C, H, W), any dtype and device.
        p: flip probability in [0, 1].
        generator: source of the coin flips (see the module docstring).

    Returns:
        A new tensor (B, C, H, W) on the same device.
    """
    _check_batch(images)
    p = check_rate("p", p, allow_one=True)
    _check_generator(generator)
    b = images.shape[0]
    flip = torch.rand(b, generator=generator, device=_draw_device(generator)) < p
    flip = flip.to(images.device).view(b, 1, 1, 1)
    return torch.where(flip, images.flip(-1), images)


class PadCropFlip:
    """The standard CIFAR / SVHN / STL-10 augmentation: pad-crop then horizontal flip.

    Call it as ``augment(images, generator)``; this is the form ``BatchLoader``'s
    ``augment`` argument expects. ``flip_p=0`` gives crop only (e.g. for digits).
    """

    def __init__(self, padding: int = 4, flip_p: float = 0.5) -> None:
        self.padding = check_non_negative_int("padding", padding)
        self.flip_p = check_rate("flip_p", flip_p, allow_one=True)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        images = random_pad_crop(images, self.padding, generator)
        return random_horizontal_flip(images, self.flip_p, generator)

    def __repr__(self) -> str:
        return f"PadCropFlip(padding={self.padding}, flip_p={self.flip_p})"
