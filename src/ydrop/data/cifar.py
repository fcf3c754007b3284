"""The "python version" of CIFAR-10 and CIFAR-100: pickled dicts, one per batch file.

Each batch file (``data_batch_1``..``5`` and ``test_batch`` for CIFAR-10; ``train`` and
``test`` for CIFAR-100) is a protocol-2 pickle written by Python 2 holding a dict:

- ``data``: uint8 array (N, 3072); each row is one 32x32 image, the 1024 red values
  first, then green, then blue, each channel in row-major order, so
  ``data.reshape(N, 3, 32, 32)`` is the (N, C, H, W) layout;
- ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100; ``coarse_labels`` is ignored):
  a list of N ints.

See https://www.cs.toronto.edu/~kriz/cifar.html. Unpickling runs arbitrary code for
arbitrary pickles, so the reader only lets the pickle build the few numpy objects a
CIFAR batch contains and refuses every other global.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DatasetFormatError, check_label_range

__all__ = ["read_cifar_batch", "IMAGE_BYTES"]

IMAGE_BYTES = 3 * 32 * 32


def _numpy_global(name: str) -> Any:
    # numpy 2 moved numpy.core to numpy._core; the official files name numpy.core.
    if name == "_reconstruct":
        try:
            from numpy._core.multiarray import _reconstruct
        except ImportError:  # numpy < 2
            from numpy.core.multiarray import _reconstruct
        return _reconstruct
    try:
        from numpy._core.numeric import _frombuffer
    except ImportError:  # numpy < 2
        from numpy.core.numeric import _frombuffer
    return _frombuffer


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that can build numpy arrays and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return _numpy_global(name)
        if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
            return _numpy_global(name)
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module == "_codecs" and name == "encode":  # how Python 3 writes bytes at protocol 2
            import codecs

            return codecs.encode
        raise pickle.UnpicklingError(f"the pickle refers to {module}.{name}, which a CIFAR batch never contains")


def _load_pickle(content: bytes, source: str) -> dict[str, Any]:
    try:
        # latin1 decodes Python 2 byte strings (the dict keys, and the array buffers) losslessly
        obj = _BatchUnpickler(io.BytesIO(content), encoding="latin1").load()
    except Exception as exc:  # a damaged pickle can fail in many ways; all mean "not a CIFAR batch"
        raise DatasetFormatError(
            f"{source}: not a readable CIFAR batch pickle ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(obj, dict):
        raise DatasetFormatError(f"{source}: expected a pickled dict, got a {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_cifar_batch(content: bytes, source: str | Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode one CIFAR batch file.

    Args:
        content: the file's bytes.
        source: the file's path (or ``archive:member``), used in error messages.
        label_key: ``"labels"`` for CIFAR-10, ``"fine_labels"`` for CIFAR-100.
        num_classes: labels must lie in [0, num_classes).

    Returns:
        ``(images, labels)``: uint8 array (N, 3, 32, 32) and int64 array (N,).
    """
    source = str(source)
    batch = _load_pickle(content, source)
    for key in ("data", label_key):
        if key not in batch:
            raise DatasetFormatError(
                f"{source}: the batch has no {key!r} entry (it has {', '.join(map(repr, sorted(map(str, batch))))})"
            )
    data = _batch_images(batch["data"], source)
    labels = _batch_labels(batch[label_key], label_key, data.shape[0], num_classes, source)
    return data.reshape(-1, 3, 32, 32), labels


def _batch_images(data: Any, source: str) -> np.ndarray:
    """The batch's ``data`` entry, checked to be a uint8 array (N, 3072)."""
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_BYTES:
        got = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetFormatError(f"{source}: 'data' must be a uint8 array of shape (N, {IMAGE_BYTES}), got {got}")
    return data


def _batch_labels(entry: Any, label_key: str, n: int, num_classes: int, source: str) -> np.ndarray:
    """The batch's ``label_key`` entry as an int64 array (n,) of class indices in
    [0, num_classes)."""
    try:
        labels = np.asarray(entry, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DatasetFormatError(f"{source}: {label_key!r} is not a list of integers ({exc})") from exc
    if labels.ndim != 1 or labels.shape[0] != n:
        raise DatasetFormatError(f"{source}: {n} images but {labels.size} entries in {label_key!r}")
    check_label_range(labels, 0, num_classes - 1, f"{source}: {label_key!r} holds values", f"[0, {num_classes - 1}]")
    return labels
