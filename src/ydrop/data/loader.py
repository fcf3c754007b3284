"""``BatchLoader``: batches of an in-memory dataset, normalised and on the device.

Unlike ``torch.utils.data.DataLoader`` there is no per-sample ``__getitem__`` and no
collation: each batch is one ``index_select`` on the dataset's tensors, moved to the
device, augmented as a whole and normalised.

Reproducibility: the shuffle order and the augmentation of epoch ``e`` depend only on
``(seed, e)``; each gets a ``torch.Generator`` seeded from those two numbers through
``numpy.random.SeedSequence`` (so nearby seeds and epochs give unrelated streams).
A run resumed at epoch ``e`` calls ``set_epoch(e)`` and sees exactly the batches of
the original run.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from .._validation import check_non_negative_int, check_positive_int
from .dataset import ImageDataset

__all__ = ["BatchLoader"]

Augment = Callable[[Tensor, torch.Generator], Tensor]
_SHUFFLE, _AUGMENT = 0, 1  # stream ids: independent generators for order and augmentation


def _generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, epoch, stream]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class BatchLoader:
    """Iterate ``(images, labels)`` batches of an :class:`ImageDataset`.

    Args:
        dataset: the dataset (its tensors stay on the CPU; each batch is moved).
        batch_size: samples per batch, >= 1.
        shuffle: draw a new permutation each epoch (else the dataset's order).
        seed: integer >= 0; with the epoch it fixes order and augmentation.
        drop_last: drop the final incomplete batch.
        device: where batches are delivered (``"cpu"``, ``"cuda"``, a ``torch.device``).
        augment: ``None`` or a callable ``augment(images, generator) -> images`` applied to
            the [0, 1] batch on the device before normalisation, e.g. ``PadCropFlip()``.
        normalize: subtract ``info.mean`` and divide by ``info.std`` per channel.

    Yields:
        images float32 (B, C, H, W) and labels int64 (B,), both on ``device``.

    Each ``for`` loop over the loader is one epoch: it uses the current ``epoch`` and
    then advances it by one. ``set_epoch(e)`` sets the epoch the next loop uses.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        device: str | torch.device = "cpu",
        augment: Augment | None = None,
        normalize: bool = True,
    ) -> None:
        if not isinstance(dataset, ImageDataset):
            raise TypeError(f"dataset must be an ImageDataset, got {type(dataset).__name__}")
        self.dataset = dataset
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.seed = check_non_negative_int("seed", seed)
        for flag, value in (("shuffle", shuffle), ("drop_last", drop_last), ("normalize", normalize)):
            if not isinstance(value, bool):
                raise ValueError(f"{flag} must be True or False, got {value!r}")
        self.shuffle, self.drop_last, self.normalize = shuffle, drop_last, normalize
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda:0', got {device!r}") from exc
        if augment is not None and not callable(augment):
            raise TypeError(f"augment must be None or a callable (images, generator) -> images, got {augment!r}")
        self.augment = augment
        info = dataset.info
        self._mean = torch.tensor(info.mean, dtype=torch.float32, device=self.device).view(-1, 1, 1)
        self._std = torch.tensor(info.std, dtype=torch.float32, device=self.device).view(-1, 1, 1)
        self._epoch = 0

    @property
    def epoch(self) -> int:
        """The epoch the next iteration will use."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use ``epoch`` (order and augmentation follow from it)."""
        self._epoch = check_non_negative_int("epoch", epoch)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def order(self, epoch: int) -> Tensor:
        """The sample indices of ``epoch`` in delivery order: (N,) int64."""
        n = len(self.dataset)
        if not self.shuffle:
            return torch.arange(n)
        return torch.randperm(n, generator=_generator(self.seed, epoch, _SHUFFLE))

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch = self._epoch
        self._epoch += 1
        return self._batches(epoch)

    def _batches(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        order = self.order(epoch)
        aug_generator = _generator(self.seed, epoch, _AUGMENT)
        images, labels = self.dataset.images, self.dataset.labels
        non_blocking = self.device.type == "cuda"
        for i in range(len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            x = images.index_select(0, index).to(self.device, non_blocking=non_blocking)
            y = labels.index_select(0, index).to(self.device, non_blocking=non_blocking)
            if self.augment is not None:
                x = self.augment(x, aug_generator)
            if self.normalize:
                x = (x - self._mean) / self._std
            yield x, y

    def __repr__(self) -> str:
        return (
            f"BatchLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"seed={self.seed}, drop_last={self.drop_last}, device={str(self.device)!r}, augment={self.augment!r})"
        )
