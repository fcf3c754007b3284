"""The in-memory dataset: a tensor of images, a tensor of labels and their metadata.

Every loader in :mod:`ydrop.data` returns an :class:`ImageDataset` with

- ``images``: float32 tensor of shape (N, C, H, W), values in [0, 1];
- ``labels``: int64 tensor of shape (N,), class indices in [0, num_classes);
- ``info``: a :class:`DatasetInfo` (name, classes, input shape, normalisation stats).

Keeping the whole split as one tensor is what lets batches be cut, augmented and
normalised with a few vectorised tensor operations (see ``loader.py``), with no
per-sample Python work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["DatasetInfo", "ImageDataset", "normalize"]


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and a training loop need to know about a dataset.

    Attributes:
        name: dataset name as given to ``load_dataset`` (e.g. ``"cifar10"``).
        num_classes: number of classes; labels are in [0, num_classes).
        in_shape: shape (C, H, W) of one image.
        mean: per-channel mean used by :func:`normalize` (length C), on the [0, 1] scale.
        std: per-channel standard deviation used by :func:`normalize` (length C), > 0.
        class_names: one name per class index, or ``None`` when unknown.
    """

    name: str
    num_classes: int
    in_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1, got {self.num_classes!r}")
        shape = tuple(self.in_shape)
        if len(shape) != 3 or not all(isinstance(d, int) and d >= 1 for d in shape):
            raise ValueError(f"in_shape must be three positive integers (C, H, W), got {self.in_shape!r}")
        object.__setattr__(self, "in_shape", shape)
        channels = shape[0]
        for field in ("mean", "std"):
            values = tuple(float(v) for v in getattr(self, field))
            if len(values) != channels:
                raise ValueError(
                    f"{field} must have one value per channel ({channels}), got {getattr(self, field)!r}"
                )
            if not all(math.isfinite(v) for v in values) or (field == "std" and min(values) <= 0):
                allowed = "finite and > 0" if field == "std" else "finite"
                raise ValueError(f"{field} values must be {allowed}, got {values!r}")
            object.__setattr__(self, field, values)
        if self.class_names is not None:
            names = tuple(str(n) for n in self.class_names)
            if len(names) != self.num_classes:
                raise ValueError(
                    f"class_names must have num_classes={self.num_classes} entries, got {len(names)}"
                )
            object.__setattr__(self, "class_names", names)


class ImageDataset(Dataset):
    """A whole split held in memory.

    Args:
        images: float32 tensor (N, C, H, W) with values in [0, 1]; (C, H, W) must equal
            ``info.in_shape``.
        labels: int64 tensor (N,) of class indices in [0, info.num_classes).
        info: the dataset's :class:`DatasetInfo`.
        split: which split this is (``"train"``, ``"test"``, ``"val"``, ...), for display.

    ``dataset[i]`` returns ``(image (C, H, W), label ())``; ``len(dataset)`` is N.
    """

    def __init__(self, images: Tensor, labels: Tensor, info: DatasetInfo, split: str | None = None) -> None:
        if not isinstance(info, DatasetInfo):
            raise TypeError(f"info must be a DatasetInfo, got {type(info).__name__}")
        if not isinstance(images, Tensor) or images.dim() != 4 or images.dtype != torch.float32:
            got = f"{images.dtype} tensor of shape {tuple(images.shape)}" if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"images must be a float32 tensor of shape (N, C, H, W), got {got}")
        if tuple(images.shape[1:]) != info.in_shape:
            raise ValueError(
                f"images have per-image shape {tuple(images.shape[1:])}, but info.in_shape is {info.in_shape}"
            )
        if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.dtype != torch.int64:
            got = f"{labels.dtype} tensor of shape {tuple(labels.shape)}" if isinstance(labels, Tensor) else type(labels).__name__
            raise ValueError(f"labels must be an int64 tensor of shape (N,), got {got}")
        if labels.shape[0] != images.shape[0]:
            raise ValueError(f"images hold {images.shape[0]} samples but labels hold {labels.shape[0]}")
        if labels.numel() > 0:
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= info.num_classes:
                raise ValueError(
                    f"labels must be in [0, {info.num_classes - 1}] for {info.name!r}, found {low if low < 0 else high}"
                )
        self.images = images
        self.labels = labels
        self.info = info
        self.split = split

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]

    def subset(self, indices: Tensor | Sequence[int], split: str | None = None) -> "ImageDataset":
        """A new dataset with the samples at ``indices`` (copied), in that order."""
        index = torch.as_tensor(indices, dtype=torch.long)
        if index.dim() != 1:
            raise ValueError(f"indices must be one-dimensional, got shape {tuple(index.shape)}")
        return ImageDataset(
            self.images.index_select(0, index),
            self.labels.index_select(0, index),
            self.info,
            split=self.split if split is None else split,
        )

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.info.name!r}, split={self.split!r}, n={len(self)}, "
            f"shape={self.info.in_shape}, classes={self.info.num_classes})"
        )


def normalize(images: Tensor, info: DatasetInfo | Any) -> Tensor:
    """Per-channel ``(images - mean) / std`` with the dataset's published statistics.

    Args:
        images: floating tensor (N, C, H, W) or (C, H, W), on any device.
        info: a :class:`DatasetInfo` (or anything with ``mean`` and ``std`` sequences).

    Returns:
        A new tensor of the same shape, dtype and device.
    """
    if not isinstance(images, Tensor) or images.dim() not in (3, 4) or not images.is_floating_point():
        got = f"{images.dtype} tensor of shape {tuple(images.shape)}" if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a floating tensor of shape (N, C, H, W) or (C, H, W), got {got}")
    mean = torch.as_tensor(info.mean, dtype=images.dtype, device=images.device)
    std = torch.as_tensor(info.std, dtype=images.dtype, device=images.device)
    channels = images.shape[-3]
    if mean.numel() != channels:
        raise ValueError(
            f"images have {channels} channels but info {getattr(info, 'name', '')!r} has statistics "
            f"for {mean.numel()}"
        )
    return (images - mean.view(-1, 1, 1)) / std.view(-1, 1, 1)
