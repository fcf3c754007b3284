"""Temporary files next to their target, for atomic writes (write, then ``os.replace``).

``tempfile.mkstemp`` creates its file with mode 0600 whatever the umask, and
``os.replace`` keeps that mode, so every result, checkpoint, table or dataset file
written that way was unreadable by the group of a shared runs or data folder.
:func:`create_temp` opens its file with mode 0666 and lets the kernel apply the umask
(and a default ACL of the folder), exactly as ``open(path, "w")`` does. It does not
read the umask: that can only be done by setting it (``os.umask``), which is
process-wide and races with threads that create files meanwhile.

A process killed while writing leaves its temporary file behind. Where no lock
guards the folder (a data folder that several runs may fill at once), the writer
holds an advisory ``flock`` on its temporary file (:func:`hold`) and
:func:`remove_abandoned` removes only the files nobody holds: the kernel drops the
lock of a killed process, never the one of a live writer.
"""

from __future__ import annotations

import glob
import os
import secrets
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; age alone tells an abandoned file
    fcntl = None  # type: ignore[assignment]

__all__ = ["create_temp", "temp_glob", "hold", "remove_abandoned"]

# A live writer creates its file, then locks it: for that instant the file is unlocked
# though not abandoned. Only files this old (seconds since their last write) are judged.
LOCK_GRACE = 10.0
# Where files cannot be locked (no flock, or a file system that refuses it), a file not
# written for this long is taken as abandoned: a live download writes every MiB.
UNLOCKED_STALE_AFTER = 24 * 3600.0

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


def temp_glob(prefix: str, suffix: str = "") -> str:
    """The glob pattern of the files :func:`create_temp` names with ``prefix`` and ``suffix``
    (and of ``tempfile.mkstemp``'s, also 8 random characters, that ydrop wrote before)."""
    return glob.escape(prefix) + "?" * 8 + glob.escape(suffix)


def hold(fd: int) -> None:
    """Lock the temporary file open at ``fd`` while it is written, so that
    :func:`remove_abandoned` of another process leaves it alone (best effort: a file
    system without locks leaves it unlocked, and only its age protects it)."""
    if fcntl is None:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pass


def _abandoned(path: Path, now: float) -> bool:
    try:
        age = now - path.stat().st_mtime
    except FileNotFoundError:
        return False
    if age < LOCK_GRACE:
        return False
    if fcntl is None:
        return age > UNLOCKED_STALE_AFTER
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False  # gone meanwhile, a link, or unreadable: leave it
    try:
        # Shared: it needs no write permission (a file another user left in a shared
        # folder) and still conflicts with the writer's exclusive lock.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False  # a live writer holds it
    except OSError:
        return age > UNLOCKED_STALE_AFTER  # the file system has no locks
    finally:
        os.close(fd)


def remove_abandoned(folder: str | os.PathLike, pattern: str) -> list[Path]:
    """Remove the files of ``folder`` matching the glob ``pattern`` that no live writer
    holds (see :func:`hold`); returns those removed. Best effort: a file that cannot be
    removed (a read-only folder) is left, and the caller's own write says why if it fails."""
    now = time.time()
    removed = []
    for path in sorted(Path(folder).glob(pattern)):
        if not (path.is_file() and _abandoned(path, now)):
            continue
        try:
            path.unlink(missing_ok=True)
        except OSError:
            continue
        removed.append(path)
    return removed
