"""Run every benchmark and print the table of docs/performance.md.

    make bench        # or: .venv/bin/python -m benchmarks.run [--no-plot]

One script per target row (``bench_*.py``, each also runnable alone); every figure
is a ratio, min / median / max over interleaved rounds (see ``common.compare``).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from benchmarks import (
    bench_activation,
    bench_compile,
    bench_conductance,
    bench_excitation,
    bench_fast_paths,
    bench_memory,
    bench_scaling,
    bench_score_every,
    bench_step,
)
from benchmarks.common import TABLE_HEADER


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-plot", action="store_true", help="skip the scaling runs and their plot")
    args = parser.parse_args()
    start = time.perf_counter()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}\n")
    rows, details = [], []
    conductance = bench_conductance.run()
    report = bench_conductance.report(conductance)
    rows += report[: len(conductance)]
    details += report[len(conductance):]
    rows.append(bench_step.run().row(bench_step.TARGET))
    rows.append(bench_step.floor().row("(reported: the products alone)"))
    rows.append(bench_step.run(score="gradxact").row(bench_step.GRADXACT_TARGET))
    rows.append(bench_step.floor(score="gradxact").row("(reported: the products alone)"))
    rows.append(bench_step.fixed_cost().row("(reported: the ms difference is the fixed cost)"))
    rows += [ratio.row(bench_compile.TARGET) for ratio in bench_compile.run()]
    rows += [ratio.row("(< 1: the mechanism pays)") for ratio in bench_fast_paths.run()]
    rows.append(bench_score_every.run().row(bench_score_every.TARGET))
    rows.append(bench_excitation.run().row(bench_excitation.TARGET))
    rows.append(bench_excitation.run(rounds=3, reuse_forward=False).row("(no target: the separate pass)"))
    rows += [ratio.row(bench_activation.TARGET) for ratio in bench_activation.run()]
    rows += [ratio.row(bench_memory.TARGET) for ratio in bench_memory.run()]
    print(TABLE_HEADER)
    print("\n".join(rows))
    print("\n".join(details))
    if not args.no_plot:
        scaling = bench_scaling.run()
        print("\n".join(bench_scaling.report(scaling)))
        print(f"plot: {bench_scaling.plot(scaling)}")
    print(f"\n(total {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
