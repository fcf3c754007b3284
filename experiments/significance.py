#!/usr/bin/env python3
"""Paired (by seed) and unpaired (Welch) t-tests of every method against a baseline.

Reads every ``result.json`` below the folders given (as ``ydrop table`` does), groups the runs into
the rows of ``ydrop table`` (dataset, model label, method label, training settings) and
compares each row's test accuracy with its baseline row: by default plain ``dropout`` of
the same dataset and model, trained with the same settings (as the table's Δ dropout):

    python experiments/significance.py docs/results/mnist-fc1 [MORE_RUNS_DIRS] [--baseline dropout]
        [--baseline-model LABEL] [--baseline-settings SETTINGS]

``--baseline-model`` compares with the baseline of another model label (e.g. the rows
``fc1(dropout_at=first)`` against ``fc1``'s dropout); ``--baseline-settings`` with the
baseline trained with other settings, written as the table's brackets show them (e.g.
``monitor=val_loss``); ``--baseline same`` with the row's own method (e.g. each method
under ``monitor=val_acc`` against itself under ``monitor=val_loss``). Needs scipy
(installed with captum, one of the dev extras).
"""

from __future__ import annotations

import argparse
import math
import statistics
from typing import Any, NamedTuple

from ydrop.train.table import collect_results, markdown_table, row_groups

NO_TEST = "–"  # the cell of a test that cannot be made (too few seeds, no variance)
SAME = "same"  # --baseline value: the row's own method
HEADERS = ["dataset", "model", "method", "vs", "seeds (paired)", "mean Δ", "paired t (p)", "Welch t (p)"]


class Row(NamedTuple):
    """A row of ``ydrop table``: its settings are the label's bracket ("" when the
    dataset and model's runs all trained alike, else " [monitor=val_acc]")."""

    dataset: str
    model: str
    method: str
    settings: str


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="runs_dir", help="folders of runs, read together")
    parser.add_argument("--baseline", default="dropout",
                        help=f"method label of the baseline (default: dropout; {SAME!r}: the row's own method)")
    parser.add_argument("--baseline-model", default=None,
                        help="model label of the baseline (default: the same model as the row)")
    parser.add_argument("--baseline-settings", default=None,
                        help="training settings of the baseline as the table's brackets show them, e.g. "
                             "monitor=val_loss (default: the row's own)")
    args = parser.parse_args()
    try:
        args.results = collect_results(*args.runs)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    if not args.results:
        parser.error(f"no finished run (result.json) below {', '.join(args.runs)}")
    return args


def accuracy_groups(results: list[dict[str, Any]]) -> dict[Row, dict[int, float]]:
    """Each row of ``ydrop table`` -> {seed: test accuracy} (runs of other training
    settings never pooled)."""
    return {Row(*key): {r["config"]["seed"]: r["test_acc"] for r in runs}
            for key, runs in row_groups(results)[0].items()}


def baseline_of(row: Row, baseline: str, model: str | None = None, settings: str | None = None) -> Row:
    """The row that ``row`` is compared with (arguments as the command line's)."""
    return Row(row.dataset, model or row.model, row.method if baseline == SAME else baseline,
               row.settings if settings is None else f" [{settings}]")


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


def comparisons(groups: dict[Row, dict[int, float]], baseline: str, model: str | None = None,
                settings: str | None = None) -> list[list[str]]:
    """One table line (cells) per row that has a baseline row other than itself."""
    from scipy import stats  # here, not at import: --help works without scipy

    lines = []
    for row, accs in groups.items():
        base_row = baseline_of(row, baseline, model, settings)
        base = groups.get(base_row)
        if base is None or base_row == row:
            continue
        seeds = sorted(set(accs) & set(base))
        delta = statistics.fmean(accs.values()) - statistics.fmean(base.values())
        label = base_row.method + base_row.settings
        if base_row.model != row.model:
            label = f"{base_row.model} {label}"
        lines.append([row.dataset, row.model, row.method + row.settings, label, str(len(seeds)), f"{delta:+.2f}",
                      paired_t(accs, base, seeds, stats), welch_t(accs, base, stats)])
    return lines


def main() -> None:
    args = parse_args()
    lines = comparisons(accuracy_groups(args.results), args.baseline, args.baseline_model, args.baseline_settings)
    print(markdown_table(HEADERS, lines), end="")


if __name__ == "__main__":
    main()
