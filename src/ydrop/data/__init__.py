"""Datasets, splits, batch augmentation and batch loading for ydrop.

Quick start::

    from ydrop.data import load_dataset, train_val_split, BatchLoader, PadCropFlip

    train = load_dataset("cifar10", root="data", split="train")      # downloads if missing
    train, val = train_val_split(train, val_fraction=0.25, seed=0)     # Y-Drop protocol
    loader = BatchLoader(train, batch_size=64, shuffle=True, seed=0, augment=PadCropFlip())
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for x, y in loader:                                            # normalised, on the device
            ...

Datasets: MNIST, Fashion-MNIST, CIFAR-10/100, SVHN, STL-10, image folders and the
embedded ``digits`` (scikit-learn, no download). The layout expected under ``root``
is documented in :mod:`ydrop.data.specs`; loaders raise :class:`DatasetNotFoundError`
(listing expected paths and URLs) or :class:`DatasetFormatError` (naming the damaged
file and what is wrong).
"""

from .augment import PadCropFlip, random_horizontal_flip, random_pad_crop
from .dataset import DatasetInfo, ImageDataset, normalize
from .download import download_file
from .errors import DatasetFormatError, DatasetNotFoundError
from .loader import BatchLoader
from .registry import DATASET_NAMES, dataset_info, load_dataset
from .specs import MIRRORS
from .split import train_val_split

__all__ = [
    "load_dataset",
    "dataset_info",
    "DATASET_NAMES",
    "MIRRORS",
    "ImageDataset",
    "DatasetInfo",
    "train_val_split",
    "normalize",
    "random_pad_crop",
    "random_horizontal_flip",
    "PadCropFlip",
    "BatchLoader",
    "download_file",
    "DatasetNotFoundError",
    "DatasetFormatError",
]
