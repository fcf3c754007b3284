"""Unit bookkeeping shared by the scores.

A layer's *units* are the last dimension of a (B, N) tensor, or the channels of a
(B, C, H, W) feature map: a channel's score is the sum over its positions.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["per_unit", "normalise_rows"]


def per_unit(values: Tensor) -> Tensor:
    """(B, N) or (B, C, *spatial) -> (B, N): sum over every position of a channel."""
    if values.dim() == 2:
        return values
    if values.dim() < 2:
        raise ValueError(f"expected a (B, N) or (B, C, ...) tensor, got shape {tuple(values.shape)}")
    return values.flatten(2).sum(dim=2)


def normalise_rows(scores: Tensor) -> Tensor:
    """Turn non-negative (B, N) scores into one distribution per row.

    A row with nothing in it (sum 0) becomes the uniform 1/N: no information means
    every unit is equally important, which Eq. 3 maps back to the base rate.
    """
    total = scores.sum(dim=1, keepdim=True)
    uniform = scores.new_full((), 1.0 / scores.shape[1])
    return (scores / total.clamp_min(1e-30)).where(total > 0, uniform)
