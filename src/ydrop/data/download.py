"""Downloading one file with an md5 check, atomically.

The file is streamed to a temporary file in the destination folder while its md5 is
computed; only when the md5 equals the expected one is it renamed onto its final
name (``os.replace``, atomic on one file system). A failed, refused or interrupted
(Ctrl-C) download leaves nothing behind (not even the folders it created), so a later
load never sees a partial or wrong file. A download killed outright leaves its
temporary ``.part`` file; the next download of that file removes it (unless another
process is still writing it: see :mod:`ydrop._files`).

Several URLs (mirrors) may be given; they are tried in order. When all fail,
:class:`DownloadError` lists each URL with the reason it failed.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

from .._files import create_temp, hold, remove_abandoned, temp_glob

__all__ = ["download_file", "DownloadError", "DOWNLOAD_TIMEOUT", "md5_of"]

DOWNLOAD_TIMEOUT = 60.0  # seconds without data before a connection is given up
_CHUNK = 1 << 20
_USER_AGENT = "ydrop-data/0.1 (+python urllib)"


class DownloadError(OSError):
    """Every URL for a file failed; ``attempts`` holds ``(url, reason)`` pairs."""

    def __init__(self, dest: Path, attempts: list[tuple[str, str]]) -> None:
        self.dest = dest
        self.attempts = attempts
        lines = "\n".join(f"  {url}: {reason}" for url, reason in attempts)
        super().__init__(f"could not download {dest.name}:\n{lines}")


def md5_of(path: Path | str) -> str:
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, dest: Path, md5: str, progress: bool, timeout: float) -> None:
    """Download ``url`` to ``dest`` if its md5 matches; raise ``_Refused`` otherwise."""
    from tqdm.auto import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    fd, tmp = create_temp(dest.parent, f".{dest.name}.", ".part")
    hold(fd)  # so that a download of the same file in another process leaves it alone
    try:
        digest = hashlib.md5()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            with tqdm(
                total=int(total) if total and total.isdigit() else None,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=dest.name,
                disable=not progress,
            ) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        got = digest.hexdigest()
        if got != md5.lower():
            raise _Refused(
                f"md5 mismatch: expected {md5}, got {got} ({tmp.stat().st_size} bytes); the file was discarded"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


class _Refused(Exception):
    pass


def download_file(
    urls: Sequence[str],
    dest: Path | str,
    md5: str,
    *,
    progress: bool = True,
    timeout: float | None = None,
) -> Path:
    """Download ``dest`` from the first URL that delivers a file with the right md5.

    Args:
        urls: the URLs to try, in order.
        dest: final path of the file; its folder is created if needed.
        md5: expected hex md5 of the file.
        progress: show a tqdm progress bar.
        timeout: socket timeout in seconds; ``None`` uses the module's ``DOWNLOAD_TIMEOUT``
            (read at call time, so setting it affects ``load_dataset``'s downloads).

    Returns:
        ``dest`` as a Path.

    Raises:
        DownloadError: every URL failed (network error, HTTP error or wrong md5).
    """
    dest = Path(dest)
    if timeout is None:
        timeout = DOWNLOAD_TIMEOUT
    created = _make_folder(dest.parent)
    remove_abandoned(dest.parent, temp_glob(f".{dest.name}.", ".part"))  # left by killed downloads
    attempts: list[tuple[str, str]] = []
    try:
        for url in urls:
            try:
                _fetch(url, dest, md5, progress, timeout)
                return dest
            except _Refused as exc:
                attempts.append((url, str(exc)))
            except urllib.error.HTTPError as exc:
                attempts.append((url, f"HTTP {exc.code} {exc.reason}"))
            except urllib.error.URLError as exc:
                attempts.append((url, f"cannot connect ({exc.reason})"))
            except (socket.timeout, TimeoutError) as exc:
                attempts.append((url, f"timed out after {timeout:g} s ({exc})"))
            except (http.client.HTTPException, ConnectionError, ValueError) as exc:
                # ValueError: a malformed URL (e.g. a mirror without a scheme)
                attempts.append((url, f"{type(exc).__name__}: {exc}"))
    finally:
        # A failed or interrupted download leaves no empty dataset folder behind (after
        # a success the folder holds the file, and stays).
        _remove_empty(created)
    raise DownloadError(dest, attempts)


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns the ones created, deepest first."""
    missing = []
    for path in (folder, *folder.parents):
        if path.exists():
            break
        missing.append(path)
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove each of ``folders`` (deepest first) that is still empty."""
    for path in folders:
        try:
            path.rmdir()
        except OSError:  # not empty (another process wrote there) or already gone
            return
