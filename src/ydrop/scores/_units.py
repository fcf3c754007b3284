"""Units: the dimension of a layer's (B, *) activation that holds them, ``unit_dim``.

By default the N features of (B, N), the D features of a (B, T, D) sequence and the
C channels of a (B, C, H, W) or (B, C, D, H, W) conv map; an explicit ``unit_dim``
covers the rest (a Conv1d map (B, C, L): 1). A unit's score is summed over the other
non-batch dimensions.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["resolve_unit_dim", "per_unit", "normalise_rows", "one_hot_targets"]


def resolve_unit_dim(ndim: int, unit_dim: int | None = None) -> int:
    """The units' dimension (>= 1) of a ``ndim``-dimensional activation; ``unit_dim``
    None: the default; an int may be negative (-1: the last), never the batch's."""
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
    others = [d for d in range(1, values.dim()) if d != dim]
    return values.sum(dim=others) if others else values


def normalise_rows(scores: Tensor) -> Tensor:
    """Non-negative (B, N) scores as one distribution per row; a row summing to 0
    becomes the uniform 1/N (no information: Eq. 3 gives back the base rate)."""
    total = scores.sum(dim=1, keepdim=True)
    uniform = scores.new_full((), 1.0 / scores.shape[1])
    return (scores / total.clamp_min(1e-30)).where(total > 0, uniform)


def one_hot_targets(target: Tensor, logits: Tensor) -> Tensor:
    """(B, classes) rows, 1 at each sample's ``target`` class, like ``logits``;
    ``scatter_``, as ``F.one_hot`` reads the largest index on the host (a GPU sync)."""
    rows = logits.new_zeros(target.shape[0], logits.shape[-1])
    return rows.scatter_(1, target.to(logits.device).unsqueeze(1), 1.0)
