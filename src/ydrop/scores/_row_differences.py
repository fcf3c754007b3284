"""The product of groups of rows with a weight, reading only the rows' changes.

In the conductance pass (Y-Drop, Eq. 2), the cotangent that reaches a Linear layer
just below a linear head is, at every point of the path, the head's row of the
target class masked by the ReLU pattern at that point. Along the path few units
change state (2-27 % of FC_1's units between neighbouring points, fewer once
trained), so the group of rows of one point differs from that of the next in a few
entries. Its product with the weight is the previous group's product plus the
product of the difference, and a sparse product of differences reads only the weight rows
of the changed entries.

Shapes: rows (G, R, out) (G points, R rows each), weight (out, in), result (G, R, in).
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["rows_times_weight"]

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


def rows_times_weight(rows: Tensor, weight: Tensor) -> Tensor:
    """``rows @ weight`` for rows (G, R, out) and weight (out, in), equal up to float
    rounding. When one group's product is large enough to pay for the route
    (``MIN_GROUP_MULTIPLY_ADDS``), group 0 is multiplied densely, and every later
    group g whose difference from group g - 1 has at most ``SPARSE_FRACTION``
    non-zero entries is group g - 1's product plus the sparse product of that
    difference (neighbouring points of the path differ least); the others densely,
    in one product with group 0, so that the weight is read once.

    Only on the CPU, in float32 / float64: the number of changed entries decides the
    route, and reading it on an accelerator would wait for the device (where the
    dense product is cheap anyway).
    """
    groups, width = rows.shape[0], rows.shape[1]
    small = rows[0].numel() * weight.shape[1] < MIN_GROUP_MULTIPLY_ADDS
    if small or rows.device.type != "cpu" or rows.dtype not in (torch.float32, torch.float64):
        return rows @ weight
    differences = rows[1:] - rows[:-1]  # group g's change from g - 1 at index g - 1
    # Host-side read of G - 1 counts: on the CPU this is no device synchronisation.
    changed = torch.count_nonzero(differences.flatten(1), dim=1).tolist()
    limit = SPARSE_FRACTION * rows[0].numel()
    sparse = [False] + [count <= limit for count in changed]
    if not any(sparse):
        return rows @ weight
    result = rows.new_empty(rows.shape[:2] + weight.shape[1:])
    dense = [group for group in range(groups) if not sparse[group]]
    if dense == list(range(len(dense))):  # the usual case, leading groups: no copies
        torch.matmul(rows[: len(dense)].flatten(0, 1), weight, out=result[: len(dense)].flatten(0, 1))
    else:
        products = torch.cat([rows[group] for group in dense]) @ weight
        for index, group in enumerate(dense):
            result[group] = products[index * width: (index + 1) * width]
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
