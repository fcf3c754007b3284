"""``analyze(paths)``: the analyses of finished runs as a Table-5-style table and the
papers' figures, methods side by side (``ydrop analyze``, ``ydrop compare --analyze``).

Each run is rebuilt and analysed by :mod:`ydrop.analysis.runs`; the runs are then
grouped by (dataset, model, method, training settings, layer), seeds together (runs
trained with other settings are never pooled, as in ``ydrop table``), and :func:`write_report`
writes into one folder, each file atomically:

- ``table.md``: one row per group, every metric as mean (±std) over its seeds
  (Excitation Dropout Table 5's layout turned so that methods are rows);
- ``table.csv``: the same numbers, raw, one ``<metric>_mean`` and ``<metric>_std``
  column each (std empty for one seed);
- ``analysis.json``: every number of every run: metrics, per-unit mean conductances,
  curves;
- per (dataset, model, layer): ``spread.png`` (Y-Drop Fig. 2a/2b), ``removal.png``
  (accuracy when removing units at random, most important first, least important
  first: Y-Drop Fig. 3a/3b) and ``peb_removal.png`` (ground-truth probability for
  p_c most relevant first, least relevant first, random: Excitation Fig. 7 left,
  centre, right). Several groups add ``-<dataset>-<model>-<layer>`` to the names.

Robustness columns are areas under the curves (trapezoid, divided by the width of
the grid: the curve's mean height), so 1 means "nothing lost at any removal".
Entropies are in nats.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .._validation import check_choice, check_non_negative, check_positive_int
from ..train import store
from ..train.config import DEVICES
from ..train.table import pool_seeds, setting_labels
from .runs import (
    DEFAULT_CONSERVATIVE_DELTA,
    DEFAULT_REPEATS,
    RunAnalysis,
    analyse_run,
    find_runs,
    load_run,
    run_layers,
)

__all__ = ["COLUMNS", "Report", "summarize_analyses", "to_markdown", "to_csv", "write_report", "analyze",
           "default_out"]

# (metric key of RunAnalysis.metrics(), header, format of one number); "%" scales by 100.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("test_acc", "test acc. (%)", "%.2f"),
    ("neurons_on", "neurons ON", ".1f"),
    ("peak_peb", "peak p_EB", ".4f"),
    ("entropy_activations", "entropy of activations", ".3f"),
    ("entropy_peb", "entropy of p_EB", ".3f"),
    ("conservative", "conservative units", ".1f"),
    ("total_conductance", "total conductance", ".4g"),
    ("top20", "top 20 % share (%)", "%.1f"),
    ("top40", "top 40 % share (%)", "%.1f"),
    ("top60", "top 60 % share (%)", "%.1f"),
    ("top80", "top 80 % share (%)", "%.1f"),
    ("auc_random", "acc. AUC random", ".3f"),
    ("auc_most", "acc. AUC most important first", ".3f"),
    ("auc_least", "acc. AUC least important first", ".3f"),
    ("auc_peb_most", "GT prob. AUC p_c most relevant", ".3f"),
    ("auc_peb_least", "GT prob. AUC p_c least relevant", ".3f"),
)
GROUP_KEYS = ("dataset", "model", "method", "layer")


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _method_labels(analyses: Sequence[RunAnalysis]) -> list[str]:
    """Each analysis's method label, with the training settings that tell its run apart
    from other runs of its dataset and model (:func:`ydrop.train.table.setting_labels`)."""
    labels = setting_labels([(a.dataset, a.model) for a in analyses], [a.config for a in analyses])
    return [a.method + label for a, label in zip(analyses, labels)]


def _groups(analyses: Sequence[RunAnalysis]) -> tuple[dict[tuple, list[RunAnalysis]], dict[tuple, list[RunAnalysis]]]:
    """The analyses of each (dataset, model, method with its settings, layer) and the
    copies of a run already counted (:func:`ydrop.train.table.pool_seeds`)."""
    keys = [(a.dataset, a.model, method, a.layer) for a, method in zip(analyses, _method_labels(analyses))]
    return pool_seeds(keys, [a.seed for a in analyses], analyses)


def summarize_analyses(analyses: Sequence[RunAnalysis]) -> list[dict[str, Any]]:
    """Rows ``{dataset, model, method, layer, units, seeds, copies, <metric>: (mean, std or
    None)}``, one per (dataset, model, method, layer) in first-seen order; std is the
    sample std over the group's runs (seeds). Runs trained with different settings (any
    config field but the seed and :data:`~ydrop.train.table.NEUTRAL_FIELDS`) are never
    pooled: ``method`` then names the settings of its row, as ``ydrop table`` does. A
    second analysis of a run (same config and seed) counts once; ``copies`` lists the
    ``run_dir`` of those left out."""
    groups, copies = _groups(analyses)
    rows = []
    for key, group in groups.items():
        metrics = [a.metrics() for a in group]
        row: dict[str, Any] = dict(zip(GROUP_KEYS, key), units=group[0].units, seeds=len(group),
                                   conservative_delta=group[0].conservative_delta,
                                   copies=[a.run_dir for a in copies.get(key, [])])
        row.update({name: _mean_std([m[name] for m in metrics]) for name in metrics[0] if name != "units"})
        rows.append(row)
    return rows


def _number(value: float, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(100 * value, fmt[1:]) if fmt.startswith("%") else format(value, fmt)


def _headers(rows: list[dict[str, Any]]) -> list[str]:
    delta = rows[0]["conservative_delta"] if rows else DEFAULT_CONSERVATIVE_DELTA
    return [f"{header} (Δ < {delta:g})" if key == "conservative" else header for key, header, _ in COLUMNS]


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """A Markdown table, one line per row of :func:`summarize_analyses`: mean (±std)."""
    headers = ["dataset", "model", "method", "layer (units)", "seeds", *_headers(rows)]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        cells = [row["dataset"], row["model"], row["method"], f"{row['layer']} ({row['units']})", str(row["seeds"])]
        for key, _, fmt in COLUMNS:
            mean, std = row[key]
            cells.append(_number(mean, fmt) + (f" (±{_number(std, fmt)})" if std is not None else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict[str, Any]]) -> str:
    """CSV of the rows: raw numbers (fractions, not %), empty std for one seed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    fields = [f"{key}_{part}" for key, _, _ in COLUMNS for part in ("mean", "std")]
    writer.writerow([*GROUP_KEYS, "units", "seeds", "conservative_delta", *fields])
    for row in rows:
        values = [v for key, _, _ in COLUMNS for v in row[key]]
        writer.writerow([*(row[k] for k in GROUP_KEYS), row["units"], row["seeds"], row["conservative_delta"],
                         *("" if v is None else v for v in values)])
    return buffer.getvalue()


def _write_text(path: Path, text: str) -> Path:
    store.atomic_write(path, lambda handle: handle.write(text.encode()))
    return path


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=,-]+", "_", "-".join(parts))


def write_report(analyses: Sequence[RunAnalysis], out: str | os.PathLike) -> dict[str, Path]:
    """Write the table, ``analysis.json`` and the figures (see the module docstring) into
    ``out``; returns ``{file name: path}``."""
    from .plots import plot_conductance_spread, plot_robustness_panels

    if not analyses:
        raise ValueError("analyses must hold at least one RunAnalysis, got none")
    out = Path(out)
    rows = summarize_analyses(analyses)
    files = {
        "table.md": _write_text(out / "table.md", to_markdown(rows)),
        "table.csv": _write_text(out / "table.csv", to_csv(rows)),
    }
    store.write_json(out / "analysis.json", [a.to_dict() for a in analyses])
    files["analysis.json"] = out / "analysis.json"
    figures: dict[tuple[str, str, str], dict[str, list[RunAnalysis]]] = defaultdict(dict)
    for (dataset, model, method, layer), runs in _groups(analyses)[0].items():  # one curve per table row
        figures[(dataset, model, layer)][method] = runs
    for (dataset, model, layer), methods in figures.items():
        suffix = "" if len(figures) == 1 else "-" + _slug(dataset, model, layer)
        title = f"{dataset}, {model}, layer {layer}"

        def curves(kind: str) -> dict[str, list]:
            return {method: [a.curves[kind] for a in runs] for method, runs in methods.items()}

        for name, path in (
            ("spread", plot_conductance_spread(
                {method: [a.spread for a in runs] for method, runs in methods.items()},
                out / f"spread{suffix}.png", title=f"{title}: mean conductance on the validation set")),
            ("removal", plot_robustness_panels(
                {"(a) random": curves("random"), "(b) most important first": curves("most"),
                 "(c) least important first": curves("least")},
                out / f"removal{suffix}.png", "accuracy", title=f"{title}: units removed at inference")),
            ("peb_removal", plot_robustness_panels(
                {"most relevant first (p_c)": curves("peb_most"), "least relevant first (p_c)": curves("peb_least"),
                 "random": curves("random")},
                out / f"peb_removal{suffix}.png", "gt_prob", title=f"{title}: units removed at inference")),
        ):
            files[f"{name}{suffix}.png"] = path
    return files


@dataclass
class Report:
    """What :func:`analyze` did: the per-run analyses, the table rows and text, the files."""

    analyses: list[RunAnalysis]
    rows: list[dict[str, Any]]
    markdown: str
    files: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0


def default_out(paths: Sequence[str | os.PathLike] | str | os.PathLike) -> Path:
    """``analysis/`` in the common folder of the given paths (``runs/analysis`` for ``runs``)."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else paths
    return Path(os.path.commonpath([os.path.abspath(p) for p in paths])) / "analysis"


def analyze(
    paths: Sequence[str | os.PathLike] | str | os.PathLike,
    out: str | os.PathLike | None = None,
    layer: str | None = None,
    repeats: int = DEFAULT_REPEATS,
    device: str = "auto",
    data_dir: str | os.PathLike | None = None,
    conservative_delta: float = DEFAULT_CONSERVATIVE_DELTA,
    progress: bool = True,
) -> Report:
    """Analyse every finished run in ``paths`` (run folders or roots searched below) and
    write the report into ``out`` (default: ``analysis/`` in the common folder of ``paths``).

    ``layer``: a submodule name present in every run's model (default: each model's
    first dropout slot, :func:`~ydrop.analysis.runs.default_layer`). ``repeats``: R of
    random removal. ``device``: "auto", "cpu" or "cuda". ``data_dir``: dataset root (default: the one stored with each run).
    ``conservative_delta``: Δ of the conservative units (absolute L2 change).
    Bad arguments raise ValueError before any run is loaded.
    """
    started = time.perf_counter()
    check_positive_int("repeats", repeats)
    check_choice("device", device, DEVICES)
    check_non_negative("conservative_delta", conservative_delta)
    runs = find_runs(paths)
    layers = run_layers(runs, layer)
    out = default_out(paths) if out is None else Path(out)
    cache: dict = {}
    analyses = []
    for folder, run_layer in tqdm(list(zip(runs, layers)), desc="analyse runs", unit="run", disable=not progress):
        run = load_run(folder, device=device, data_dir=data_dir, progress=progress, cache=cache)
        analyses.append(analyse_run(run, run_layer, repeats=repeats, conservative_delta=conservative_delta,
                                    progress=progress))
    files = write_report(analyses, out)
    rows = summarize_analyses(analyses)
    return Report(analyses, rows, to_markdown(rows), files, time.perf_counter() - started)
