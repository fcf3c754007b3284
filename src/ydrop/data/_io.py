"""Reading a whole file into memory, gunzipping it when its name ends in ``.gz``.

Every failure is turned into a :class:`DatasetFormatError` that names the file, so a
truncated or corrupted download is reported as such instead of as a zlib traceback.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from .errors import DatasetFormatError

__all__ = ["read_bytes"]

_GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: Path) -> bytes:
    """The content of ``path``, decompressed if the file name ends in ``.gz``."""
    path = Path(path)
    if path.suffix != ".gz":
        return path.read_bytes()
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head != _GZIP_MAGIC:
        raise DatasetFormatError(
            f"{path}: not a gzip file (it starts with {head!r}, a gzip file starts with {_GZIP_MAGIC!r}); "
            "the file is damaged or is not what its name says"
        )
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except EOFError as exc:
        raise DatasetFormatError(f"{path}: the gzip stream is truncated ({exc})") from exc
    except (OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DatasetFormatError(f"{path}: corrupted gzip data ({exc})") from exc
