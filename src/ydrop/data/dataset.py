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

from .._validation import check_positive_int

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
        check_positive_int("num_classes", self.num_classes)
        shape = _check_in_shape(self.in_shape)
        object.__setattr__(self, "in_shape", shape)
        for field in ("mean", "std"):
            object.__setattr__(self, field, _channel_stats(field, getattr(self, field), shape[0]))
        if self.class_names is not None:
            object.__setattr__(self, "class_names", _class_names(self.class_names, self.num_classes))


def _check_in_shape(in_shape: Any) -> tuple[int, int, int]:
    """``in_shape`` as a tuple (C, H, W) of positive integers."""
    shape = tuple(in_shape)
    if len(shape) != 3 or not all(isinstance(d, int) and d >= 1 for d in shape):
        raise ValueError(f"in_shape must be three positive integers (C, H, W), got {in_shape!r}")
    return shape


def _channel_stats(field: str, given: Any, channels: int) -> tuple[float, ...]:
    """``mean`` or ``std`` (``field``) as a tuple of ``channels`` finite floats; a std
    must also be > 0, since :func:`normalize` divides by it."""
    values = tuple(float(v) for v in given)
    if len(values) != channels:
        raise ValueError(f"{field} must have one value per channel ({channels}), got {given!r}")
    if not all(math.isfinite(v) for v in values) or (field == "std" and min(values) <= 0):
        allowed = "finite and > 0" if field == "std" else "finite"
        raise ValueError(f"{field} values must be {allowed}, got {values!r}")
    return values


def _class_names(given: Any, num_classes: int) -> tuple[str, ...]:
    """``class_names`` as a tuple of ``num_classes`` strings."""
    names = tuple(str(n) for n in given)
    if len(names) != num_classes:
        raise ValueError(f"class_names must have num_classes={num_classes} entries, got {len(names)}")
    return names


def _describe(value: Any) -> str:
    """How an error message names a value that should have been a tensor: its dtype
    and shape, or the type of a non-tensor."""
    if isinstance(value, Tensor):
        return f"{value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


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
        _check_images(images, info)
        _check_labels(labels, images.shape[0], info)
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


def _check_images(images: Any, info: DatasetInfo) -> None:
    """``images`` must be a float32 tensor (N, C, H, W) with (C, H, W) = ``info.in_shape``."""
    if not isinstance(images, Tensor) or images.dim() != 4 or images.dtype != torch.float32:
        raise ValueError(f"images must be a float32 tensor of shape (N, C, H, W), got {_describe(images)}")
    if tuple(images.shape[1:]) != info.in_shape:
        raise ValueError(
            f"images have per-image shape {tuple(images.shape[1:])}, but info.in_shape is {info.in_shape}"
        )


def _check_labels(labels: Any, count: int, info: DatasetInfo) -> None:
    """``labels`` must be an int64 tensor (count,) of class indices in [0, info.num_classes)."""
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.dtype != torch.int64:
        raise ValueError(f"labels must be an int64 tensor of shape (N,), got {_describe(labels)}")
    if labels.shape[0] != count:
        raise ValueError(f"images hold {count} samples but labels hold {labels.shape[0]}")
    if labels.numel() > 0:
        # The extremes are enough to find an out-of-range label and to echo one.
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= info.num_classes:
            raise ValueError(
                f"labels must be in [0, {info.num_classes - 1}] for {info.name!r}, found {low if low < 0 else high}"
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
        raise ValueError(
            f"images must be a floating tensor of shape (N, C, H, W) or (C, H, W), got {_describe(images)}"
        )
    mean = torch.as_tensor(info.mean, dtype=images.dtype, device=images.device)
    std = torch.as_tensor(info.std, dtype=images.dtype, device=images.device)
    channels = images.shape[-3]
    if mean.numel() != channels:
        raise ValueError(
            f"images have {channels} channels but info {getattr(info, 'name', '')!r} has statistics "
            f"for {mean.numel()}"
        )
    return (images - mean.view(-1, 1, 1)) / std.view(-1, 1, 1)
