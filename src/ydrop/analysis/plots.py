"""Figures and tables of the analysis (Y-Drop Fig. 2-3, Excitation Dropout Fig. 7, Table 5).

Every plot uses matplotlib's Agg backend, writes its PNG atomically (a temporary
file in the target directory, then ``os.replace``) and returns the path.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .._validation import check_choice  # noqa: E402
from .metrics import SpreadResult  # noqa: E402
from .robustness import RobustnessCurve  # noqa: E402

__all__ = ["plot_conductance_spread", "plot_robustness", "to_markdown_table"]


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            fig.savefig(handle, format="png", dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        plt.close(fig)
    return path


def _check_models(name: str, value: Mapping, kind: type) -> None:
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"{name} must be a non-empty dict {{model name: {kind.__name__}}}, got {value!r}")
    for key, item in value.items():
        if not isinstance(item, kind):
            raise TypeError(f"{name}[{key!r}] must be a {kind.__name__}, got {type(item).__name__}")


def plot_conductance_spread(spreads: Mapping[str, SpreadResult], path: str | os.PathLike, title: str = "") -> Path:
    """Sorted mean conductance per unit (left, Fig. 2a) and the cumulative
    conductance with the top-fraction shares (right, Fig. 2b), one line per model."""
    _check_models("spreads", spreads, SpreadResult)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, spread in spreads.items():
        units = range(1, spread.sorted.numel() + 1)
        left.plot(units, spread.sorted.numpy(), label=name)
        line, = right.plot(units, spread.sorted.cumsum(0).numpy(), label=f"{name} (total {spread.total:.3g})")
        for fraction, share in spread.top_shares.items():
            k = max(1, math.ceil(fraction * spread.sorted.numel() - 1e-9))
            y = float(spread.sorted[:k].sum())
            right.annotate(f"{100 * share:.1f}%", (k, y), color=line.get_color(), fontsize=8)
    left.set(xlabel="unit (sorted by mean conductance)", ylabel="mean conductance")
    right.set(xlabel="number of top units", ylabel="cumulative conductance")
    for axis in (left, right):
        axis.legend()
        axis.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_robustness(
    curves: Mapping[str, RobustnessCurve | Sequence[RobustnessCurve]],
    path: str | os.PathLike,
    metric: str = "accuracy",
    title: str = "",
) -> Path:
    """Robustness curves with a shaded std, one line per model (Fig. 3, Fig. 7).

    ``curves[name]`` is one curve (shade = std over its random repeats) or a list of
    curves of several trained models on the same grid (line = mean of the means,
    shade = std between models, as Fig. 7). ``metric``: ``"accuracy"`` or ``"gt_prob"``.
    """
    metric = check_choice("metric", metric, ("accuracy", "gt_prob"))
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError(f"curves must be a non-empty dict {{model name: RobustnessCurve or list}}, got {curves!r}")
    import numpy as np

    fig, axis = plt.subplots(figsize=(6, 4))
    xlabel = "removed fraction of units"
    for name, value in curves.items():
        group = [value] if isinstance(value, RobustnessCurve) else list(value)
        if not group or not all(isinstance(c, RobustnessCurve) for c in group):
            raise TypeError(f"curves[{name!r}] must be a RobustnessCurve or a non-empty list of them")
        grid = np.asarray(group[0].grid)
        if group[0].kind.startswith("peb"):
            xlabel = "cumulative p_EB removed (p_c)"
        means = np.asarray([getattr(c, f"{metric}_mean") for c in group])
        if len(group) == 1:
            mean, std = means[0], np.asarray(getattr(group[0], f"{metric}_std"))
        else:
            mean, std = means.mean(0), means.std(0, ddof=1)
        line, = axis.plot(grid, mean, label=name)
        axis.fill_between(grid, mean - std, mean + std, color=line.get_color(), alpha=0.25)
    axis.set(xlabel=xlabel, ylabel="accuracy" if metric == "accuracy" else "ground-truth probability", ylim=(0, 1.02))
    axis.legend()
    axis.grid(alpha=0.3)
    if title:
        axis.set_title(title)
    return _save(fig, path)


def _cell(value, digits: int) -> str:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return f"{_cell(value[0], digits)} (±{_cell(value[1], digits)})"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def to_markdown_table(
    rows: Mapping[str, Mapping[str, object]], methods_as: str = "columns", digits: int = 3
) -> str:
    """A Table-5-style markdown table from ``{method: {metric: value}}``.

    A value may be a number, a string or a ``(mean, std)`` pair, shown as
    ``mean (±std)``. ``methods_as="columns"`` (Table 5: one row per metric) or
    ``"rows"``. Metrics missing for a method are left blank.
    """
    methods_as = check_choice("methods_as", methods_as, ("columns", "rows"))
    if not isinstance(rows, Mapping) or not rows:
        raise ValueError(f"rows must be a non-empty dict {{method: {{metric: value}}}}, got {rows!r}")
    methods = list(rows)
    metrics: list[str] = []
    for method in methods:
        if not isinstance(rows[method], Mapping):
            raise TypeError(f"rows[{method!r}] must be a dict {{metric: value}}, got {type(rows[method]).__name__}")
        metrics += [m for m in rows[method] if m not in metrics]

    def get(method, metric):
        return _cell(rows[method][metric], digits) if metric in rows[method] else ""

    if methods_as == "columns":
        header, body = ["metric", *methods], [[m, *(get(k, m) for k in methods)] for m in metrics]
    else:
        header, body = ["method", *metrics], [[k, *(get(k, m) for m in metrics)] for k in methods]
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"
