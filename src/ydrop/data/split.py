"""A seeded train / validation split of a training set.

The Y-Drop paper holds out 25% of the training set for validation (early stopping);
for STL-10 a caller may prefer 10%.
"""

from __future__ import annotations

import torch

from .._validation import check_non_negative_int, check_open_unit
from .dataset import ImageDataset

__all__ = ["train_val_split"]


def train_val_split(
    dataset: ImageDataset, val_fraction: float = 0.25, seed: int = 0
) -> tuple[ImageDataset, ImageDataset]:
    """Split ``dataset`` at random into disjoint train and validation parts.

    ``round(N * val_fraction)`` samples go to validation, chosen by a permutation
    from a ``torch.Generator`` seeded with ``seed``; the same seed gives the same
    split. Each part keeps the original sample order and the original ``info``
    (normalisation statistics stay the published ones).

    Returns:
        ``(train, val)`` with ``split`` set to ``"train"`` and ``"val"``.
    """
    if not isinstance(dataset, ImageDataset):
        raise TypeError(f"dataset must be an ImageDataset, got {type(dataset).__name__}")
    val_fraction = check_open_unit("val_fraction", val_fraction)
    check_non_negative_int("seed", seed)
    n = len(dataset)
    n_val = round(n * val_fraction)
    if n_val == 0 or n_val == n:
        raise ValueError(
            f"val_fraction={val_fraction} of {n} samples leaves {n_val} for validation and {n - n_val} for "
            "training; both parts must be non-empty"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx = perm[:n_val].sort().values
    train_idx = perm[n_val:].sort().values
    return dataset.subset(train_idx, split="train"), dataset.subset(val_idx, split="val")
