#!/usr/bin/env python3
"""How the early-stopping rule read finished runs: per table row, the epoch each run
tested against the epoch of its highest validation accuracy, and the validation accuracy
of each (means over the row's seeds; epochs counted from 1).

    python experiments/stopping_rule.py docs/results/mnist-fc1 [more run folders ...]

A run stopped by its validation loss (the Y-Drop protocol) did not train the epochs after
its stop, so its highest validation accuracy is over the epochs it trained. A run of the
same config and seed with ``--set monitor=val_acc``, by the same code on the same host,
trains those same epochs first (the monitor changes only when the run stops and which
epoch is tested), so its highest validation accuracy is at least that figure.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from ydrop.train.table import collect_results, markdown_table, row_groups

HEADERS = ("dataset", "model", "method", "runs", "epochs trained", "tested epoch", "val. acc. there",
           "epoch of highest val. acc.", "highest val. acc.", "Δ val. acc.")


def run_figures(run: dict[str, Any]) -> tuple[int, int, float, int, float]:
    """(epochs trained, tested epoch, its val. acc., epoch of the highest val. acc., that
    accuracy) of one result; epochs from 1, the first epoch of a tie."""
    accs = [record["val_acc"] for record in run["history"]]
    best = accs.index(max(accs))
    return len(accs), run["best_epoch"] + 1, accs[run["best_epoch"]], best + 1, accs[best]


def row(key: tuple[str, str, str, str], runs: list[dict[str, Any]]) -> list[str]:
    """One table line: the row's label and the means of :func:`run_figures` over its runs."""
    dataset, model, method, settings = key
    epochs, tested, tested_acc, peak, peak_acc = (statistics.fmean(column) for column in
                                                  zip(*(run_figures(run) for run in runs)))
    return [dataset, model, method + settings, str(len(runs)), f"{epochs:.1f}", f"{tested:.1f}",
            f"{tested_acc:.2f}", f"{peak:.1f}", f"{peak_acc:.2f}", f"{peak_acc - tested_acc:+.2f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="folders holding finished runs (result.json)")
    args = parser.parse_args()
    try:
        results = collect_results(*args.runs)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    if not results:
        parser.error(f"no finished run (result.json) below {', '.join(args.runs)}")
    groups = row_groups(results)[0]
    print(markdown_table(HEADERS, [row(key, runs) for key, runs in groups.items() if _has_history(runs)]), end="")


def _has_history(runs: list[dict[str, Any]]) -> bool:
    return all(run.get("history") for run in runs)


if __name__ == "__main__":
    main()
