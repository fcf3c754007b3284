"""The Y-Drop tuning grid of the paper (section 4.2): elasticity alpha x warm-up K x seeds.

``sweep_configs`` lists the cells (alpha, then K, then seed, a deterministic order,
so ``run_configs(..., shard=(i, n))`` splits it like any grid); ``summarize_sweep``
groups finished runs by (dataset, model, alpha, K), picks per (dataset, model) the
setting with the best mean *validation* accuracy and reports the *test* accuracy of
that pick, so the test set never takes part in the choice. The validation accuracy
of a run is that of its best epoch (lowest validation loss, or highest validation
accuracy with ``monitor="val_acc"``), the checkpoint its test accuracy comes from.
"""

from __future__ import annotations

import inspect
import statistics
from typing import Any, Iterable, Sequence

from ..layers.ydrop import YDrop
from .config import TrainConfig
from .grid import seed_list
from .table import _as_dict, _fmt, _label, csv_table, markdown_table, model_label, pool_seeds, setting_labels

__all__ = ["ALPHAS", "WARMUPS", "SWEEP_KEYS", "sweep_configs", "summarize_sweep", "sweep_markdown", "sweep_csv"]

ALPHAS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)  # elasticity of the EMA (Eq. 6)
WARMUPS = (1, 3, 5, 7, 9)  # annealing factor K, epochs of plain dropout
SWEEP_KEYS = ("elasticity", "warmup_epochs")  # the YDrop arguments the sweep sets


def _values(name: str, values: Sequence[Any], ok, allowed: str) -> list:
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    if not values or not all(ok(v) for v in values):
        raise ValueError(f"{name} must be a non-empty list of {allowed}; got {values!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} lists a value twice: {values!r}")
    return values


def sweep_configs(
    base_config: TrainConfig,
    alphas: Sequence[float] = ALPHAS,
    warmups: Sequence[int] = WARMUPS,
    seeds: int | Sequence[int] = 3,
) -> list[TrainConfig]:
    """Y-Drop cells over ``alphas`` x ``warmups`` x ``seeds`` (an int n: seeds 0..n-1).

    Other Y-Drop arguments come from ``base_config.method_kwargs``; setting elasticity
    or warm-up there as well is refused.
    """
    if not isinstance(base_config, TrainConfig):
        raise TypeError(f"base_config must be a TrainConfig, got {type(base_config).__name__}")
    clash = [k for k in SWEEP_KEYS if k in base_config.method_kwargs]
    if clash:
        raise ValueError(f"base_config.method_kwargs sets {', '.join(clash)}, which the sweep varies; "
                         "remove it and pass alphas / warmups instead")
    alphas = _values("alphas", alphas, lambda a: isinstance(a, (int, float)) and not isinstance(a, bool)
                     and 0 <= a <= 1, "numbers in [0, 1]")
    warmups = _values("warmups", warmups, lambda k: isinstance(k, int) and not isinstance(k, bool) and k >= 0,
                      "integers >= 0")
    seeds = seed_list(seeds)
    return [base_config.replace(method="ydrop", seed=seed,
                                method_kwargs={**base_config.method_kwargs, "elasticity": float(alpha),
                                               "warmup_epochs": warmup})
            for alpha in alphas for warmup in warmups for seed in seeds]


def _default(name: str) -> Any:
    return inspect.signature(YDrop).parameters[name].default


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def summarize_sweep(results: Iterable[Any]) -> list[dict[str, Any]]:
    """One row per (dataset, model, alpha, K) of the Y-Drop runs among ``results``.

    Row keys: dataset, model, elasticity, warmup_epochs, n (seeds), val_mean, val_std,
    test_mean, test_std (accuracies in %, sample std, None for one seed) and ``picked``:
    True on the row with the best mean validation accuracy of its (dataset, model)
    (ties: the first in the order alpha, K). Other methods' runs are ignored.
    """
    runs = [data for data in map(_as_dict, results) if data["config"]["method"] == "ydrop" and data.get("history")]
    configs = [run["config"] for run in runs]
    # Runs of other training settings (lr, epochs, ...) are other cells, never pooled; a
    # copy of a run (same config and seed) counts once.
    settings = setting_labels([(c["dataset"], model_label(c)) for c in configs], configs)
    groups, _ = pool_seeds([_sweep_cell(c, label) for c, label in zip(configs, settings)],
                           [c["seed"] for c in configs], runs)
    rows = [_sweep_row(cell, runs) for cell, runs in sorted(groups.items(), key=lambda item: item[0])]
    _mark_picks(rows)
    return rows


def _sweep_cell(config: dict[str, Any], settings: str = "") -> tuple[str, str, Any, Any]:
    """(dataset, model, alpha, K) of a Y-Drop run's config. Y-Drop arguments other than
    the two swept and the training ``settings`` label (:func:`.table.setting_labels`)
    go into the model label, so runs that differ in them are never compared; an unset
    alpha or K is YDrop's default."""
    kwargs = config.get("method_kwargs") or {}
    other = {k: v for k, v in kwargs.items() if k not in SWEEP_KEYS}
    model = model_label(config) + (f", {_label('ydrop', other)}" if other else "") + settings
    return (config["dataset"], model, kwargs.get("elasticity", _default("elasticity")),
            kwargs.get("warmup_epochs", _default("warmup_epochs")))


def _sweep_row(cell: tuple[str, str, Any, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary row of one (dataset, model, alpha, K) cell over its runs (seeds),
    not yet picked."""
    dataset, model, alpha, warmup = cell
    # A run's validation accuracy is that of its best epoch, whose checkpoint gave test_acc.
    val_mean, val_std = _mean_std([r["history"][r["best_epoch"]]["val_acc"] for r in runs])
    test_mean, test_std = _mean_std([r["test_acc"] for r in runs])
    return dict(dataset=dataset, model=model, elasticity=alpha, warmup_epochs=warmup, n=len(runs),
                val_mean=val_mean, val_std=val_std, test_mean=test_mean, test_std=test_std, picked=False)


def _mark_picks(rows: list[dict[str, Any]]) -> None:
    """Set ``picked`` on the row with the best mean validation accuracy of each
    (dataset, model); on a tie the earlier row keeps the pick."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["dataset"], row["model"])
        if key not in best or row["val_mean"] > best[key]["val_mean"]:
            best[key] = row
    for row in best.values():
        row["picked"] = True


def _pm(mean: float, std: float | None) -> str:
    return _fmt(mean) + (f" ± {_fmt(std)}" if std is not None else "")


SWEEP_HEADERS = ("dataset", "model", "alpha", "K", "seeds", "val accuracy (%)", "test accuracy (%)", "pick")


def sweep_markdown(rows: list[dict[str, Any]]) -> str:
    """The sweep as Markdown, the pick of each (dataset, model) marked and, below, stated."""
    table = markdown_table(SWEEP_HEADERS, (
        [row["dataset"], row["model"], f"{row['elasticity']:g}", str(row["warmup_epochs"]), str(row["n"]),
         _pm(row["val_mean"], row["val_std"]), _pm(row["test_mean"], row["test_std"]), "**✓**" if row["picked"] else ""]
        for row in rows))
    picks = [f"- {row['dataset']} / {row['model']}: alpha = {row['elasticity']:g}, K = {row['warmup_epochs']} "
             f"(validation {_fmt(row['val_mean'])} %), test accuracy {_pm(row['test_mean'], row['test_std'])} % "
             f"over {row['n']} seed(s)" for row in rows if row["picked"]]
    return table + ("\nPicked by validation accuracy:\n\n" + "\n".join(picks) + "\n" if picks else "")


SWEEP_FIELDS = ("dataset", "model", "elasticity", "warmup_epochs", "n", "val_mean", "val_std", "test_mean",
                "test_std", "picked")


def sweep_csv(rows: list[dict[str, Any]]) -> str:
    """The sweep as CSV with raw numbers (``picked`` True/False)."""
    return csv_table(SWEEP_FIELDS, rows)
