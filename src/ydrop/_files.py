"""Temporary files next to their target, for atomic writes (write, then ``os.replace``).

``tempfile.mkstemp`` creates its file with mode 0600 whatever the umask, and
``os.replace`` keeps that mode, so every result, checkpoint, table or dataset file
written that way was unreadable by the group of a shared runs or data folder.
:func:`create_temp` opens its file with mode 0666 and lets the kernel apply the umask
(and a default ACL of the folder), exactly as ``open(path, "w")`` does. It does not
read the umask: that can only be done by setting it (``os.umask``), which is
process-wide and races with threads that create files meanwhile.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["create_temp"]

_FLAGS = (os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
          | getattr(os, "O_BINARY", 0))


def create_temp(folder: str | os.PathLike, prefix: str, suffix: str = "") -> tuple[int, Path]:
    """Create a new file ``folder / (prefix + 8 random hex digits + suffix)``, open for
    reading and writing; returns (file descriptor, path). Its mode is what
    ``open(path, "w")`` would give (0666 minus the umask), not mkstemp's 0600."""
    folder = Path(folder)
    for _ in range(100):
        path = folder / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            return os.open(path, _FLAGS, 0o666), path
        except FileExistsError:
            continue  # 2**32 names: only a folder full of leftovers gets here twice
    raise FileExistsError(f"no free temporary file name {prefix}*{suffix} in {folder} after 100 tries")
