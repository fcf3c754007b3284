"""Result tables (Y-Drop Table 2 style) and validation curves from finished runs.

``collect_results(runs_dir, ...)`` reads every ``result.json`` below one or more folders;
``summarize(results)`` groups them by (dataset, model, method, training settings) into
rows with the mean and sample std of the test accuracy over seeds, the gain (Δ,
percentage points) over no dropout and over standard dropout of the same dataset,
model and settings, the median time per epoch and the runs that stopped at the epoch
cap. Runs whose configs differ in anything but the seed and :data:`NEUTRAL_FIELDS`
are never pooled: where the settings of one dataset and model differ, each row's
label names its own (``none [lr=0.1, max_epochs=2]``, :func:`setting_labels`);
``to_markdown``, ``to_csv`` and ``to_latex`` format the rows (the Markdown with notes
on what ±, Δ, "at cap", the test-set size and the placement mean).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Hashable, Iterable, Sequence, TypeVar

from . import store
from .config import NEUTRAL_FIELDS, TrainConfig

__all__ = ["collect_results", "summarize", "to_markdown", "to_csv", "to_latex", "plot_validation_curves", "plot_format",
           "method_label", "model_label", "markdown_table", "csv_table", "write_outputs", "table_notes", "at_cap",
           "still_improving", "NEUTRAL_FIELDS", "setting_labels", "pool_seeds", "row_groups"]

# The fields a row's label names already (dataset, model, method and their kwargs), and
# the seed, which a row pools over.
_LABELLED_FIELDS = ("dataset", "model", "model_kwargs", "method", "method_kwargs", "seed")
Item = TypeVar("Item")


def _as_dict(result: Any) -> dict[str, Any]:
    return result.to_dict() if hasattr(result, "to_dict") else result


def _label(name: str, kwargs: dict[str, Any]) -> str:
    if not kwargs:
        return name
    return name + "(" + ", ".join(f"{k}={_short(v)}" for k, v in sorted(kwargs.items())) + ")"


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(map(str, value))
    return str(value)


def method_label(config: dict[str, Any]) -> str:
    """"ydrop" or, with method kwargs, "ydrop(elasticity=0.01)"."""
    return _label(config["method"], config.get("method_kwargs") or {})


def model_label(config: dict[str, Any]) -> str:
    return _label(config["model"], config.get("model_kwargs") or {})


def collect_results(runs_dir: str | os.PathLike, *more_dirs: str | os.PathLike) -> list[dict[str, Any]]:
    """Every run's ``result.json`` below ``runs_dir`` and then below each of ``more_dirs``
    (sorted by path within a folder), each with ``run_dir`` set; files of that name that
    ydrop did not write (another tool's) are skipped, and so are unreadable ones, each
    with a :class:`~ydrop.train.store.UnreadableResultWarning`. A run found in two of the
    folders is there twice (:func:`summarize` counts such a copy once)."""
    results = []
    for folder in (runs_dir, *more_dirs):
        root = Path(folder)
        if not root.is_dir():
            raise FileNotFoundError(f"runs_dir {os.fspath(folder)!r} is not a folder")
        runs, _ = store.find_run_results(root)
        results += [{**data, "run_dir": str(path.parent)} for path, data in runs.items()]
    return results


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    """The fields of a stored config that set how its run trained, beyond its label and
    seed; a field added to TrainConfig after the run was stored counts as its default."""
    return {f.name: config.get(f.name, f.default_factory() if f.default is dataclasses.MISSING else f.default)
            for f in dataclasses.fields(TrainConfig) if f.name not in NEUTRAL_FIELDS + _LABELLED_FIELDS}


def setting_labels(panels: Sequence[Hashable], configs: Sequence[dict[str, Any]]) -> list[str]:
    """Per run (its panel, e.g. (dataset, model label), and its stored config): "" when
    every run of its panel trained with the same settings (:func:`_settings`), else
    `` [lr=0.1, max_epochs=2]``: its values of the settings that differ within the
    panel, so that runs of different settings never share a label and a homogeneous
    folder keeps its plain labels."""
    settings = [_settings(config) for config in configs]
    seen: dict[Hashable, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for panel, values in zip(panels, settings):
        for name, value in values.items():
            seen[panel][name].add(json.dumps(value, sort_keys=True))
    labels = []
    for panel, values in zip(panels, settings):
        differ = [f"{name}={_short(value)}" for name, value in values.items() if len(seen[panel][name]) > 1]
        labels.append(f" [{', '.join(differ)}]" if differ else "")
    return labels


def pool_seeds(keys: Sequence[Hashable], seeds: Sequence[Any],
               items: Sequence[Item]) -> tuple[dict[Hashable, list[Item]], dict[Hashable, list[Item]]]:
    """``items`` grouped by ``keys`` in first-seen order, each (key, seed) once: a later
    item of a (key, seed) already pooled (a copy of that run, e.g. two folders holding
    it) goes into the second dict, the copies, so that no seed counts twice."""
    groups: dict[Hashable, list[Item]] = defaultdict(list)
    copies: dict[Hashable, list[Item]] = defaultdict(list)
    pooled = set()
    for key, seed, item in zip(keys, seeds, items):
        (copies if (key, seed) in pooled else groups)[key].append(item)
        pooled.add((key, seed))
    return dict(groups), dict(copies)


def row_groups(results: Iterable[Any]) -> tuple[dict[tuple, list[dict[str, Any]]], dict[tuple, list[dict[str, Any]]]]:
    """The runs (as dicts) of each table row, keyed (dataset, model label, method label,
    settings label) in first-seen order, and the copies left out (:func:`pool_seeds`):
    the grouping of :func:`summarize`, for scripts that report other figures per row."""
    runs = [_as_dict(result) for result in results]
    configs = [run["config"] for run in runs]
    panels = [(config["dataset"], model_label(config)) for config in configs]
    keys = [(*panel, method_label(config), label)
            for panel, config, label in zip(panels, configs, setting_labels(panels, configs))]
    return pool_seeds(keys, [config["seed"] for config in configs], runs)


def summarize(results: Iterable[Any]) -> list[dict[str, Any]]:
    """Rows ``{dataset, model, method, n, mean, std, delta_none, delta_dropout, time_per_epoch,
    capped, improving, test_size, placement, monitor, settings, copies}``.

    One row per dataset, model, method and training settings: runs whose configs differ
    in anything but the seed and :data:`NEUTRAL_FIELDS` are never pooled, and where
    the settings of a dataset and model differ, ``method`` names the row's own
    (``none [lr=0.1, max_epochs=2]``, :func:`setting_labels`). ``mean``/``std``: test
    accuracy (%) over the runs (seeds) of the row; ``std`` is the sample standard
    deviation (None when n = 1). ``delta_none``/``delta_dropout``: mean minus the mean
    of "none"/"dropout" (no kwargs) of the same dataset, model and settings (None when
    that row is missing, or for the baseline itself). ``time_per_epoch``: the median
    time of an epoch over every epoch of the row's runs (a median, so that one run
    slowed down by another process does not inflate the row). ``capped``: runs that
    ended at the epoch cap rather than by early stopping; ``improving``: those of them
    whose best epoch (by ``monitor``) was their last. ``test_size``: images in the
    test split (None for results stored without it). ``placement``: the model's
    ``dropout_at`` (which slots hold the method). ``monitor``: the config's, which
    picked the tested epoch ("val_loss" for results stored without it). ``settings``: the label's part that
    names the row's settings ("" where they do not differ). ``copies``: the ``run_dir`` of each
    run left out as a copy of a run (same config and seed) the row counts already.
    Rows keep first-seen order.
    """
    groups, copies = row_groups(results)
    means = {key: statistics.fmean(r["test_acc"] for r in runs) for key, runs in groups.items()}
    rows = []
    for (dataset, model, method, settings), runs in groups.items():
        accs = [r["test_acc"] for r in runs]
        mean = means[(dataset, model, method, settings)]

        def gain(base: str) -> float | None:
            other = means.get((dataset, model, base, settings))
            return None if other is None or method == base else mean - other

        rows.append(dict(
            dataset=dataset, model=model, method=method + settings, settings=settings, n=len(accs), mean=mean,
            std=statistics.stdev(accs) if len(accs) > 1 else None,
            delta_none=gain("none"), delta_dropout=gain("dropout"),
            time_per_epoch=_median_epoch_time(runs), **_run_facts(runs),
            copies=[r.get("run_dir", "") for r in copies.get((dataset, model, method, settings), [])],
        ))
    return rows


def _median_epoch_time(runs: list[dict[str, Any]]) -> float:
    times = [h["time"] for r in runs for h in r.get("history", ()) if "time" in h]
    if not times:  # results without per-epoch times: their means
        times = [r["time_per_epoch"] for r in runs if "time_per_epoch" in r]
    return statistics.median(times) if times else math.nan


def at_cap(result: Any) -> bool:
    """Whether a run (its result, or that as a dict) ended at its epoch (or iteration)
    cap while early stopping was on, before early stopping triggered. That alone does
    not say its validation loss was still falling: :func:`still_improving` does."""
    data = _as_dict(result)
    return data.get("stopped_early") is False and data["config"].get("patience") is not None


def still_improving(result: Any) -> bool:
    """Whether a run's best epoch by its ``monitor`` (lowest validation loss by default)
    was its last (``best_epoch``, the epoch whose weights are tested, is the last of
    its history): stopped there, it might have improved further."""
    data = _as_dict(result)
    history = data.get("history") or []
    return bool(history) and data.get("best_epoch") == len(history) - 1


def _run_facts(runs: list[dict[str, Any]]) -> dict[str, Any]:
    sizes = [r["test_size"] for r in runs if r.get("test_size")]
    capped = [r for r in runs if at_cap(r)]
    caps = [r["config"].get("max_epochs") for r in capped]
    return dict(capped=len(caps), improving=sum(map(still_improving, capped)),
                max_epochs=max((c for c in caps if c), default=None),
                test_size=max(sizes) if sizes else None,
                placement=(runs[0]["config"].get("model_kwargs") or {}).get("dropout_at", "all"),
                monitor=_settings(runs[0]["config"])["monitor"])


def _fmt(value: float | None, signed: bool = False, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


HEADERS = ("dataset", "model", "method", "test accuracy (%)", "Δ none", "Δ dropout", "seeds", "at cap", "s / epoch")


def _cells(row: dict[str, Any], pm: str) -> list[str]:
    acc = _fmt(row["mean"]) + (f" {pm} {_fmt(row['std'])}" if row["std"] is not None else "")
    return [row["dataset"], row["model"], row["method"], acc, _fmt(row["delta_none"], True),
            _fmt(row["delta_dropout"], True), str(row["n"]), f"{row.get('capped', 0)}/{row['n']}",
            _fmt(row["time_per_epoch"], digits=3)]


def table_notes(rows: list[dict[str, Any]]) -> list[str]:
    """What the columns mean, for a reader who has not read the code: ±, Δ, the runs
    stopped at the cap, the test-set size (what one image is worth), the time and where
    the methods sit in the model."""
    settings = any(row.get("settings") for row in rows)
    notes = ["test accuracy: mean ± sample standard deviation (n - 1) over the seeds, of the best epoch "
             f"({_best_value(rows)}) of each run",
             "Δ none, Δ dropout: the row's mean minus the mean of no dropout / standard dropout on the same "
             f"dataset and model{' with the same settings' if settings else ''}, in percentage points"]
    if settings:
        notes.append("[...] after a method: the training settings its runs differ in from other runs of the same "
                     "dataset and model; runs of different settings are never pooled into one row")
    notes.append(_cap_note(rows))
    sizes = {row["dataset"]: row["test_size"] for row in rows if row.get("test_size")}
    for dataset, size in sizes.items():
        notes.append(f"test set: {dataset}, {size} images, so one image is {100 / size:.2g} points")
    notes.append("s / epoch: median time of one epoch over every epoch of the row's runs")
    placements = sorted({str(row.get("placement", "all")) for row in rows})
    notes.append(f"placement: shared, every method sits in the same dropout slots of the model "
                 f"(dropout_at={', '.join(placements)}; 'all' is after every hidden FC layer, as in the Y-Drop "
                 "paper; the Excitation Dropout paper guides only the first FC layer: --set dropout_at=first)")
    return notes


def _cap(capped: list[dict[str, Any]]) -> str:
    """"the 60-epoch cap" (or "the 2/60-epoch cap") of the rows with runs at their cap."""
    caps = sorted({row["max_epochs"] for row in capped if row.get("max_epochs")})
    return f"the {'/'.join(map(str, caps))}-epoch cap" if caps else "the epoch cap"


def _cap_note(rows: list[dict[str, Any]]) -> str:
    """The note on the "at cap" column."""
    capped = [row for row in rows if row.get("capped")]
    if not capped:
        return "at cap: runs that ended at the epoch cap rather than by early stopping (none here)"
    head, named = f"at cap: runs that ended at {_cap(capped)} before early stopping triggered", ", ".join(
        row["method"] for row in capped)
    best = _best_value(capped)
    if all(row.get("improving") == row["capped"] for row in capped):
        return (f"{head}, all still improving ({best} in their last epoch), so they may be "
                f"under-trained (rows: {named}); raise --epochs to compare them fairly")
    improving = [f"{row['method']} ({row['improving']} of {row['capped']})" for row in capped if row.get("improving")]
    if not improving:  # each had its best epoch before its last
        return f"{head} (rows: {named}); none was still improving ({best} in its last epoch)"
    return (f"{head} (rows: {named}); still improving ({best} in their last epoch), so maybe "
            f"under-trained: {', '.join(improving)}; raise --epochs to compare them fairly")


def _best_value(rows: list[dict[str, Any]]) -> str:
    """What made the best epoch of the rows' runs (their config's ``monitor``)."""
    monitors = {row.get("monitor", TrainConfig.monitor) for row in rows}
    if monitors == {"val_loss"}:
        return "lowest validation loss"
    return "highest validation accuracy" if monitors == {"val_acc"} else "best validation loss or accuracy"


def markdown_table(headers: Sequence[str], lines: Iterable[Sequence[str]]) -> str:
    """A Markdown table of already formatted cells."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return "\n".join(out) + "\n"


def csv_table(fields: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """CSV with a header line and the raw values of ``fields`` (empty cells for None)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fields)
    for row in rows:
        writer.writerow(["" if row[f] is None else row[f] for f in fields])
    return buffer.getvalue()


def to_markdown(rows: list[dict[str, Any]], notes: bool = True) -> str:
    """A Markdown table, one line per (dataset, model, method), then (``notes``) a list
    saying what its columns mean (:func:`table_notes`)."""
    table = markdown_table(HEADERS, (_cells(row, "±") for row in rows))
    if not notes:
        return table
    return table + "\n" + "".join(f"- {note}\n" for note in table_notes(rows))


CSV_FIELDS = ("dataset", "model", "method", "n", "mean", "std", "delta_none", "delta_dropout", "time_per_epoch",
              "capped", "test_size")


def to_csv(rows: list[dict[str, Any]]) -> str:
    """CSV with a header line and raw numbers (empty cells for None)."""
    return csv_table(CSV_FIELDS, rows)


def _tex(text: str) -> str:
    for char, repl in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        text = text.replace(char, repl)
    return text


def to_latex(rows: list[dict[str, Any]]) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``)."""
    headers = ["Dataset", "Model", "Method", r"Test acc. (\%)", r"$\Delta$ none", r"$\Delta$ dropout", "Seeds",
               "At cap", "s / epoch"]
    lines = [r"\begin{tabular}{lllrrrrrr}", r"\toprule", " & ".join(headers) + r" \\", r"\midrule"]
    for row in rows:
        cells = _cells(row, "$\\pm$")
        cells = [_tex(c) if i < 3 else c.replace("–", "--") for i, c in enumerate(cells)]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_outputs(folder: str | os.PathLike, texts: dict[str, str]) -> None:
    """Write each ``{file name: text}`` into ``folder``, atomically (readers never see half a file)."""
    for name, text in texts.items():
        store.atomic_write(Path(folder) / name, lambda f, t=text: f.write(t.encode()))


def _mean_std(curves: list[list[float]]) -> tuple[Any, Any]:
    """Per epoch: mean and sample std over the curves reaching it (runs stopped early
    drop out of later epochs; std 0 where one run is left)."""
    import numpy as np

    length = max(len(c) for c in curves)
    mean, std = [], []
    for epoch in range(length):
        values = [c[epoch] for c in curves if epoch < len(c)]
        mean.append(float(np.mean(values)))
        std.append(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0)
    return np.array(mean), np.array(std)


def curve_range(means: list[Any], stds: list[Any]) -> tuple[float, float]:
    """A y-range that separates curves ending close together: from below the lowest
    final accuracy (mean of a curve's last 3 epochs) to above the highest band of the
    later half, at most 100.5; the climbs from chance fall below it."""
    finals = [float(m[-3:].mean()) for m in means]
    top = min(100.0, max(float((m + s)[len(m) // 2:].max()) for m, s in zip(means, stds)))
    span = max(top - min(finals), 1.0)
    return max(0.0, min(finals) - 0.25 * span), min(100.5, top + 0.1 * span)


BAND_CAPTION = ("line: mean over seeds; band: ± 1 sample standard deviation over seeds\n"
                "below: the same curves, y-axis zoomed on the final accuracies")


def plot_format(path: str | os.PathLike, name: str = "path") -> str:
    """The image format ``path``'s suffix names, as matplotlib's ``savefig`` reads it
    (``.pdf`` -> "pdf"; no suffix: matplotlib's default, png). ValueError naming
    ``name`` and the suffixes allowed when matplotlib writes no such format."""
    import matplotlib
    from matplotlib.backend_bases import FigureCanvasBase

    suffix = Path(path).suffix
    if not suffix:
        return matplotlib.rcParams["savefig.format"]
    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    if suffix[1:].lower() not in formats:
        raise ValueError(f"{name} {os.fspath(path)!r}: matplotlib writes no {suffix!r} files; allowed suffixes: "
                         + ", ".join("." + f for f in formats))
    return suffix[1:].lower()


def plot_validation_curves(results: Iterable[Any], path: str | os.PathLike) -> Path:
    """Image of mean validation accuracy per epoch per method (shaded ± 1 sample std over
    seeds), one column per (dataset, model): the whole curves above, below the same
    zoomed on the final accuracies where the methods differ (:func:`curve_range`);
    written atomically, in the format the suffix of ``path`` names (:func:`plot_format`:
    png, pdf, svg, ...). Returns the path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    image_format = plot_format(path)

    panels: dict[tuple[str, str], dict[str, list[list[float]]]] = defaultdict(dict)
    for (dataset, model, method, settings), runs in row_groups(results)[0].items():  # one curve per table row
        panels[(dataset, model)][method + settings] = [[h["val_acc"] for h in run["history"]] for run in runs]
    if not panels:
        raise ValueError("results is empty: no validation curve to plot")
    figure, axes = plt.subplots(2, len(panels), figsize=(6 * len(panels), 7.5), squeeze=False)
    for column, ((dataset, model), methods) in enumerate(panels.items()):
        whole, zoom = axes[0][column], axes[1][column]
        curves = {method: _mean_std(runs) for method, runs in methods.items()}
        for ax in (whole, zoom):
            _draw_curves(ax, curves, {m: len(r) for m, r in methods.items()})
        zoom.set_ylim(*curve_range([m for m, _ in curves.values()], [s for _, s in curves.values()]))
        whole.set_title(f"{dataset} / {model}")
        zoom.set_title("zoomed on the final accuracies", fontsize="medium")
        whole.legend(fontsize="small", loc="lower right")
    figure.text(0.5, 0.01, BAND_CAPTION, ha="center", va="bottom", fontsize="small")
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    path = Path(path)
    try:
        store.atomic_write(path, lambda f: figure.savefig(f, format=image_format, dpi=120))
    finally:
        plt.close(figure)
    return path


def _draw_curves(ax: Any, curves: dict[str, tuple[Any, Any]], counts: dict[str, int]) -> None:
    import numpy as np

    for method, (mean, std) in curves.items():
        epochs = np.arange(1, len(mean) + 1)
        ax.plot(epochs, mean, label=f"{method} (n={counts[method]})")
        ax.fill_between(epochs, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
