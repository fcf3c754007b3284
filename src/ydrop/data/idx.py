"""The IDX format of MNIST and Fashion-MNIST, gzipped or not.

An IDX file is: two zero bytes, a type code (0x08 = uint8, ...), the number of
dimensions d, then d big-endian uint32 sizes, then the values in C order, big-endian.
Image files have magic 0x00000803 (uint8, 3 dims: N, H, W) and label files magic
0x00000801 (uint8, 1 dim: N). See http://yann.lecun.com/exdb/mnist/ (bottom of page).

The reader checks the magic number and that the data size equals what the header
announces, so truncated or padded files are refused with a message naming the file.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from ._io import read_bytes
from .errors import DatasetFormatError

__all__ = ["read_idx", "read_idx_images", "read_idx_labels", "IMAGES_MAGIC", "LABELS_MAGIC"]

# type code -> numpy dtype (IDX stores multi-byte values big-endian)
_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IMAGES_MAGIC = 0x00000803  # 2051: uint8, 3 dimensions
LABELS_MAGIC = 0x00000801  # 2049: uint8, 1 dimension


def read_idx(path: Path | str) -> tuple[int, np.ndarray]:
    """Parse an IDX file (``.gz`` or raw).

    Returns:
        ``(magic, array)``: the 32-bit magic number and a read-only array with the
        dimensions of the header.

    Raises:
        DatasetFormatError: bad magic number, header or data size that disagree.
    """
    path = Path(path)
    raw = read_bytes(path)
    if len(raw) < 4:
        raise DatasetFormatError(f"{path}: {len(raw)} bytes, too short for an IDX header (4 bytes of magic number)")
    (magic,) = struct.unpack(">I", raw[:4])
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES or raw[3] == 0:
        raise DatasetFormatError(
            f"{path}: bad magic number 0x{magic:08x}; an IDX file starts with 0x0000, a type code "
            f"(one of {', '.join(f'0x{t:02x}' for t in _TYPES)}) and a dimension count >= 1 "
            f"(MNIST images: 0x{IMAGES_MAGIC:08x}, labels: 0x{LABELS_MAGIC:08x})"
        )
    dtype, ndim = _TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetFormatError(
            f"{path}: truncated header: {ndim} dimensions need {header} header bytes, the file has {len(raw)}"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = math.prod(dims) * dtype.itemsize
    actual = len(raw) - header
    if actual != expected:
        what = "truncated" if actual < expected else "has trailing data"
        raise DatasetFormatError(
            f"{path}: {what}: the header announces dimensions {dims} = {expected} bytes of data, "
            f"the file holds {actual}"
        )
    return magic, np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def read_idx_images(path: Path | str) -> np.ndarray:
    """An IDX image file as a uint8 array of shape (N, H, W)."""
    magic, array = read_idx(path)
    if magic != IMAGES_MAGIC:
        raise DatasetFormatError(
            f"{path}: magic number 0x{magic:08x}, expected 0x{IMAGES_MAGIC:08x} ({IMAGES_MAGIC}) for an "
            "IDX image file (uint8, 3 dimensions)"
        )
    return array


def read_idx_labels(path: Path | str) -> np.ndarray:
    """An IDX label file as a uint8 array of shape (N,)."""
    magic, array = read_idx(path)
    if magic != LABELS_MAGIC:
        raise DatasetFormatError(
            f"{path}: magic number 0x{magic:08x}, expected 0x{LABELS_MAGIC:08x} ({LABELS_MAGIC}) for an "
            "IDX label file (uint8, 1 dimension)"
        )
    return array
