"""Pure functions behind the guided dropout layers (the timm habit: a function
plus a thin module). Shapes: B samples, N units (or channels). The mask functions
work on rows along the last dimension, (..., N): (B, N) for one mask per sample, or
(B, T, N) for one per sample and token of a sequence (see ``layers/base.py``).

Y-Drop (Georgiou et al.):
    Eq. 4  mean conductance per unit          -> :func:`strong_units`
    Eq. 5  bucket map g_B                     -> :func:`bucket_drop_rates`
    Eq. 8  p_b = min(mu_b + |N(0, s_b)|, max) -> :func:`sample_bucket_rates`
    Eq. 6  EMA of the drop rate               -> :func:`ema_update`
Excitation Dropout (Zunino et al.):
    Eq. 3  retain probability from p_EB       -> :func:`retain_probability`
    per-sample rescale N / kept               -> :func:`per_sample_rescaled_mask`
    or 1 / keep per unit (unbiased)           -> :func:`inverse_keep_mask`
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "strong_count",
    "strong_units",
    "bucket_drop_rates",
    "sample_bucket_rates",
    "ema_update",
    "retain_probability",
    "per_sample_rescaled_mask",
    "inverse_keep_mask",
    "bernoulli_mask",
]


def bernoulli_mask(keep: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A 0/1 float mask with P(1) = ``keep`` elementwise (any broadcastable shape).

    ``uniform < keep`` draws the same distribution as ``torch.bernoulli(keep)`` but
    is an order of magnitude faster on the CPU for per-element probabilities (it
    was 12 % of a Y-Drop training step).
    """
    uniform = torch.rand(keep.shape, dtype=keep.dtype, device=keep.device, generator=generator)
    # In place: the comparison writes 1.0 / 0.0 over the draws, without the boolean
    # mask and its conversion (together 0.1 ms per 64 x 1024 layer on the CPU).
    return uniform.lt_(keep)


def strong_count(strong_fraction: float, units: int) -> int:
    """ceil(w_S * N), the size of the strong bucket (Eq. 5).

    Rounded first so that 0.3 * 10 = 3.0000000000000004 counts as 3, not 4.
    """
    return min(units, max(1, math.ceil(round(strong_fraction * units, 9))))


def strong_units(mean_scores: Tensor, strong_fraction: float) -> Tensor:
    """Boolean (N,) mask of the ceil(w_S * N) units with the highest mean score."""
    units = mean_scores.shape[0]
    # Unsorted: only the set matters, and the order costs 40 % of the topk.
    top = mean_scores.topk(strong_count(strong_fraction, units), sorted=False).indices
    return torch.zeros(units, dtype=torch.bool, device=mean_scores.device).index_fill_(0, top, True)


def bucket_drop_rates(strong: Tensor, p_low: Tensor, p_high: Tensor) -> Tensor:
    """g_B (N,): ``p_high`` for strong units, ``p_low`` for weak ones (Eq. 5)."""
    return torch.where(strong, p_high, p_low)


def sample_bucket_rates(
    mu: Tensor, sigma: Tensor, p_max: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """One draw of each bucket's drop rate from the right half-normal, capped (Eq. 8).

    ``mu``, ``sigma``, ``p_max``: tensors of shape (buckets,), e.g. [low, high].
    Runs on their device; nothing is copied to the host.
    """
    noise = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device, generator=generator)
    return torch.minimum(mu + noise.abs() * sigma, p_max)


def ema_update(ema: Tensor, rates: Tensor, elasticity: float) -> Tensor:
    """In place p <- (1 - alpha) p + alpha g (Eq. 6); returns ``ema``."""
    return ema.mul_(1.0 - elasticity).add_(rates, alpha=elasticity)


def retain_probability(p_eb: Tensor, base_retain: float) -> Tensor:
    """Eq. 3 of Excitation Dropout, (..., N) -> (..., N).

    keep = 1 - ((1-P)(N-1) p_EB) / (((1-P)N - 1) p_EB + P), with P the base retain
    probability. keep = P at p_EB = 1/N, 1 at p_EB = 0 and 0 at p_EB = 1. The
    denominator is linear in p_EB and equals P > 0 at 0 and (1-P)(N-1) >= 0 at 1,
    so it never changes sign on [0, 1]; the clamp only absorbs rounding.
    """
    units = p_eb.shape[-1]
    drop_share = 1.0 - base_retain
    numerator = drop_share * (units - 1) * p_eb
    denominator = (drop_share * units - 1.0) * p_eb + base_retain
    keep = 1.0 - numerator / denominator.clamp_min(1e-12)
    return keep.clamp_(0.0, 1.0)


def per_sample_rescaled_mask(keep: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Bernoulli(keep) mask (..., N), kept units scaled by N / (kept in that row).

    This is the authors' rescale, per sample for (B, N); for a sequence's (B, T, N)
    each token's row is rescaled on its own, so every row keeps its total, as a
    sample does. A row that lost every unit stays all zero (the scale is computed
    against max(kept, 1)), never inf or NaN.
    """
    mask = bernoulli_mask(keep, generator)
    kept = mask.sum(dim=-1, keepdim=True)
    return mask.mul_(keep.shape[-1] / kept.clamp_min(1.0))


def inverse_keep_mask(keep: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Bernoulli(keep) mask (..., N), each kept unit scaled by 1 / keep: E[mask] = 1
    per unit, as in standard (inverted) dropout. A unit with keep = 0 is dropped
    and scaled by 0, never inf or NaN.

    Not the authors' rescale: N / kept counts the units that are always kept
    because they are off (p_EB = 0 gives keep = 1), so with ReLU layers it leaves
    the active units smaller in training than at test. The price of the unbiased
    mean is an unbounded variance: the scale 1 / keep grows without limit as keep
    goes to 0 (Eq. 3 gives keep near 0 to the most relevant units).
    """
    mask = bernoulli_mask(keep, generator)
    return mask.mul_(torch.where(keep > 0, keep.reciprocal(), torch.zeros_like(keep)))
