"""Loss and accuracy sums of a classifier, kept on the device and added over ranks.

:class:`EpochSums` accumulates a training epoch's (loss, correct) inside the loop;
:func:`loss_and_accuracy` evaluates a model over a loader with it (validation, test,
and scripts that measure a trained model). Under ``torchrun`` each rank evaluates its
contiguous share of every batch and the sums are all-reduced, so every rank gets the
same figures.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import distributed as dist_

__all__ = ["EpochSums", "loss_and_accuracy"]


def _sum_over_ranks(*values: float) -> list[float]:
    """Per-rank sums (loss, correct, count) added over all ranks, in float64."""
    total = dist_.all_reduce_sum(torch.tensor(values, dtype=torch.float64))
    return total.tolist()


class EpochSums:
    """Running (loss sum, correct) of an epoch, kept on the device: one host read per
    epoch instead of two per batch, so a GPU is never made to wait inside the loop."""

    def __init__(self) -> None:
        self.sums: Tensor | None = None
        self.count = 0

    def add(self, loss_sum: Tensor, logits: Tensor, y: Tensor) -> None:
        """``loss_sum``: the batch's summed loss (a 0-d tensor); ``logits`` (B, classes),
        ``y`` (B,) class indices."""
        batch = torch.stack([loss_sum.detach().double(), (logits.detach().argmax(1) == y).sum().double()])
        self.sums = batch if self.sums is None else self.sums + batch
        self.count += y.numel()

    def totals(self) -> tuple[float, float, int]:
        """(loss sum, correct, count), summed over the ranks of a distributed run."""
        loss, correct = self.sums.tolist() if self.sums is not None else (0.0, 0.0)
        if dist_.world_size() > 1:
            return tuple(_sum_over_ranks(loss, correct, self.count))
        return loss, correct, self.count


def loss_and_accuracy(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], limit: int | None = None,
                      heartbeat: Callable[[], None] | None = None) -> tuple[float, float]:
    """(mean cross-entropy, accuracy in %) of ``model`` in eval mode over ``batches`` of
    (x (B, *), y (B,)), at most ``limit`` of them; ``heartbeat()`` is called per batch
    (a long evaluation keeps a run's lock fresh). Leaves the model in eval mode."""
    model.eval()
    sums = EpochSums()
    with torch.no_grad():
        for i, (x, y) in enumerate(batches):
            if limit is not None and i >= limit:
                break
            if heartbeat is not None:
                heartbeat()
            x, y = dist_.shard_rows(x, y)
            if y.numel() == 0:
                continue  # a batch smaller than the number of ranks
            logits = model(x)
            sums.add(F.cross_entropy(logits, y, reduction="sum"), logits, y)
    total_loss, correct, count = sums.totals()
    return total_loss / max(count, 1), 100.0 * correct / max(count, 1)
