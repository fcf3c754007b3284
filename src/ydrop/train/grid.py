"""``run_grid``: dataset x model x method x seed cells, skipping finished ones."""

from __future__ import annotations

import itertools
from typing import Any, Callable, Mapping, Sequence

from tqdm.auto import tqdm

from .config import TrainConfig
from .run import RunResult, train_run

__all__ = ["run_grid", "grid_configs"]


def _as_list(name: str, value: Any, kind: type) -> list:
    if isinstance(value, kind):
        return [value]
    values = list(value)
    if not values or not all(isinstance(v, kind) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be a non-empty list of {kind.__name__}; got {value!r}")
    return values


def grid_configs(
    base_config: TrainConfig,
    methods: Sequence[str],
    seeds: int | Sequence[int],
    datasets: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    method_kwargs: Mapping[str, dict[str, Any]] | None = None,
) -> list[TrainConfig]:
    """The configs of the grid, in order dataset, model, method, seed.

    ``seeds``: an int n (seeds 0..n-1) or a list of seeds. ``method_kwargs``:
    per-method keyword arguments (``{"ydrop": {"elasticity": 0.01}}``), merged over
    ``base_config.method_kwargs`` for that method only.
    """
    if not isinstance(base_config, TrainConfig):
        raise TypeError(f"base_config must be a TrainConfig, got {type(base_config).__name__}")
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be an integer >= 1 or a list of seeds; got {seeds!r}")
        seeds = list(range(seeds))
    seeds = _as_list("seeds", seeds, int)
    methods = _as_list("methods", methods, str)
    datasets = _as_list("datasets", datasets or [base_config.dataset], str)
    models = _as_list("models", models or [base_config.model], str)
    method_kwargs = dict(method_kwargs or {})
    unknown = [m for m in method_kwargs if m not in methods]
    if unknown:
        raise ValueError(f"method_kwargs names method(s) {unknown} that are not in methods {methods}")
    configs = []
    for dataset, model, method, seed in itertools.product(datasets, models, methods, seeds):
        kwargs = {**base_config.method_kwargs, **method_kwargs.get(method, {})}
        configs.append(base_config.replace(dataset=dataset, model=model, method=method, seed=seed,
                                           method_kwargs=kwargs))
    return configs


def run_grid(
    base_config: TrainConfig,
    methods: Sequence[str],
    seeds: int | Sequence[int] = 3,
    datasets: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    method_kwargs: Mapping[str, dict[str, Any]] | None = None,
    progress: bool = True,
    train: Callable[..., RunResult] = train_run,
) -> list[RunResult]:
    """Run every cell (finished cells are loaded, interrupted ones resumed); one result per cell.

    An outer progress bar counts cells; each run shows its own epoch bar.
    """
    configs = grid_configs(base_config, methods, seeds, datasets, models, method_kwargs)
    results = []
    with tqdm(total=len(configs), disable=not progress, desc="grid", unit="run") as bar:
        for config in configs:
            bar.set_postfix_str(f"{config.dataset}/{config.model}/{config.method}/seed{config.seed}")
            results.append(train(config, progress=progress))
            bar.update(1)
    return results
