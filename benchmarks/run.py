"""Run every benchmark and print the table of docs/performance.md.

    make bench        # or: .venv/bin/python -m benchmarks.run
"""

from __future__ import annotations

import platform

import torch

from benchmarks import bench_conductance, bench_step
from benchmarks.common import TABLE_HEADER


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}\n")
    conductance, worst = bench_conductance.run()
    step = bench_step.run()
    print(TABLE_HEADER)
    print(conductance.row(">= 3x speed-up, i.e. ratio <= 0.333"))
    print(step.row("<= 1.35"))
    print(f"\nconductance speed-up: {1 / conductance.median:.2f}x (median); "
          f"largest relative difference to Captum: {worst:.1e}")


if __name__ == "__main__":
    main()
