"""Lock files, so that two processes never train the same run (or write the same table) at once.

Shards of a grid (``ydrop compare --shard i/n``) run on different machines that share
one runs folder; their cells are disjoint, but overlapping invocations (two
``compare`` in one folder, a re-submitted job array) would otherwise train one cell
twice and interleave its checkpoints. A lock is a file created with ``O_CREAT |
O_EXCL``, atomic on local file systems and on NFS, holding the owner's host, pid and
a random token. Its modification time is the owner's heartbeat.

A lock is *stale*, and may be broken, when its owner is a dead process on this host,
or when its heartbeat is older than ``stale_after`` seconds (the only test possible
for an owner on another machine). A live pid on this host is not proof either: after
a reboot or a container restart the pid of a lock's dead owner is often taken by
another process (pid 1 always is), so a lock on this host whose heartbeat is older
than ``max(stale_after, STALE_AFTER)`` is stale whatever its pid. (The larger of the
two: a caller's shorter limit, such as the tables lock's, is meant for owners on other
hosts, whose pid cannot be looked at.) Training refreshes the heartbeat of its run's
lock at least every ``HEARTBEAT_EVERY`` seconds while it trains or evaluates, and after
every checkpoint, so only a stalled or gone owner goes that long without one.
Breaking renames the file aside first and checks
that the renamed file is the one judged stale, so two processes breaking the same
lock at once do not remove each other's fresh lock.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["FileLock", "RunLocked", "try_lock", "wait_lock", "lock_holder", "is_held", "LOCK_FILE", "TABLES_LOCK",
           "STALE_AFTER"]

LOCK_FILE = ".lock"  # in a run folder, while the run trains
TABLES_LOCK = ".tables.lock"  # in a grid's out folder, while its tables are collected and written
# Seconds without a heartbeat after which a run lock counts as abandoned (another host's
# at once; one of this host whose pid is alive too, since that pid may have been reused).
# Far above HEARTBEAT_EVERY: a training run beats every step and every evaluation batch
# (touching the file at most every HEARTBEAT_EVERY s) and after each checkpoint, so this
# only has to outlast one batch, one checkpoint write or the loading of a dataset.
STALE_AFTER = 2 * 3600.0
# A training run calls heartbeat() every step; the file is touched at most this often.
HEARTBEAT_EVERY = 60.0


class RunLocked(RuntimeError):
    """The run is being trained by another process (its lock is held and not stale).

    ``folder``: the run's folder; ``holder``: the lock's owner ({host, pid, token, time})
    when known."""

    def __init__(self, message: str, folder: str | os.PathLike | None = None,
                 holder: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.folder = folder
        self.holder = holder


class FileLock:
    """A held lock file; ``release()`` (or leaving the ``with`` block) removes it."""

    def __init__(self, path: Path, content: bytes) -> None:
        self.path = path
        self._content = content
        self._last_beat = time.monotonic()

    def heartbeat(self, force: bool = False) -> None:
        """Refresh the modification time (at most every ``HEARTBEAT_EVERY`` seconds unless
        ``force``, so it is cheap to call every step), so other processes see the owner is
        alive."""
        if not force and time.monotonic() - self._last_beat < HEARTBEAT_EVERY:
            return
        self._last_beat = time.monotonic()
        try:
            os.utime(self.path)
        except FileNotFoundError:
            pass  # broken by another process after a long stall: nothing to refresh

    def release(self) -> None:
        """Remove the lock file if it is still ours."""
        if _read(self.path) == self._content:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> "FileLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"FileLock({str(self.path)!r})"


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def lock_holder(path: str | os.PathLike) -> dict[str, Any] | None:
    """The owner recorded in a lock file ({host, pid, token, time}); None if absent or still empty."""
    content = _read(Path(path))
    try:
        return json.loads(content) if content else None
    except ValueError:
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's live process (or a pid we cannot judge)
    return True


def _is_stale(path: Path, content: bytes, stale_after: float) -> bool:
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False  # released meanwhile: just retry
    try:
        owner = json.loads(content)
    except ValueError:
        owner = None  # created but not yet written, or garbage: only age can tell
    if isinstance(owner, dict) and owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
        return not _pid_alive(owner["pid"]) or age > max(stale_after, STALE_AFTER)
    return age > stale_after


def _break(path: Path, judged: bytes) -> None:
    """Remove the stale lock ``path`` whose content was ``judged``, never a fresh one."""
    aside = path.with_name(f"{path.name}.stale-{uuid.uuid4().hex}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another process broke it first
    moved = _read(aside)
    if moved != judged:
        # A fresh lock replaced the stale one between our read and our rename: put it
        # back unless yet another one exists already.
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(moved or b"")
        except FileExistsError:
            pass
    os.unlink(aside)


def is_held(path: str | os.PathLike, stale_after: float = STALE_AFTER) -> bool:
    """Whether a live process holds the lock at ``path`` now (a look, not a claim: it
    may be released or taken right after)."""
    path = Path(path)
    content = _read(path)
    return content is not None and not _is_stale(path, content, stale_after)


def try_lock(path: str | os.PathLike, stale_after: float = STALE_AFTER) -> FileLock | None:
    """Take the lock at ``path`` if it is free or stale; None while another live process holds it."""
    if not isinstance(stale_after, (int, float)) or isinstance(stale_after, bool) or stale_after <= 0:
        raise ValueError(f"stale_after must be a number of seconds > 0; got {stale_after!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):  # free -> taken; stale -> broken, then taken
        content = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex,
                              "time": time.time()}).encode()
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = _read(path)
            if held is None:
                continue  # released between our open and our read
            if not _is_stale(path, held, stale_after):
                return None
            _break(path, held)
            continue
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        return FileLock(path, content)
    return None


def wait_lock(path: str | os.PathLike, timeout: float = 600.0, stale_after: float = 120.0,
              poll: float = 0.05) -> FileLock:
    """Block until the lock at ``path`` is ours (for short critical sections such as writing tables).

    Raises ``TimeoutError`` naming the holder after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        lock = try_lock(path, stale_after)
        if lock is not None:
            return lock
        if time.monotonic() > deadline:
            raise TimeoutError(f"lock {str(path)!r} still held by {lock_holder(path)} after {timeout} s")
        time.sleep(poll)
