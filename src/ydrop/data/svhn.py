"""SVHN, "format 2" (cropped 32x32 digits): one MATLAB v5 ``.mat`` file per split.

``train_32x32.mat`` (73,257 images), ``test_32x32.mat`` (26,032) and ``extra_32x32.mat``
(531,131) each hold

- ``X``: uint8 array (32, 32, 3, N), i.e. (H, W, C, N);
- ``y``: array (N, 1) of labels 1..10, where **10 means the digit 0**.

See http://ufldl.stanford.edu/housenumbers/.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DatasetFormatError, check_label_range

__all__ = ["read_svhn_mat"]


def read_svhn_mat(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN ``.mat`` file.

    Returns:
        ``(images, labels)``: uint8 array (N, 3, 32, 32) and int64 array (N,) of digits
        0..9 (the file's label 10 becomes 0).
    """
    path = Path(path)
    mat = _load_mat(path)
    for key in ("X", "y"):
        if key not in mat:
            raise DatasetFormatError(f"{path}: the file has no variable {key!r} (an SVHN file holds 'X' and 'y')")
    x = _images(mat["X"], path)
    labels = _labels(mat["y"], x.shape[3], path)
    # (H, W, C, N) -> (N, C, H, W)
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), labels % 10


def _load_mat(path: Path) -> dict[str, np.ndarray]:
    """The variables ``X`` and ``y`` of the MATLAB file (those of them it holds), every
    failure to read it as a :class:`DatasetFormatError`."""
    import scipy.io

    try:
        return scipy.io.loadmat(path, variable_names=["X", "y"])
    except NotImplementedError as exc:  # scipy's answer to MATLAB v7.3 (HDF5) files
        raise DatasetFormatError(
            f"{path}: MATLAB v7.3 (HDF5) files are not supported; the official SVHN files are MATLAB v5 ({exc})"
        ) from exc
    except Exception as exc:  # scipy raises many types (ValueError, TypeError, MatReadError, ...) on damage
        raise DatasetFormatError(f"{path}: not a readable MATLAB .mat file ({type(exc).__name__}: {exc})") from exc


def _images(x: np.ndarray, path: Path) -> np.ndarray:
    """``X``, checked to be a uint8 array (32, 32, 3, N), i.e. (H, W, C, N)."""
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DatasetFormatError(
            f"{path}: 'X' must be a uint8 array of shape (32, 32, 3, N), got {x.dtype} {x.shape}"
        )
    return x


def _labels(y: np.ndarray, n: int, path: Path) -> np.ndarray:
    """``y`` as an int64 array (n,) of the file's labels 1..10, unchanged; a (1, N) row
    or a flat (N,) vector is read like the official (N, 1) column."""
    if y.ndim not in (1, 2) or y.size != n or (y.ndim == 2 and 1 not in y.shape):
        raise DatasetFormatError(f"{path}: 'X' holds {n} images but 'y' has shape {y.shape}, expected ({n}, 1)")
    labels = y.reshape(-1).astype(np.int64)
    check_label_range(labels, 1, 10, f"{path}: 'y' holds values", "1..10 (10 stands for digit 0)")
    return labels
