"""Torch's intra-op threads on a shared machine (``ydrop train/compare/sweep --threads N``).

Torch starts one intra-op thread per core. When other processes keep some cores busy,
its threads wait for each other at every parallel operation, and a small model's step
can take many times longer than with fewer threads. So the command looks at the load average when it starts and, when the cores left free
are fewer than the threads it will use, says so in one line and what to pass.
"""

from __future__ import annotations

import math
import os

import torch

__all__ = ["available_cores", "busy_warning", "set_threads"]

# Load below this much above the free cores is noise (a shell, a short-lived process).
LOAD_TOLERANCE = 0.5


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on this OS
        return None


def busy_warning(threads: int, load: float | None = None, cores: int | None = None) -> str | None:
    """One line when the 1-minute load average ``load`` leaves fewer free ``cores`` than
    ``threads`` (both read from the machine when None), else None."""
    load = _load_average() if load is None else load
    cores = available_cores() if cores is None else cores
    if load is None:
        return None
    free = max(cores - load, 0.0)
    if threads <= free + LOAD_TOLERANCE:
        return None
    advice = max(1, math.floor(free + LOAD_TOLERANCE))
    if advice < threads:
        what = f"pass --threads {advice} (now {threads}) so its threads do not wait for each other"
    else:
        what = "expect slower epochs, or wait for the other processes"
    return (f"ydrop: the machine is busy (load average {load:.2f} on {cores} cores leaves about {free:.1f} "
            f"free for torch's {threads} thread{'s' if threads > 1 else ''}): {what}")


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (None: keep torch's default); returns the count in use."""
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
