"""Where a run lives on disk, and atomic writes.

Layout::

    <out>/<dataset>/<model>[-<hash of model_kwargs>]/<method>[-<hash of method_kwargs>]/seed<k>/
        config.json      the resolved TrainConfig
        initial.pt       the initial weights (state dict), for the analyses
        checkpoint.pt    latest epoch: model, optimizer, RNG states, early stopping, history
        result.json      written last: its presence marks the run finished

Every file is written to a temporary file in the same folder, fsynced, then moved
into place with ``os.replace``: a reader sees the old file or the new one, never a
partial one. Files get the mode ``open(path, "w")`` would give them (0666 minus the
umask), so a group can share a runs folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from .._files import create_temp, temp_glob

__all__ = ["kwargs_hash", "run_dir", "atomic_write", "remove_temp_files", "write_json", "read_json", "save_torch",
           "is_run_result", "read_run_result", "find_run_results", "UnreadableResultWarning", "RUN_FOLDER_HOLDS",
           "CONFIG_FILE", "RESULT_FILE", "CHECKPOINT_FILE", "INITIAL_FILE", "RUN_FILES"]

CONFIG_FILE = "config.json"
RESULT_FILE = "result.json"
CHECKPOINT_FILE = "checkpoint.pt"
INITIAL_FILE = "initial.pt"
RUN_FILES = (CONFIG_FILE, INITIAL_FILE, CHECKPOINT_FILE, RESULT_FILE)
TMP_PREFIX = ".tmp-"
# What error messages say a run folder is, for users who pointed at another folder.
RUN_FOLDER_HOLDS = (f"a ydrop run folder holds the {CONFIG_FILE}, {INITIAL_FILE}, {CHECKPOINT_FILE} and "
                    f"{RESULT_FILE} that `ydrop train` or `ydrop compare` write")
_RUN_KEYS = ("dataset", "model", "method", "seed")
# What to do about an unreadable file of a run folder: train_run writes a missing
# config.json again, and a run without result.json resumes from its checkpoint.pt (one
# that had finished is only tested again) or, without one, is trained from the start.
_REMEDY = ("delete it and run the command that trained the run again (ydrop train, compare or sweep): the run "
           f"then resumes from its {CHECKPOINT_FILE} (a finished one is only tested again), or is trained again "
           "if it has none")


def kwargs_hash(kwargs: dict[str, Any]) -> str:
    """Short stable hash (8 hex digits) of a kwargs dict (key order and tuple/list do not matter)."""
    text = json.dumps(kwargs, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _folder(name: str, kwargs: dict[str, Any]) -> str:
    return f"{name}-{kwargs_hash(kwargs)}" if kwargs else name


def run_dir(config: Any) -> Path:
    """The folder of one run (``config`` a TrainConfig or its dict)."""
    c = config if isinstance(config, dict) else config.to_dict()
    return (Path(c["out"]) / c["dataset"] / _folder(c["model"], c["model_kwargs"])
            / _folder(c["method"], c["method_kwargs"]) / f"seed{c['seed']}")


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None]) -> None:
    """Call ``write(binary file)`` on a temp file next to ``path``, fsync, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temp(path.parent, TMP_PREFIX + path.name + ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def remove_temp_files(folder: str | os.PathLike, names: tuple[str, ...] = RUN_FILES) -> list[Path]:
    """Remove the temporary files (``.tmp-<name>.<random>``) that atomic writes of ``names``
    killed mid-write left in ``folder``; returns those removed.

    Only for a caller that holds the folder's lock: the temporary file of a live
    writer looks the same.
    """
    removed = []
    for name in names:
        for path in sorted(Path(folder).glob(temp_glob(f"{TMP_PREFIX}{name}."))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_json(path: str | os.PathLike, obj: Any) -> None:
    data = (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode()
    atomic_write(path, lambda f: f.write(data))


def read_json(path: str | os.PathLike) -> Any:
    """The JSON at ``path``; a file that is not valid JSON (cut short by a full disk, a
    copy or an editor: ydrop's own writes are atomic) raises ValueError naming the file
    and what to do about it."""
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except ValueError as exc:  # json.JSONDecodeError, or UnicodeDecodeError for binary garbage
            raise ValueError(f"{os.fspath(path)!r} is not valid JSON ({exc}); {_REMEDY}") from exc


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def is_run_result(data: Any) -> bool:
    """Whether ``data`` (a parsed ``result.json``) was written by ydrop's ``train_run``: an
    object with the run's config (dataset, model, method, seed) and its test accuracy.
    Other tools write files of that name too; they are not runs."""
    config = data.get("config") if isinstance(data, dict) else None
    return isinstance(config, dict) and all(k in config for k in _RUN_KEYS) and "test_acc" in data


def read_run_result(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ``result.json`` at ``path`` if ydrop wrote it, else None (another tool's file).
    A file that is not valid JSON raises ValueError naming it (:func:`read_json`): it may
    be a run of ours cut short, which the caller reports rather than skips silently."""
    data = read_json(path)
    return data if is_run_result(data) else None


class UnreadableResultWarning(UserWarning):
    """A ``result.json`` that could not be read was skipped; the message names it."""


def find_run_results(root: str | os.PathLike) -> tuple[dict[Path, dict[str, Any]], list[Path]]:
    """The runs below ``root``: ({path of each result.json ydrop wrote: its data}, the
    result.json files other tools wrote), both sorted by path. An unreadable one (not
    valid JSON, or no permission) is skipped with an :class:`UnreadableResultWarning`
    naming it, so that a table or an analysis of the others still comes, but not silently."""
    runs: dict[Path, dict[str, Any]] = {}
    others: list[Path] = []
    for path in sorted(Path(root).rglob(RESULT_FILE)):
        try:
            data = read_run_result(path)
        except (OSError, ValueError) as exc:
            warnings.warn(f"skipped a run: {exc}", UnreadableResultWarning, stacklevel=2)
            continue
        if data is None:
            others.append(path)
        else:
            runs[path] = data
    return runs, others
