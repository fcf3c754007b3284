"""``load_dataset``: one entry point for every dataset, by name.

The public function validates its arguments and picks the dataset; private helpers
find the files (see ``specs.py`` for the layout), download what is missing when
allowed, and hand the bytes to the format readers (``idx.py``, ``cifar.py``,
``svhn.py``, ``stl10.py``).

Nothing under ``root`` is written unless ``download=True``: with ``download=False``
an archive (CIFAR, STL-10) is read in memory instead of being extracted, so a
read-only data directory works. A dataset folder without any write permission bit
(e.g. a shared, read-only copy) is never written either, even by root.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import specs
from .archive import extract_tar_members, read_tar_members
from .cifar import read_cifar_batch
from .dataset import DatasetInfo, ImageDataset
from .digits import digits_info, load_digits_split
from .download import DownloadError, download_file
from .errors import DatasetFormatError, DatasetNotFoundError
from .folder import load_image_folder
from .idx import read_idx_images, read_idx_labels
from .specs import ArchiveSpec, DirectSpec, Remote
from .stl10 import decode_stl10
from .svhn import read_svhn_mat

__all__ = ["load_dataset", "dataset_info", "DATASET_NAMES"]

DATASET_NAMES = ("mnist", "fashion-mnist", "cifar10", "cifar100", "svhn", "stl10", "digits", "image-folder")
_DIGITS_SPLITS = ("train", "test")
_DEFAULT_FOLDER_SIZE = 64


def _check_name(name: object) -> str:
    if name not in DATASET_NAMES:
        raise ValueError(f"name must be one of {', '.join(map(repr, DATASET_NAMES))}; got {name!r}")
    return name  # type: ignore[return-value]


def _check_split(name: str, split: object, allowed: Sequence[str]) -> str:
    if split not in allowed:
        raise ValueError(f"split for {name!r} must be one of {', '.join(map(repr, allowed))}; got {split!r}")
    return split  # type: ignore[return-value]


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a named dataset, without loading its files.

    Not available for ``"image-folder"``, whose classes and size come from the
    folder: load it and read ``dataset.info``.
    """
    _check_name(name)
    if name == "digits":
        return digits_info()
    if name == "image-folder":
        raise ValueError(
            "name='image-folder' has no fixed info (its classes come from the folder); "
            "use load_dataset('image-folder', root=...).info"
        )
    return specs.INFOS[name]


def _check_options(name: str, download: object, image_size: object, grayscale: object, mirror: object) -> None:
    """``load_dataset``'s checks of its options, each error naming the argument."""
    _check_name(name)
    if not isinstance(download, bool):
        raise ValueError(f"download must be True or False, got {download!r}")
    if name != "image-folder" and (image_size is not None or grayscale):
        raise ValueError(
            f"image_size and grayscale apply only to name='image-folder'; got image_size={image_size!r}, "
            f"grayscale={grayscale!r} for name={name!r}"
        )
    if mirror is not None and (not isinstance(mirror, str) or not mirror):
        raise ValueError(f"mirror must be a base URL string such as 'http://host/path', got {mirror!r}")


def _image_folder_split(root: Path, split: object, image_size, grayscale: bool) -> ImageDataset:
    if not isinstance(split, str):
        raise ValueError(f"split must be a folder name such as 'train' or 'test', got {split!r}")
    size = _DEFAULT_FOLDER_SIZE if image_size is None else image_size
    return load_image_folder(root, split, image_size=size, grayscale=grayscale)


def load_dataset(
    name: str,
    root: str | Path | None = None,
    split: str = "train",
    download: bool = True,
    *,
    mirror: str | None = None,
    progress: bool = True,
    image_size: int | tuple[int, int] | None = None,
    grayscale: bool = False,
) -> ImageDataset:
    """Load one split of a dataset into memory.

    Args:
        name: one of ``DATASET_NAMES``: ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``,
            ``"cifar100"``, ``"svhn"``, ``"stl10"``, ``"digits"``, ``"image-folder"``.
        root: the data directory holding ``<root>/<folder>/<official files>`` (layout in
            ``ydrop.data.specs``); for ``"image-folder"`` the image folder itself; not
            needed for ``"digits"`` (embedded in scikit-learn).
        split: ``"train"`` or ``"test"``; SVHN also ``"extra"``; image folders any split
            sub-folder (see ``ydrop.data.folder``).
        download: fetch missing files from the official URLs (md5-checked) and extract
            the needed archive members under ``root``. With ``False`` nothing is written.
        mirror: a base URL replacing the dataset's entries of ``MIRRORS``
            (file URL = mirror + "/" + official file name).
        progress: show a progress bar while downloading.
        image_size: ``"image-folder"`` only: output size, int or (height, width); default 64.
        grayscale: ``"image-folder"`` only: decode to one channel.

    Returns:
        An :class:`ImageDataset`: images float32 (N, C, H, W) in [0, 1], labels int64 (N,).

    Raises:
        DatasetNotFoundError: files missing and not downloadable; the message lists the
            expected paths and URLs.
        DatasetFormatError: a file is damaged or not in the expected format.
        ValueError: an argument is not allowed (the message lists what is).
    """
    _check_options(name, download, image_size, grayscale, mirror)
    if name == "digits":
        return load_digits_split(_check_split(name, split, _DIGITS_SPLITS))
    if root is None:
        what = "the image folder" if name == "image-folder" else f"the data directory (holding {specs.SPECS[name].folder}/)"
        raise ValueError(f"root is required for name={name!r}: give {what}; got root=None")
    root = Path(root).expanduser()
    if name == "image-folder":
        return _image_folder_split(root, split, image_size, grayscale)

    spec = specs.SPECS[name]
    _check_split(name, split, tuple(spec.splits))
    bases = (mirror,) if mirror is not None else specs.MIRRORS[name]
    folder = root / spec.folder
    info = specs.INFOS[name]
    fetch = _Fetcher(name, split, folder, bases, download, progress)
    try:
        if name in ("mnist", "fashion-mnist"):
            images, labels = _load_idx_pair(fetch.direct(spec), info)
        elif name == "svhn":
            images, labels = read_svhn_mat(fetch.direct(spec)[0])
        elif name in ("cifar10", "cifar100"):
            images, labels = _load_cifar(fetch.archive(spec), info)
        else:  # stl10
            (x_src, x), (y_src, y) = fetch.archive(spec)
            images, labels = decode_stl10(x, y, x_src, y_src)
    except DatasetFormatError as exc:
        raise DatasetFormatError(
            f"{exc}\n(the file is damaged or incomplete: delete it and load again with download=True "
            "to fetch a fresh, checksummed copy)"
        ) from exc
    return _to_dataset(images, labels, info, split)


def _to_dataset(images: np.ndarray, labels: np.ndarray, info: DatasetInfo, split: str) -> ImageDataset:
    # one float32 copy of the uint8 pixels; dividing (not multiplying by 1/255) keeps k/255 exact
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).div_(255.0)
    y = torch.from_numpy(np.array(labels, dtype=np.int64))
    return ImageDataset(x, y, info, split=split)


def _load_idx_pair(paths: list[Path], info: DatasetInfo) -> tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = paths
    images = read_idx_images(images_path)
    labels = read_idx_labels(labels_path)
    expected = info.in_shape[1:]
    if images.shape[1:] != expected:
        raise DatasetFormatError(
            f"{images_path}: images of size {images.shape[1:]}, expected {expected} for {info.name}"
        )
    if images.shape[0] != labels.shape[0]:
        raise DatasetFormatError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds {labels.shape[0]} labels"
        )
    if labels.size and labels.max() >= info.num_classes:
        raise DatasetFormatError(
            f"{labels_path}: label {labels.max()} found, expected 0..{info.num_classes - 1}"
        )
    return images[:, None], labels


def _load_cifar(members: list[tuple[str, bytes]], info: DatasetInfo) -> tuple[np.ndarray, np.ndarray]:
    label_key = "labels" if info.name == "cifar10" else "fine_labels"
    parts = [read_cifar_batch(content, source, label_key, info.num_classes) for source, content in members]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _writable(folder: Path) -> bool:
    """Whether we may write in ``folder``: permitted, and not marked read-only.

    The mode-bit test matters for root, to whom ``os.access`` always says yes: a
    folder someone made read-only (like a shared data copy) is left untouched.
    """
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


class _Fetcher:
    """Finds a split's files, downloading them when allowed; builds the not-found message."""

    def __init__(self, name: str, split: str, folder: Path, bases: Sequence[str], download: bool, progress: bool):
        self.name, self.split, self.folder = name, split, folder
        self.bases, self.download, self.progress = tuple(bases), download, progress

    def urls(self, filename: str) -> list[str]:
        return [f"{base.rstrip('/')}/{filename}" for base in self.bases]

    def _describe(self, remote: Remote) -> str:
        urls = "\n      or ".join(self.urls(remote.filename))
        return f"      from {urls} (md5 {remote.md5})"

    def _not_found(self, expected: list[str], failures: list[tuple[str, str]]) -> DatasetNotFoundError:
        lines = [f"{self.name} (split {self.split!r}): dataset files not found under {self.folder}."]
        lines += expected
        if self.download:
            lines.append("Download failed:")
            lines += [f"  {url}: {reason}" for url, reason in failures]
        details = "\n".join(lines)
        # The same advice in the words of the caller: Python arguments, or the CLI's options.
        api = ("Nothing was downloaded because download=False.\n" if not self.download else "") + (
            f"Put the official files at the paths above (root/{self.folder.name}/...), or load with "
            "download=True while online, or pass mirror= a base URL that serves them.")
        again = "without --no-download" if not self.download else "when the URLs above answer"
        cli = ("Nothing was downloaded because of --no-download.\n" if not self.download else "") + (
            f"Put the official files at the paths above (--data-dir DIR holds {self.folder.name}/), or run "
            f"again online {again}, or pass --mirror URL, a base URL that serves them.")
        return DatasetNotFoundError(f"{details}\n{api}", cli_message=f"{details}\n{cli}")

    def _get(self, remote: Remote) -> list[tuple[str, str]]:
        """Download one file; return the failures (empty on success)."""
        try:
            download_file(self.urls(remote.filename), self.folder / remote.filename, remote.md5, progress=self.progress)
        except DownloadError as exc:
            return exc.attempts
        return []

    # -- datasets whose files are downloaded one by one ---------------------------------
    def _local(self, remote: Remote, accept_uncompressed: bool) -> Path | None:
        path = self.folder / remote.filename
        if path.is_file():
            return path
        if accept_uncompressed and remote.filename.endswith(".gz"):
            raw = path.with_suffix("")
            if raw.is_file():
                return raw
        return None

    def direct(self, spec: DirectSpec) -> list[Path]:
        remotes = spec.splits[self.split]
        paths = [self._local(r, spec.accept_uncompressed) for r in remotes]
        missing = [r for r, p in zip(remotes, paths) if p is None]
        if not missing:
            return paths  # type: ignore[return-value]
        failures: list[tuple[str, str]] = []
        if self.download:
            for remote in missing:
                failures += self._get(remote)
            if not failures:
                return [self._local(r, spec.accept_uncompressed) for r in remotes]  # type: ignore[misc]
        raise self._not_found(self._expected_files(spec, remotes, paths), failures)

    def _expected_files(self, spec: DirectSpec, remotes: list, paths: list) -> list[str]:
        """The error's lines: every file the split needs, found or missing, and where to get it."""
        expected = []
        for remote, path in zip(remotes, paths):
            alt = f" (or {remote.filename[:-3]}, uncompressed)" if spec.accept_uncompressed and remote.filename.endswith(".gz") else ""
            state = "found" if path is not None else "missing"
            expected.append(f"  {self.folder / remote.filename}{alt}  [{state}]")
            if path is None:
                expected.append(self._describe(remote))
        return expected

    # -- datasets published as one archive ----------------------------------------------
    def archive(self, spec: ArchiveSpec) -> list[tuple[str, bytes]]:
        """``(source, content)`` of each member the split needs, in the spec's order."""
        members = spec.splits[self.split]
        extracted = [self.folder / m for m in members]
        if all(p.is_file() for p in extracted):
            return [(str(p), p.read_bytes()) for p in extracted]
        archive = self._archive_file(spec, extracted)
        if self.download and _writable(self.folder):
            try:
                paths = extract_tar_members(archive, members, self.folder)
                return [(str(p), p.read_bytes()) for p in paths]
            except OSError:
                pass  # the folder is not writable: read the members in memory below
        contents = read_tar_members(archive, members)
        return [(f"{archive}[{m}]", contents[m]) for m in members]

    def _archive_file(self, spec: ArchiveSpec, extracted: list[Path]) -> Path:
        """The archive on disk, downloaded when allowed; else the not-found error."""
        archive = self.folder / spec.archive.filename
        if not archive.is_file():
            failures = self._get(spec.archive) if self.download else []
            if not self.download or failures:
                expected = ["  either the extracted files:"]
                expected += [f"    {p}  [{'found' if p.is_file() else 'missing'}]" for p in extracted]
                expected += [f"  or the archive {archive}  [missing]", self._describe(spec.archive)]
                raise self._not_found(expected, failures)
        return archive
