#!/usr/bin/env python3
"""Paired (by seed) and unpaired (Welch) t-tests of every method against a baseline.

Reads every ``result.json`` below RUNS_DIR (as ``ydrop table`` does), groups the runs by
(dataset, model label, method label) and compares each group's test accuracy with the
baseline method of the same dataset and model (default: plain ``dropout``):

    python experiments/significance.py docs/results/mnist-fc1 [--baseline dropout] [--baseline-model LABEL]

``--baseline-model`` compares with the baseline of another model label (e.g. the rows
``fc1(dropout_at=first)`` against ``fc1``'s dropout). Needs scipy (installed with
captum, one of the dev extras).
"""

from __future__ import annotations

import argparse
import math
import statistics
from typing import Any

from ydrop.train.table import collect_results, row_groups

NO_TEST = "–"  # the cell of a test that cannot be made (too few seeds, no variance)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dir")
    parser.add_argument("--baseline", default="dropout", help="method label of the baseline (default: dropout)")
    parser.add_argument("--baseline-model", default=None,
                        help="model label of the baseline (default: the same model as the row)")
    return parser.parse_args()


def accuracy_groups(results: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[int, float]]:
    """(dataset, model label, method label) -> {seed: test accuracy}: the rows of ``ydrop
    table`` (runs of other training settings never pooled: their label names them)."""
    return {(dataset, model, method + settings): {r["config"]["seed"]: r["test_acc"] for r in runs}
            for (dataset, model, method, settings), runs in row_groups(results)[0].items()}


def paired_t(accs: dict[int, float], base: dict[int, float], seeds: list[int], stats) -> str:
    """The paired t-test over the seeds both groups ran, as "t (p)"; none for fewer
    than two seeds or differences all alike (t is undefined)."""
    if len(seeds) < 2:
        return NO_TEST
    diffs = [accs[s] - base[s] for s in seeds]
    if not any(d != diffs[0] for d in diffs):
        return NO_TEST
    t = stats.ttest_rel([accs[s] for s in seeds], [base[s] for s in seeds])
    return f"{t.statistic:.2f} ({t.pvalue:.3f})"


def welch_t(accs: dict[int, float], base: dict[int, float], stats) -> str:
    """Welch's t-test of all the runs of both groups, as "t (p)"; none for fewer than two
    runs on a side or a non-finite t."""
    if len(accs) < 2 or len(base) < 2:
        return NO_TEST
    t = stats.ttest_ind(list(accs.values()), list(base.values()), equal_var=False)
    return f"{t.statistic:.2f} ({t.pvalue:.3f})" if math.isfinite(t.statistic) else NO_TEST


def main() -> None:
    args = parse_args()
    from scipy import stats  # after the arguments: --help works without scipy

    groups = accuracy_groups(collect_results(args.runs_dir))
    print("| dataset | model | method | vs | seeds (paired) | mean Δ | paired t (p) | Welch t (p) |")
    print("|---|---|---|---|---|---|---|---|")
    for (dataset, model, method), accs in groups.items():
        base_model = args.baseline_model or model
        base = groups.get((dataset, base_model, args.baseline))
        if base is None or (method == args.baseline and base_model == model):
            continue
        seeds = sorted(set(accs) & set(base))
        delta = statistics.fmean(accs.values()) - statistics.fmean(base.values())
        paired, welch = paired_t(accs, base, seeds, stats), welch_t(accs, base, stats)
        label = args.baseline if base_model == model else f"{base_model} {args.baseline}"
        print(f"| {dataset} | {model} | {method} | {label} | {len(seeds)} | {delta:+.2f} | {paired} | {welch} |")


if __name__ == "__main__":
    main()
