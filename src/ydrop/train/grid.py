"""``run_grid``: dataset x model x method x seed cells, skipping finished ones.

Grids split over processes and machines: ``shard=(i, n)`` runs only the cells whose
index in the deterministic cell order is i modulo n, so n jobs that share the runs
folder (a SLURM job array, GNU parallel) cover the grid once, and every cell has a
stable owner. Round-robin rather than blocks, so that every shard gets a mix of
methods and seeds and the shards take about as long. Whatever the sharding, a cell
is never trained by two processes at once: ``train_run`` holds a lock file in the
run folder, a process that meets a locked cell first runs its other cells, then
waits for it (and trains it itself if its owner died and the lock went stale).
"""

from __future__ import annotations

import itertools
import sys
import time
from typing import Any, Callable, Mapping, Sequence

from tqdm.auto import tqdm

from .. import distributed as dist_
from . import store
from .config import TrainConfig
from .lock import RunLocked
from .run import RunResult, train_run

__all__ = ["run_grid", "grid_configs", "run_configs", "shard_cells", "check_shard", "finished_results"]

# Seconds between two looks at cells that another process is training.
WAIT_POLL = 5.0


def _as_list(name: str, value: Any, kind: type) -> list:
    if isinstance(value, kind):
        return [value]
    values = list(value)
    if not values or not all(isinstance(v, kind) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be a non-empty list of {kind.__name__}; got {value!r}")
    return values


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    """``seeds`` as a list: an int n means seeds 0..n-1."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be an integer >= 1 or a list of seeds; got {seeds!r}")
        return list(range(seeds))
    return _as_list("seeds", seeds, int)


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
    seeds = seed_list(seeds)
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


def check_shard(shard: Any) -> tuple[int, int] | None:
    """``None`` (the whole grid) or ``(index, count)`` with 0 <= index < count."""
    if shard is None:
        return None
    if (not isinstance(shard, (tuple, list)) or len(shard) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
            or not 0 <= shard[0] < shard[1]):
        raise ValueError(f"shard must be None or (index, count) of integers with 0 <= index < count; got {shard!r}")
    return shard[0], shard[1]


def shard_cells(configs: Sequence[TrainConfig], shard: tuple[int, int] | None) -> list[TrainConfig]:
    """The cells of shard ``(i, n)``: those whose index in ``configs`` is i modulo n."""
    shard = check_shard(shard)
    return list(configs) if shard is None else list(configs)[shard[0]::shard[1]]


def run_configs(
    configs: Sequence[TrainConfig],
    progress: bool = True,
    train: Callable[..., RunResult] = train_run,
    shard: tuple[int, int] | None = None,
    poll: float = WAIT_POLL,
    wait: bool = True,
) -> list[RunResult]:
    """Run the cells of ``configs`` (of shard ``shard``), one result per cell, in order.

    Finished cells are loaded, interrupted ones resumed. Cells locked by another
    process are left for the end and waited for (``poll`` seconds between looks); the
    first wait for a cell says on stderr which cell it is and who holds it. With
    ``wait=False`` they are left to their holder instead and have no result in the
    list: copies of a grid script then go on to their next grid instead of idling
    until the other copies' last cells end.
    """
    cells = shard_cells(configs, shard)
    results: dict[int, RunResult] = {}
    progress = progress and dist_.is_main_process()
    announced: set[int] = set()  # locked cells the user was told about
    with tqdm(total=len(cells), disable=not progress, desc="grid", unit="run") as bar:
        pending = list(range(len(cells)))
        while pending:
            locked: dict[int, RunLocked] = {}
            for index in pending:
                config = cells[index]
                bar.set_postfix_str(_cell_name(config))
                try:
                    results[index] = train(config, progress=progress)
                except RunLocked as exc:
                    locked[index] = exc
                    continue
                bar.update(1)
            if locked and not wait:
                break
            if locked and len(locked) == len(pending):
                _wait_for_others(cells, locked, announced, poll)
            pending = list(locked)
    return [results[index] for index in range(len(cells)) if index in results]


def _wait_for_others(cells: list[TrainConfig], locked: dict[int, RunLocked], announced: set[int], poll: float) -> None:
    """Nothing left to do but wait for the other processes: say for which cells, once each."""
    for index in sorted(set(locked) - announced):
        announced.add(index)
        if dist_.is_main_process():
            tqdm.write(_waiting_message(cells[index], locked[index]), file=sys.stderr)
    time.sleep(poll)


def _cell_name(config: TrainConfig) -> str:
    return f"{config.dataset}/{config.model}/{config.method}/seed{config.seed}"


def _waiting_message(config: TrainConfig, locked: RunLocked) -> str:
    """Which cell the grid waits for, and who holds it (so a wait is not taken for a hang)."""
    holder = locked.holder
    who = f"host {holder.get('host')}, pid {holder.get('pid')}" if isinstance(holder, dict) else "holder unknown"
    where = f" ({locked.folder})" if locked.folder is not None else ""
    return (f"waiting for {_cell_name(config)}{where}, "
            f"which another process trains ({who})")


def run_grid(
    base_config: TrainConfig,
    methods: Sequence[str],
    seeds: int | Sequence[int] = 3,
    datasets: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    method_kwargs: Mapping[str, dict[str, Any]] | None = None,
    progress: bool = True,
    train: Callable[..., RunResult] = train_run,
    shard: tuple[int, int] | None = None,
) -> list[RunResult]:
    """Run every cell (or those of ``shard``); finished cells are loaded, interrupted ones
    resumed, cells being trained by another process waited for. One result per cell run.

    An outer progress bar counts cells; each run shows its own epoch bar.
    """
    configs = grid_configs(base_config, methods, seeds, datasets, models, method_kwargs)
    return run_configs(configs, progress=progress, train=train, shard=shard)


def finished_results(configs: Sequence[TrainConfig]) -> list[RunResult]:
    """The stored results of the cells of ``configs`` that are finished (by any process), in order."""
    results = []
    for config in configs:
        path = store.run_dir(config.resolved()) / store.RESULT_FILE
        if path.exists():
            result = RunResult.from_dict(store.read_json(path))
            result.run_dir = str(path.parent)
            results.append(result)
    return results
