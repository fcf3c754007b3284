"""Reading chosen members of a tar archive (``.tar.gz``), safely.

Only members whose names are given by the caller are read, and only regular files:
a link, a device or a directory under a wanted name is refused. Destination paths
are built from the caller's names, never from the archive's, so an archive cannot
write outside the destination folder (no ``..``, no absolute paths, no links).

Reading stops as soon as every wanted member has been seen, so the rest of a large
archive is not decompressed.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from pathlib import Path
from typing import Iterator, Sequence

from .._files import create_temp, hold, remove_abandoned, temp_glob
from .errors import DatasetFormatError

__all__ = ["iter_tar_members", "read_tar_members", "extract_tar_members"]


def _member_kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    if member.isdir():
        return "directory"
    return "special file"


def iter_tar_members(archive: Path, names: Sequence[str]) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, content)`` for each wanted member, in archive order.

    Names are compared after dropping a leading ``./``.

    Raises:
        DatasetFormatError: unreadable archive, a wanted member that is not a regular
            file, or wanted members missing from the archive.
    """
    archive = Path(archive)
    wanted = set(names)
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                name = member.name[2:] if member.name.startswith("./") else member.name
                if name not in wanted:
                    continue
                if not member.isfile():
                    raise DatasetFormatError(
                        f"{archive}: member {name!r} is a {_member_kind(member)}, expected a regular file; "
                        "refusing to read it"
                    )
                fh = tar.extractfile(member)
                content = fh.read() if fh is not None else b""
                if len(content) != member.size:
                    raise DatasetFormatError(
                        f"{archive}: member {name!r} is truncated ({len(content)} of {member.size} bytes)"
                    )
                wanted.discard(name)
                yield name, content
                if not wanted:
                    return
    except DatasetFormatError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        # OSError covers gzip.BadGzipFile; reading only happens in this block, writing in callers.
        raise DatasetFormatError(f"{archive}: not a readable tar archive ({type(exc).__name__}: {exc})") from exc
    if wanted:
        raise DatasetFormatError(
            f"{archive}: the archive lacks the member(s) {', '.join(sorted(wanted))}"
        )


def read_tar_members(archive: Path, names: Sequence[str]) -> dict[str, bytes]:
    """The content of the wanted members, keyed by name (held in memory)."""
    return dict(iter_tar_members(archive, names))


def extract_tar_members(archive: Path, names: Sequence[str], dest: Path) -> list[Path]:
    """Write the wanted members under ``dest`` (``dest / name``), each atomically.

    Each member is written to a temporary file next to its target and renamed into
    place, so an interrupted extraction never leaves a half-written member behind.

    Returns:
        The paths written, in the order of ``names``.
    """
    dest = Path(dest).resolve()
    targets = {}
    for name in names:
        target = (dest / name).resolve()
        if dest not in target.parents:  # defence in depth: names come from our own tables
            raise ValueError(f"member name {name!r} would be written outside {dest}")
        targets[name] = target
    for name, content in iter_tar_members(archive, names):
        target = targets[name]
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned(target.parent, temp_glob(f".{target.name}.", ".part"))  # left by killed extractions
        fd, tmp = create_temp(target.parent, f".{target.name}.", ".part")
        hold(fd)  # so that another process extracting the same member leaves it alone
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return [targets[name] for name in names]
