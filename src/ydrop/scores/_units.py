"""Unit bookkeeping shared by the scores.

A layer's *units* are the last dimension of a (B, N) tensor, or the channels of a
(B, C, H, W) feature map: a channel's score is the sum over its positions. The
logits' units are the classes: ``one_hot_targets`` marks each sample's target.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["per_unit", "normalise_rows", "one_hot_targets"]


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


def one_hot_targets(target: Tensor, logits: Tensor) -> Tensor:
    """(B, classes) rows, 1 at each sample's target class, in the logits' dtype and
    device; ``target`` (B,) class indices, ``logits`` (*, classes). Made with
    ``scatter_`` rather than ``F.one_hot``, which reads the largest index back to
    the host (a device synchronisation on a GPU)."""
    rows = logits.new_zeros(target.shape[0], logits.shape[-1])
    return rows.scatter_(1, target.to(logits.device).unsqueeze(1), 1.0)
