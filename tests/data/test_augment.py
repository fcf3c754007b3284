"""Batch augmentation: seeded, shape-preserving, exact flips and crops, flip rate."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ydrop.data import PadCropFlip, random_horizontal_flip, random_pad_crop


def _batch(b=16, c=3, h=8, w=10, seed=0):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_crop_shape_seed_and_identity():
    x = _batch()
    a = random_pad_crop(x, 4, torch.Generator().manual_seed(1))
    b = random_pad_crop(x, 4, torch.Generator().manual_seed(1))
    c = random_pad_crop(x, 4, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(random_pad_crop(x, 0, torch.Generator().manual_seed(3)), x)


def test_crop_equals_per_sample_reference():
    x, p = _batch(b=32), 3
    out = random_pad_crop(x, p, torch.Generator().manual_seed(5))
    offsets = torch.randint(0, 2 * p + 1, (2, 32), generator=torch.Generator().manual_seed(5))
    padded = F.pad(x, (p, p, p, p))
    for i in range(32):  # slow reference, one sample at a time
        top, left = offsets[0, i], offsets[1, i]
        assert torch.equal(out[i], padded[i, :, top : top + 8, left : left + 10])


def test_crop_is_a_shift_with_zero_fill():
    x = torch.ones(200, 1, 6, 6)
    out = random_pad_crop(x, 2, torch.Generator().manual_seed(0))
    # each output is a window of a zero-padded block of ones: the ones form a rectangle
    kept = out.sum(dim=(1, 2, 3))
    assert kept.max() == 36 and kept.min() >= 16  # shift of at most 2 in each direction
    assert set(out.unique().tolist()) == {0.0, 1.0}


def test_flip_is_exact():
    x = _batch(b=64)
    out = random_horizontal_flip(x, 0.5, torch.Generator().manual_seed(0))
    flipped = [torch.equal(out[i], x[i].flip(-1)) for i in range(64)]
    kept = [torch.equal(out[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)
    assert torch.equal(random_horizontal_flip(x, 1.0), x.flip(-1))
    assert torch.equal(random_horizontal_flip(x, 0.0), x)


def test_flip_rate():
    # B = 20000 Bernoulli(0.3) coins: std of the rate is sqrt(0.3*0.7/20000) = 0.0032;
    # a 0.015 tolerance is over 4.5 standard deviations.
    b, p = 20000, 0.3
    x = torch.arange(2.0).view(1, 1, 1, 2).expand(b, 1, 1, 2)
    out = random_horizontal_flip(x, p, torch.Generator().manual_seed(0))
    rate = (out[:, 0, 0, 0] == 1).float().mean().item()
    assert abs(rate - p) < 0.015, rate
    assert math.isclose(0.015 / math.sqrt(p * (1 - p) / b), 4.63, rel_tol=0.01)


def test_same_result_for_any_batch_device_and_dtype():
    x = (_batch() * 255).to(torch.uint8)
    aug = PadCropFlip(padding=2)
    a = aug(x, torch.Generator().manual_seed(9))
    b = aug(x.float(), torch.Generator().manual_seed(9))
    assert a.dtype == torch.uint8 and torch.equal(a.float(), b)
    if torch.cuda.is_available():  # pragma: no cover - no GPU on the CI machine
        c = aug(x.float().cuda(), torch.Generator().manual_seed(9))
        assert torch.equal(c.cpu(), b)


def test_argument_errors():
    x = _batch()
    with pytest.raises(ValueError, match=r"padding must be an integer >= 0, got -1"):
        random_pad_crop(x, -1)
    with pytest.raises(ValueError, match=r"p must be a number in \[0, 1\], got 1.5"):
        random_horizontal_flip(x, 1.5)
    with pytest.raises(ValueError, match=r"images must be a tensor of shape \(B, C, H, W\), got a tensor of shape \(3, 8, 10\)"):
        random_pad_crop(x[0])
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        random_horizontal_flip(x, 0.5, generator=0)
