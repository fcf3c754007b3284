"""Figures of the analysis, in the papers' style (Y-Drop Fig. 2-3, Excitation Dropout Fig. 7).

- :func:`plot_conductance_spread`: sorted mean conductance per unit (Fig. 2a) and
  its cumulative sum with the share of the top 20/40/60/80 % of units (Fig. 2b);
- :func:`plot_robustness`: one panel of robustness curves with a shaded std;
- :func:`plot_robustness_panels`: several such panels side by side (Fig. 3a/3b,
  Fig. 7 left/centre/right).

Each model (method) is one line; a list of results of several trained models (seeds)
of one method is drawn as their mean with the std between them shaded. Plots use
matplotlib's Agg backend and are written atomically
(:func:`ydrop.train.store.atomic_write`); each function returns the path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .._validation import check_choice  # noqa: E402
from ..train.store import atomic_write  # noqa: E402
from .metrics import SpreadResult  # noqa: E402
from .robustness import RobustnessCurve  # noqa: E402

__all__ = ["plot_conductance_spread", "plot_robustness", "plot_robustness_panels"]

METRIC_LABELS = {"accuracy": "accuracy", "gt_prob": "ground-truth probability"}


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    try:
        atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=120, bbox_inches="tight"))
    finally:
        plt.close(fig)
    return path


def _groups(name: str, value: Mapping, kind: type) -> dict[str, list]:
    """``{model: item or [items]}`` -> ``{model: [items]}``, checked."""
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"{name} must be a non-empty dict {{model name: {kind.__name__} or list}}, got {value!r}")
    groups = {}
    for key, item in value.items():
        group = [item] if isinstance(item, kind) else list(item) if isinstance(item, Sequence) else [item]
        if not group or not all(isinstance(g, kind) for g in group):
            raise TypeError(f"{name}[{key!r}] must be a {kind.__name__} or a non-empty list of them, got {item!r:.80}")
        groups[key] = group
    return groups


def _mean_std(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample std over models (std 0 for one model)."""
    stacked = np.stack(rows)
    std = stacked.std(0, ddof=1) if len(rows) > 1 else np.zeros(stacked.shape[1])
    return stacked.mean(0), std


def _line(axis, x, mean, std, label):
    line, = axis.plot(x, mean, label=label)
    axis.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.25, linewidth=0)
    return line


def _spread_label(name: str, group: list[SpreadResult], total: float) -> str:
    """Legend entry of one model on the cumulative panel: its total conductance and,
    when the results hold them, the shares (%) of its top units, averaged over ``group``."""
    fractions = list(group[0].top_shares)
    if not fractions:
        return f"{name} (total {total:.3g})"
    shares = "/".join(f"{100 * np.mean([s.top_shares[f] for s in group]):.1f}" for f in fractions)
    percents = "/".join(f"{100 * f:g}" for f in fractions)
    return f"{name} (total {total:.3g}; top {percents} %: {shares} %)"


def _draw_spread(left, right, name: str, group: list[SpreadResult]) -> None:
    """One model's lines: its sorted mean conductance per unit (N,) on ``left``, its
    cumulative conductance (N,) on ``right`` with the top-fraction units marked, each
    the mean over ``group`` with the std between its results shaded."""
    units = np.arange(1, group[0].sorted.numel() + 1)
    sorted_mean, sorted_std = _mean_std([s.sorted.numpy() for s in group])
    cum_mean, cum_std = _mean_std([s.sorted.cumsum(0).numpy() for s in group])
    _line(left, units, sorted_mean, sorted_std, name)
    # The top-fraction shares go into the legend and are marked on the curve:
    # written next to the points they overlap as soon as two models are close.
    tops = [max(1, math.ceil(fraction * units[-1] - 1e-9)) for fraction in group[0].top_shares]
    line = _line(right, units, cum_mean, cum_std, _spread_label(name, group, cum_mean[-1]))
    right.plot(tops, [cum_mean[k - 1] for k in tops], "o", color=line.get_color(), markersize=4)


def plot_conductance_spread(
    spreads: Mapping[str, SpreadResult | Sequence[SpreadResult]], path: str | os.PathLike, title: str = ""
) -> Path:
    """Sorted mean conductance per unit (left, Fig. 2a) and the cumulative
    conductance with the top-fraction shares in % (right, Fig. 2b), one line per model.

    Every result of one model must have the same number of units.
    """
    groups = _groups("spreads", spreads, SpreadResult)
    for name, group in groups.items():
        if len({s.sorted.numel() for s in group}) != 1:
            raise ValueError(f"spreads[{name!r}] mixes layers of different widths: {[s.sorted.numel() for s in group]}")
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    try:
        for name, group in groups.items():
            _draw_spread(left, right, name, group)
    except BaseException:  # as plot_robustness_panels: no figure left open in pyplot
        plt.close(fig)
        raise
    left.set(xlabel="unit (sorted by mean conductance)", ylabel="mean conductance", title="(a) mean conductance")
    right.set(xlabel="number of top units", ylabel="cumulative conductance", title="(b) cumulative conductance")
    left.legend(fontsize="small")
    # Below the panel: the labels carry the shares and are too wide to sit inside it.
    right.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.15))
    for axis in (left, right):
        axis.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _draw_robustness(axis, curves: Mapping, metric: str, title: str = "") -> None:
    xlabel = "removed fraction of units"
    for name, group in _groups("curves", curves, RobustnessCurve).items():
        if len({tuple(c.grid) for c in group}) != 1:
            raise ValueError(f"curves[{name!r}] holds curves on different grids")
        grid = np.asarray(group[0].grid)
        if group[0].kind.startswith("peb"):
            xlabel = "cumulative p_EB of the removed units (p_c)"
        if len(group) == 1:  # one model: the std over its random repeats
            mean = np.asarray(getattr(group[0], f"{metric}_mean"))
            std = np.asarray(getattr(group[0], f"{metric}_std"))
        else:  # several models: the std between them (Excitation Dropout Fig. 7)
            mean, std = _mean_std([np.asarray(getattr(c, f"{metric}_mean")) for c in group])
        _line(axis, grid, mean, std, name if len(group) == 1 else f"{name} (n={len(group)})")
    axis.set(xlabel=xlabel, ylabel=METRIC_LABELS[metric], ylim=(0, 1.02), title=title)
    axis.legend(fontsize="small")
    axis.grid(alpha=0.3)


def plot_robustness(
    curves: Mapping[str, RobustnessCurve | Sequence[RobustnessCurve]],
    path: str | os.PathLike,
    metric: str = "accuracy",
    title: str = "",
) -> Path:
    """Robustness curves with a shaded std, one line per model (Fig. 3, Fig. 7).

    ``curves[name]`` is one curve (shade = std over its random repeats) or a list of
    curves of several trained models on the same grid (line = mean of their means,
    shade = std between models, as Fig. 7). ``metric``: ``"accuracy"`` or ``"gt_prob"``.
    """
    return plot_robustness_panels({title: curves}, path, metric)


def plot_robustness_panels(
    panels: Mapping[str, Mapping[str, RobustnessCurve | Sequence[RobustnessCurve]]],
    path: str | os.PathLike,
    metric: str = "accuracy",
    title: str = "",
) -> Path:
    """One panel per ``{panel title: curves}`` entry, side by side (e.g. Fig. 3a and
    3b, or Fig. 7 left, centre and right); each panel as :func:`plot_robustness`."""
    metric = check_choice("metric", metric, tuple(METRIC_LABELS))
    if not isinstance(panels, Mapping) or not panels:
        raise ValueError(f"panels must be a non-empty dict {{panel title: curves}}, got {panels!r}")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    try:
        for axis, (panel, curves) in zip(axes[0], panels.items()):
            _draw_robustness(axis, curves, metric, panel)
    except BaseException:
        plt.close(fig)
        raise
    if title:
        fig.suptitle(title)
    return _save(fig, path)
