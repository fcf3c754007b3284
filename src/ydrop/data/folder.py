"""Image folders: one sub-folder per class (Caltech-256, frames of UCF101, ...).

Two layouts are accepted under the folder given as ``root``::

    root/<class>/<image files>                   one split only: "train"
    root/<split>/<class>/<image files>           e.g. root/train/..., root/test/...

A folder counts as the split layout when it has a sub-folder named ``train`` or
``test``. Classes are the sub-folder names in sorted order (label = position).
Images are found recursively inside each class folder (so ``<class>/<video>/<frame>.jpg``
works for video frames), with the extensions in ``IMAGE_EXTENSIONS``, in sorted
path order; hidden files and folders (starting with ``.``) are skipped.

Each image is decoded with Pillow, converted to RGB (or to greyscale with
``grayscale=True``) and resized to ``image_size`` with bilinear filtering (which
Pillow antialiases when shrinking). The normalisation statistics are ImageNet's,
the usual choice for natural photographs, since such folders have no published ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .dataset import DatasetInfo, ImageDataset
from .errors import DatasetFormatError, DatasetNotFoundError

__all__ = ["load_image_folder", "IMAGE_EXTENSIONS", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# one-channel version: the luminance-weighted ImageNet statistics commonly used for greyscale
IMAGENET_GREY_MEAN = (0.449,)
IMAGENET_GREY_STD = (0.226,)
_SPLIT_MARKERS = ("train", "test")


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _split_folder(root: Path, split: str) -> Path:
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"image-folder: root={str(root)!r} is not a folder; expected <root>/<class>/<images> "
            "or <root>/<split>/<class>/<images>"
        )
    subdirs = [p.name for p in _subdirs(root)]
    if any(marker in subdirs for marker in _SPLIT_MARKERS):
        if split not in subdirs:
            raise ValueError(
                f"split must be one of the split folders of {root} ({', '.join(map(repr, subdirs))}); got {split!r}"
            )
        return root / split
    if split != "train":
        raise ValueError(
            f"split={split!r}: {root} holds class folders directly (no 'train'/'test' sub-folders), so its "
            "only split is 'train'; use train_val_split() to hold out a test or validation part"
        )
    return root


def _image_files(class_dir: Path) -> list[Path]:
    files = []
    for path in class_dir.rglob("*"):
        rel = path.relative_to(class_dir)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            files.append(path)
    return sorted(files)


def _size(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        size = (image_size, image_size)
    elif isinstance(image_size, (tuple, list)) and len(image_size) == 2:
        size = tuple(image_size)
    else:
        size = ()
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size):
        raise ValueError(f"image_size must be an integer >= 1 or a pair (height, width) of them, got {image_size!r}")
    return size  # type: ignore[return-value]


def load_image_folder(
    root: Path | str,
    split: str = "train",
    image_size: int | Sequence[int] = 64,
    grayscale: bool = False,
) -> ImageDataset:
    """Load an image folder as an :class:`ImageDataset`.

    Args:
        root: the folder (see the module docstring for its layout).
        split: a split folder name (``"train"``, ``"test"``, ...) in the split layout;
            ``"train"`` in the class layout.
        image_size: output size, an int (square) or (height, width).
        grayscale: decode to one channel instead of RGB.

    Returns:
        images (N, C, H, W) float32 in [0, 1] with C = 1 or 3; labels (N,) int64;
        ``info.class_names`` are the folder names.
    """
    from PIL import Image, UnidentifiedImageError

    height, width = _size(image_size)
    folder = _split_folder(Path(root).expanduser(), split)
    classes = _subdirs(folder)
    if not classes:
        raise DatasetNotFoundError(f"image-folder: {folder} has no class sub-folders (expected {folder}/<class>/<images>)")
    files, labels = [], []
    for label, class_dir in enumerate(classes):
        found = _image_files(class_dir)
        if not found:
            raise DatasetNotFoundError(
                f"image-folder: class folder {class_dir} holds no image files "
                f"(looked for {', '.join(IMAGE_EXTENSIONS)})"
            )
        files += found
        labels += [label] * len(found)
    mode, channels = ("L", 1) if grayscale else ("RGB", 3)
    pixels = np.empty((len(files), height, width, channels), dtype=np.uint8)
    for i, path in enumerate(files):
        try:
            with Image.open(path) as img:
                img = img.convert(mode)
                if img.size != (width, height):
                    img = img.resize((width, height), Image.Resampling.BILINEAR)
                pixels[i] = np.asarray(img).reshape(height, width, channels)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DatasetFormatError(f"{path}: cannot decode the image ({type(exc).__name__}: {exc})") from exc
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255.0).contiguous()
    info = DatasetInfo(
        name="image-folder",
        num_classes=len(classes),
        in_shape=(channels, height, width),
        mean=IMAGENET_GREY_MEAN if grayscale else IMAGENET_MEAN,
        std=IMAGENET_GREY_STD if grayscale else IMAGENET_STD,
        class_names=tuple(c.name for c in classes),
    )
    return ImageDataset(images, torch.tensor(labels, dtype=torch.int64), info, split=split)
