"""The product of groups of rows with a weight, reading only the rows' changes.

In the conductance pass (Y-Drop, Eq. 2), the cotangent that reaches a Linear layer
just below a linear head is, at every point of the path, the head's row of the
target class masked by the ReLU pattern at that point. Along the path few units
change state (2-27 % of FC_1's units between neighbouring points, fewer once
trained), so the group of rows of one point differs from that of the next in a few
entries. Its product with the weight is the previous group's product plus the
product of the difference, and a sparse product of differences reads only the weight rows
of the changed entries.

The first group has a second shortcut. At a baseline shared by all samples the
first point (alpha = 0) is one point for all of them, so its cotangent differs only
by the target class: of B_c = 12 samples of 10 classes, about 7 rows are distinct
(``RepeatedRows``), and through weights large enough for it to pay
(``MIN_REPEATS_WEIGHT``) only those are multiplied.

Shapes: rows (G, R, out) (G points, R rows each), weight (out, in), result (G, R, in).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from ._products import times

__all__ = ["rows_times_weight", "RepeatedRows", "repeated_by_class"]

# A group goes through the sparse product when at most this fraction of its
# entries differs from the next group. Measured on this project's CPU (one thread):
# F.embedding_bag with per-entry weights costs about 0.1 us per changed entry of a
# 1024-wide weight and 0.23 us of a 2048-wide one, while the 12 more rows a group
# adds to the dense product cost 0.4 ms and 2 ms: the bag wins up to about a third
# of the entries changed. On the conductance pass's own cotangents (FC_1, FC_2,
# S_2), 0.25 ran the product fastest of 0.15, 0.2, 0.25 and 0.3.
SPARSE_FRACTION = 0.25
# Below this many multiply-adds per group the route's fixed cost (counting the
# changes, nonzero, index) of about 0.1 ms outweighs what it saves: a group of 12
# rows through a 1024 x 1024 weight costs 0.4 ms, one through a 10-class head 2 us.
MIN_GROUP_MULTIPLY_ADDS = 2**22
# A weight with at least this many entries multiplies only the distinct rows of a
# repeated first group (``RepeatedRows``). Each row left out saves a row's product,
# and finding the classes costs about 0.1 ms inside a training step (unique, scatter,
# two gathers): on FC_2's 2048 x 2048 weights 8 of 12 rows saved 0.28 ms per
# product; on FC_1's 1024 x 1024 one, 0.02 ms, less than the lookup.
MIN_REPEATS_WEIGHT = 2048 * 2048


@dataclass(frozen=True)
class RepeatedRows:
    """Group 0's rows are copies of a few of them: row r equals row ``kept[index[r]]``.
    ``kept`` (U,) and ``index`` (R,) are int64 on the rows' device."""

    kept: Tensor
    index: Tensor


def repeated_by_class(target: Tensor) -> RepeatedRows | None:
    """Rows that depend only on each sample's class ``target`` (B,): one kept row per
    class present (its first sample). None when every class appears once, or off the
    CPU (the number of classes present would be read from the device)."""
    if target.device.type != "cpu":
        return None
    classes, index = torch.unique(target, return_inverse=True)
    count, samples = classes.shape[0], target.shape[0]
    if count == samples:
        return None
    first = index.new_full((count,), samples)
    return RepeatedRows(first.scatter_reduce_(0, index, _row_numbers(samples, target.device), "amin"), index)


def rows_times_weight(rows: Tensor, weight: Tensor, repeated: RepeatedRows | None = None) -> Tensor:
    """``rows @ weight`` for rows (G, R, out) and weight (out, in), equal up to float
    rounding. When one group's product is large enough to pay for the route
    (``MIN_GROUP_MULTIPLY_ADDS``), group 0 is multiplied densely, and every later
    group g whose difference from group g - 1 has at most ``SPARSE_FRACTION``
    non-zero entries is group g - 1's product plus the sparse product of that
    difference (neighbouring points of the path differ least); the others densely,
    in one product with group 0, so that the weight is read once. On that route,
    with ``repeated`` (group 0's rows are copies of a few), only group 0's distinct
    rows are multiplied.

    Only on the CPU, in float32 / float64: the number of changed entries decides the
    route, and reading it on an accelerator would wait for the device (where the
    dense product is cheap anyway).
    """
    groups, width = rows.shape[0], rows.shape[1]
    small = rows[0].numel() * weight.shape[1] < MIN_GROUP_MULTIPLY_ADDS
    if small or rows.device.type != "cpu" or rows.dtype not in (torch.float32, torch.float64):
        return times(rows.flatten(0, 1), weight).unflatten(0, rows.shape[:2])
    if repeated is not None and repeated.index.shape[0] != width:
        raise ValueError(f"repeated: {repeated.index.shape[0]} rows indexed, the groups have {width}")
    differences = rows[1:] - rows[:-1]  # group g's change from g - 1 at index g - 1
    # Host-side read of G - 1 counts: on the CPU this is no device synchronisation.
    changed = torch.count_nonzero(differences.flatten(1), dim=1).tolist()
    limit = SPARSE_FRACTION * rows[0].numel()
    sparse = [False] + [count <= limit for count in changed]
    result = rows.new_empty(rows.shape[:2] + weight.shape[1:])
    _dense_groups_times_weight(rows, weight, [group for group in range(groups) if not sparse[group]], repeated, result)
    if not any(sparse):
        return result
    runs = _runs(sparse)
    # Only the differences of groups that take the sparse product.
    used = [differences[start - 1:stop - 1] for start, stop in runs]
    used = used[0] if len(used) == 1 else torch.cat(used)
    steps = _sparse_rows_times_weight(used.flatten(0, 1), weight).unflatten(0, (-1, width))
    groups_with_steps = [group for start, stop in runs for group in range(start, stop)]
    # From the bottom up, so that group g - 1 is complete when group g adds its step.
    for group, step in zip(groups_with_steps, steps):
        torch.add(result[group - 1], step, out=result[group])
    return result


def _dense_groups_times_weight(
    rows: Tensor, weight: Tensor, dense: list[int], repeated: RepeatedRows | None, result: Tensor
) -> None:
    """``result[g] = rows[g] @ weight`` for the groups ``dense`` (group 0 first), in
    one product so that the weight is read once; group 0 through its distinct rows
    when ``repeated``."""
    width = rows.shape[1]
    first = rows[0] if repeated is None else rows[0].index_select(0, repeated.kept)
    leading = dense == list(range(len(dense)))
    if leading and repeated is None:  # the usual case: the groups' rows are one block already
        inputs = rows[: len(dense)].flatten(0, 1)
    else:
        inputs = torch.cat([first] + [rows[group] for group in dense[1:]]) if len(dense) > 1 else first
    products = times(inputs, weight)
    kept = first.shape[0]
    if leading:
        result[1: len(dense)] = products[kept:].unflatten(0, (-1, width))
    else:
        for position, group in enumerate(dense[1:]):
            result[group] = products[kept + position * width: kept + (position + 1) * width]
    if repeated is None:
        result[0] = products[:kept]
    else:
        torch.index_select(products[:kept], 0, repeated.index, out=result[0])


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """(start, stop) of every maximal run of consecutive indices whose flag is set."""
    runs: list[tuple[int, int]] = []
    for index, flag in enumerate(flags):
        if not flag:
            continue
        if runs and runs[-1][1] == index:
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs


def _sparse_rows_times_weight(rows: Tensor, weight: Tensor) -> Tensor:
    """rows (N, out) @ weight (out, in) through the non-zero entries of ``rows``:
    each row is a bag of weight rows, summed with the entries as coefficients."""
    row, column = rows.nonzero(as_tuple=True)
    # nonzero() lists entries row by row, so each row's bag starts where its index first appears.
    offsets = torch.searchsorted(row, _row_numbers(rows.shape[0], rows.device))
    return F.embedding_bag(column, weight, offsets, mode="sum", per_sample_weights=rows[row, column])


@lru_cache(maxsize=64)
def _row_numbers(count: int, device: torch.device) -> Tensor:
    """``arange(count)``, made once per size and device (never changed in place)."""
    return torch.arange(count, device=device)
