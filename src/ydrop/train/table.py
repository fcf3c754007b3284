"""Result tables (Y-Drop Table 2 style) and validation curves from finished runs.

``collect_results(runs_dir)`` reads every ``result.json`` below a folder;
``summarize(results)`` groups them by (dataset, model, method) into rows with the
mean and sample std of the test accuracy over seeds, the gain (Δ, percentage points)
over no dropout and over standard dropout of the same dataset and model, and the
mean time per epoch; ``to_markdown``, ``to_csv`` and ``to_latex`` format the rows.
"""

from __future__ import annotations

import csv
import io
import math
import os
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from . import store

__all__ = ["collect_results", "summarize", "to_markdown", "to_csv", "to_latex", "plot_validation_curves",
           "method_label", "model_label", "markdown_table", "csv_table", "write_outputs"]


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


def collect_results(runs_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every ``result.json`` below ``runs_dir`` (sorted by path), each with ``run_dir`` set."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"runs_dir {os.fspath(runs_dir)!r} is not a folder")
    results = []
    for path in sorted(root.rglob(store.RESULT_FILE)):
        data = store.read_json(path)
        data["run_dir"] = str(path.parent)
        results.append(data)
    return results


def summarize(results: Iterable[Any]) -> list[dict[str, Any]]:
    """Rows ``{dataset, model, method, n, mean, std, delta_none, delta_dropout, time_per_epoch}``.

    ``mean``/``std``: test accuracy (%) over the runs (seeds) of the group; ``std`` is the
    sample standard deviation (None when n = 1). ``delta_none``/``delta_dropout``: mean minus
    the mean of "none"/"dropout" (no kwargs) on the same dataset and model (None when
    that group is missing, or for the baseline itself). Rows keep first-seen order.
    """
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        data = _as_dict(result)
        config = data["config"]
        groups[(config["dataset"], model_label(config), method_label(config))].append(data)
    means = {key: statistics.fmean(r["test_acc"] for r in runs) for key, runs in groups.items()}
    rows = []
    for (dataset, model, method), runs in groups.items():
        accs = [r["test_acc"] for r in runs]
        mean = means[(dataset, model, method)]

        def gain(base: str) -> float | None:
            other = means.get((dataset, model, base))
            return None if other is None or method == base else mean - other

        rows.append(dict(
            dataset=dataset, model=model, method=method, n=len(accs), mean=mean,
            std=statistics.stdev(accs) if len(accs) > 1 else None,
            delta_none=gain("none"), delta_dropout=gain("dropout"),
            time_per_epoch=statistics.fmean(r.get("time_per_epoch", math.nan) for r in runs),
        ))
    return rows


def _fmt(value: float | None, signed: bool = False, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


HEADERS = ("dataset", "model", "method", "test accuracy (%)", "Δ none", "Δ dropout", "seeds", "s / epoch")


def _cells(row: dict[str, Any], pm: str) -> list[str]:
    acc = _fmt(row["mean"]) + (f" {pm} {_fmt(row['std'])}" if row["std"] is not None else "")
    return [row["dataset"], row["model"], row["method"], acc, _fmt(row["delta_none"], True),
            _fmt(row["delta_dropout"], True), str(row["n"]), _fmt(row["time_per_epoch"], digits=3)]


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


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """A Markdown table: one line per (dataset, model, method)."""
    return markdown_table(HEADERS, (_cells(row, "±") for row in rows))


CSV_FIELDS = ("dataset", "model", "method", "n", "mean", "std", "delta_none", "delta_dropout", "time_per_epoch")


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
               "s / epoch"]
    lines = [r"\begin{tabular}{lllrrrrr}", r"\toprule", " & ".join(headers) + r" \\", r"\midrule"]
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


def plot_validation_curves(results: Iterable[Any], path: str | os.PathLike) -> Path:
    """PNG of mean validation accuracy per epoch per method (shaded ± std over seeds),
    one panel per (dataset, model); written atomically. Returns the path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    panels: dict[tuple[str, str], dict[str, list[list[float]]]] = defaultdict(lambda: defaultdict(list))
    for result in results:
        data = _as_dict(result)
        config = data["config"]
        curve = [h["val_acc"] for h in data["history"]]
        panels[(config["dataset"], model_label(config))][method_label(config)].append(curve)
    if not panels:
        raise ValueError("results is empty: no validation curve to plot")
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, ((dataset, model), methods) in zip(axes[0], panels.items()):
        for method, curves in methods.items():
            length = max(len(c) for c in curves)
            mean, std = [], []
            for epoch in range(length):  # runs stopped early drop out of later epochs
                values = [c[epoch] for c in curves if epoch < len(c)]
                mean.append(float(np.mean(values)))
                std.append(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0)
            epochs = np.arange(1, length + 1)
            mean, std = np.array(mean), np.array(std)
            ax.plot(epochs, mean, label=f"{method} (n={len(curves)})")
            ax.fill_between(epochs, mean - std, mean + std, alpha=0.2)
        ax.set_title(f"{dataset} / {model}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    figure.tight_layout()
    path = Path(path)
    try:
        store.atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=120))
    finally:
        plt.close(figure)
    return path
