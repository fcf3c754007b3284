"""The embedded default dataset: scikit-learn's ``load_digits`` (no download).

1,797 greyscale 8x8 images of the digits 0..9 (the UCI "optical recognition of
handwritten digits" test set), with integer pixel values 0..16, scaled here by 1/16
to [0, 1].

The split is fixed: a permutation of the 1,797 indices by
``numpy.random.RandomState(0)`` (whose stream numpy keeps stable across versions);
its first 360 indices form the **test** split and the other 1,437 the **train**
split (about 20%, as 1437/360 in the literature). Both keep the original order.
The normalisation mean and std are those of the train split's pixels.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from .dataset import DatasetInfo, ImageDataset

__all__ = ["load_digits_split", "digits_info", "DIGITS_TEST_SIZE", "DIGITS_SPLIT_SEED"]

DIGITS_TEST_SIZE = 360
DIGITS_SPLIT_SEED = 0


@lru_cache(maxsize=1)
def _digits_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)  # (1797, 8, 8), exact: k/16 is representable
    labels = bunch.target.astype(np.int64)
    perm = np.random.RandomState(DIGITS_SPLIT_SEED).permutation(len(labels))
    test_idx = np.sort(perm[:DIGITS_TEST_SIZE])
    train_idx = np.sort(perm[DIGITS_TEST_SIZE:])
    splits = {}
    for name, idx in (("train", train_idx), ("test", test_idx)):
        x, y = images[idx][:, None], labels[idx]
        x.setflags(write=False)
        y.setflags(write=False)
        splits[name] = (x, y)
    return splits


@lru_cache(maxsize=1)
def digits_info() -> DatasetInfo:
    """Info for ``digits``; mean and std are computed from the train split."""
    train = _digits_splits()["train"][0].astype(np.float64)
    return DatasetInfo(
        name="digits",
        num_classes=10,
        in_shape=(1, 8, 8),
        mean=(float(train.mean()),),
        std=(float(train.std()),),
        class_names=tuple(str(d) for d in range(10)),
    )


def load_digits_split(split: str) -> ImageDataset:
    """``split`` is ``"train"`` (1,437 images) or ``"test"`` (360): images (N, 1, 8, 8)."""
    images, labels = _digits_splits()[split]
    return ImageDataset(torch.tensor(images), torch.tensor(labels), digits_info(), split=split)
