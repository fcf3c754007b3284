"""Units: which dimension of a layer's activation holds them, and scores per unit.

A layer's *units* lie along one dimension of its (B, *) activation, ``unit_dim``:

* (B, N): the N features (``unit_dim = 1``);
* (B, T, D), a sequence: the D features of every token (``unit_dim = 2``);
* (B, C, H, W) or (B, C, D, H, W), a conv map: the C channels (``unit_dim = 1``).

An explicit ``unit_dim`` covers the rest, e.g. a Conv1d map (B, C, L) with
``unit_dim = 1``. A unit's score is summed over the other non-batch dimensions
(a channel over its positions, a feature over the tokens). The logits' units are the
classes: ``one_hot_targets`` marks each sample's target.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["resolve_unit_dim", "per_unit", "normalise_rows", "one_hot_targets"]


def resolve_unit_dim(ndim: int, unit_dim: int | None = None) -> int:
    """The (non-negative) dimension of the units of a ``ndim``-dimensional activation.

    ``unit_dim`` None takes the default of the module docstring; an int may be
    negative (-1: the last dimension) but never 0, the batch.
    """
    if ndim < 2:
        raise ValueError(f"an activation needs a batch and a unit dimension, (B, N, ...), got {ndim} dimension(s)")
    if unit_dim is None:
        return 2 if ndim == 3 else 1
    resolved = unit_dim + ndim if unit_dim < 0 else unit_dim
    if not 1 <= resolved < ndim:
        raise ValueError(
            f"unit_dim={unit_dim} does not name a non-batch dimension of a {ndim}-dimensional "
            f"activation; allowed: 1 .. {ndim - 1} (or -1 .. -{ndim - 1})"
        )
    return resolved


def per_unit(values: Tensor, unit_dim: int | None = None) -> Tensor:
    """(B, *) -> (B, N): sum over every non-batch dimension but the units'."""
    dim = resolve_unit_dim(values.dim(), unit_dim)
    if values.dim() == 2:
        return values
    others = [d for d in range(1, values.dim()) if d != dim]
    return values.sum(dim=others)


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
