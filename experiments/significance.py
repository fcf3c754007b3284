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
from collections import defaultdict

from ydrop.train.table import collect_results, method_label, model_label, setting_labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dir")
    parser.add_argument("--baseline", default="dropout", help="method label of the baseline (default: dropout)")
    parser.add_argument("--baseline-model", default=None,
                        help="model label of the baseline (default: the same model as the row)")
    args = parser.parse_args()
    from scipy import stats

    groups: dict[tuple[str, str, str], dict[int, float]] = defaultdict(dict)
    results = collect_results(args.runs_dir)
    panels = [(r["config"]["dataset"], model_label(r["config"])) for r in results]
    # Runs of other training settings are never pooled (as in ydrop table): their label names them.
    for result, panel, settings in zip(results, panels, setting_labels(panels, [r["config"] for r in results])):
        groups[(*panel, method_label(result["config"]) + settings)][result["config"]["seed"]] = result["test_acc"]
    print("| dataset | model | method | vs | seeds (paired) | mean Δ | paired t (p) | Welch t (p) |")
    print("|---|---|---|---|---|---|---|---|")
    for (dataset, model, method), accs in groups.items():
        base_model = args.baseline_model or model
        base = groups.get((dataset, base_model, args.baseline))
        if base is None or (method == args.baseline and base_model == model):
            continue
        seeds = sorted(set(accs) & set(base))
        delta = statistics.fmean(accs.values()) - statistics.fmean(base.values())
        paired = "–"
        if len(seeds) >= 2:
            diffs = [accs[s] - base[s] for s in seeds]
            if any(d != diffs[0] for d in diffs):
                t = stats.ttest_rel([accs[s] for s in seeds], [base[s] for s in seeds])
                paired = f"{t.statistic:.2f} ({t.pvalue:.3f})"
        welch = "–"
        if len(accs) >= 2 and len(base) >= 2:
            t = stats.ttest_ind(list(accs.values()), list(base.values()), equal_var=False)
            if math.isfinite(t.statistic):
                welch = f"{t.statistic:.2f} ({t.pvalue:.3f})"
        label = args.baseline if base_model == model else f"{base_model} {args.baseline}"
        print(f"| {dataset} | {model} | {method} | {label} | {len(seeds)} | {delta:+.2f} | {paired} | {welch} |")


if __name__ == "__main__":
    main()
