"""Writers of tiny dataset files in the exact official formats, for the data tests."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"  # <repo>/../shared/data


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: 0x0000, type 0x08, ndim, big-endian dims, data."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_bytes(path: Path, content: bytes, gz: bool | None = None) -> Path:
    """Write ``content``, gzipped when the name ends in .gz (or ``gz`` says so)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz if gz is not None else path.suffix == ".gz":
        content = gzip.compress(content, mtime=0)
    path.write_bytes(content)
    return path


def random_idx_split(rng: np.random.Generator, n: int, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, 256, (n, size, size), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def write_mnist(folder: Path, split: str, images: np.ndarray, labels: np.ndarray, gz: bool = True) -> tuple[Path, Path]:
    prefix = "train" if split == "train" else "t10k"
    ext = ".gz" if gz else ""
    return (
        write_bytes(folder / f"{prefix}-images-idx3-ubyte{ext}", idx_bytes(images)),
        write_bytes(folder / f"{prefix}-labels-idx1-ubyte{ext}", idx_bytes(labels)),
    )


def cifar_batch_bytes(data: np.ndarray, labels, label_key: str = "labels", extra: dict | None = None) -> bytes:
    """A batch pickled at protocol 2, as the official Python 2 files are."""
    batch = {"batch_label": "testing batch 1 of 1", label_key: list(map(int, labels)), "data": data,
             "filenames": [f"img_{i}.png" for i in range(len(labels))]}
    if label_key == "fine_labels":
        batch["coarse_labels"] = [int(v) % 20 for v in labels]
    batch.update(extra or {})
    return pickle.dumps(batch, protocol=2)


def tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def stl10_x_bytes(images_chw: np.ndarray) -> bytes:
    """STL-10 stores each channel column-major: write (N, C, W, H) in C order."""
    return np.ascontiguousarray(images_chw.transpose(0, 1, 3, 2)).tobytes()
