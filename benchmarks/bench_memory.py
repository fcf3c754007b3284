"""Peak resident memory of a Y-Drop training process vs an nn.Dropout one.

Target (issue 5): FC_1 and S_2, batch 64: peak RSS ratio <= 1.10. Each
measurement is a separate process (``python -m benchmarks.bench_memory --worker
MODEL METHOD``) that builds the model, runs 20 training steps and reports its peak
resident set: ``VmHWM`` of ``/proc/self/status`` on Linux, else
``resource.getrusage(RUSAGE_SELF).ru_maxrss``. (Linux carries ``ru_maxrss`` over
``execve`` from the forking parent, so a worker started by a large benchmark process
would report the parent's peak; ``VmHWM`` belongs to the worker's own memory map.)
Y-Drop and nn.Dropout processes alternate, ``repeats`` times each.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys

from torch import nn

from benchmarks.common import Ratio, display, model_step

MODELS = ("fc1", "s2")
TARGET = "<= 1.10"


def worker(model: str, method: str, steps: int = 20) -> int:
    """Peak RSS in KiB of this process after ``steps`` training steps."""
    step = model_step(model, "ydrop", 64, warmup_epochs=0) if method == "ydrop" else model_step(model, nn.Dropout, 64)
    for _ in range(steps):
        step()
    return peak_rss_kib()


def peak_rss_kib() -> int:
    """This process's peak resident set size in KiB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(model: str, method: str) -> int:
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_memory", "--worker", model, method],
                         check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1])


def run(repeats: int = 3) -> list[Ratio]:
    results = []
    for model in MODELS:
        ydrop_kib, dropout_kib = [], []
        for _ in range(repeats):
            ydrop_kib.append(measure(model, "ydrop"))
            dropout_kib.append(measure(model, "dropout"))
        ratios = [a / b for a, b in zip(ydrop_kib, dropout_kib)]
        # Ratio's ms columns carry MiB here.
        results.append(Ratio(f"peak RSS (MiB), Y-Drop / nn.Dropout process, {display(model)}, batch 64", ratios,
                             statistics.median(ydrop_kib) / 1024, statistics.median(dropout_kib) / 1024))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "METHOD"))
    args = parser.parse_args()
    if args.worker:
        print(worker(*args.worker))
    else:
        for ratio in run():
            print(ratio.row(TARGET))
