"""Finished training runs, rebuilt and analysed one by one.

:func:`find_runs` finds finished run folders (written by :func:`ydrop.train.train_run`,
layout in :mod:`ydrop.train.store`); :func:`load_run` rebuilds one: the model from its
stored config with the best weights of ``checkpoint.pt`` (the ones its test accuracy
was measured with), its initial weights and its validation and test batches (the
validation split is the one the run trained with: same ``val_fraction`` and seed,
:func:`ydrop.data.train_val_split`; a dry run keeps its first 3 batches of each split,
as it was evaluated). :func:`analyse_run` analyses one layer of it, by default the
first dropout slot of the model whatever the run's ``dropout_at`` (the first hidden FC
layer: Excitation Dropout sec. 4.3 computes its metrics there, Y-Drop's Figs. 2-3 use a
net with one hidden layer), so that every method of a comparison is analysed at the
same layer:

- conductance spread on the *validation* split (Y-Drop sec. 6.2, Fig. 2); its mean
  conductance also ranks the units for the "most/least important first" curves
  (Y-Drop sec. 6.3: "conductance scores are calculated on the validation set");
- utilisation on the *test* split (Excitation Dropout sec. 4.3, Table 5);
- conservative units between ``initial.pt`` and the best weights (Table 5);
- robustness curves on the *test* split (Y-Drop Fig. 3, Excitation Dropout Fig. 7):
  random removal (R repeats, seeded with the run's seed), most / least important
  first by conductance, most / least relevant first by the per-sample p_EB threshold.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .._validation import check_choice, check_non_negative, check_positive_int
from ..data import BatchLoader, DatasetInfo, dataset_info, load_dataset
from ..train import store
from ..train.run import build_model, load_splits
from ..train.config import DEVICES, DRY_RUN_BATCHES, TrainConfig
from ..train.table import method_label, model_label
from .metrics import SpreadResult, UtilisationResult, conductance_spread, conservative_units, feeding_layer, utilisation
from .robustness import RobustnessCurve, peb_threshold_removal, random_removal, ranked_removal

__all__ = [
    "DEFAULT_REPEATS",
    "DEFAULT_CONSERVATIVE_DELTA",
    "LoadedRun",
    "RunAnalysis",
    "find_runs",
    "load_run",
    "check_layer",
    "run_layers",
    "default_layer",
    "analyse_run",
]

DEFAULT_REPEATS = 25  # random removal repeats (Y-Drop sec. 6.3: "averaged over 25 runs")
# Δ of the conservative units: the absolute L2 change of a unit's incoming weights. The
# paper sets it per dataset (0.15 to 1.25); PyTorch's default init gives weight rows of
# norm about 0.58 whatever the fan-in, so 0.1 means "moved less than ~17 %".
DEFAULT_CONSERVATIVE_DELTA = 0.1
# Evaluation batch of the analyses: the one train_run evaluates with.
EVAL_BATCH = 256


# ----------------------------------------------------------------------------- runs


def find_runs(paths: Sequence[str | os.PathLike] | str | os.PathLike, name: str = "paths") -> list[Path]:
    """Finished run folders (holding ydrop's ``result.json``) given as run folders or roots.

    Each path is a run folder or a folder searched recursively for finished runs;
    folders whose ``result.json`` another tool wrote are skipped, and so are unreadable
    ones, each with a :class:`~ydrop.train.store.UnreadableResultWarning` naming it;
    every path must hold at least one run. Order: as given, each root's runs sorted; a run reached
    twice is listed once. ``name`` is the argument named in errors.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise ValueError(f"{name} must name at least one run folder or runs root, got none")
    found: list[Path] = []
    for path in map(Path, paths):
        runs = _runs_in(path, name)
        found += [run for run in runs if run not in found]
    return found


def _runs_in(path: Path, name: str) -> list[Path]:
    """The ydrop runs at or below ``path``; ValueError naming ``path`` when there is none."""
    allowed = (f"allowed: a run folder holding {store.RESULT_FILE}, or a folder with finished runs below it "
               f"({store.RUN_FOLDER_HOLDS})")
    if not path.is_dir():
        raise ValueError(f"{name} {os.fspath(path)!r} is not a folder; {allowed}")
    found, other_files = store.find_run_results(path)  # warns about each unreadable result.json
    runs = [file.parent for file in found]
    if (path / store.RESULT_FILE).is_file() and path in runs:
        return [path]
    if not runs:
        others = [os.fspath(p.parent) for p in other_files]
        skipped = (f"; skipped {len(others)} folder(s) whose {store.RESULT_FILE} ydrop did not write: "
                   + ", ".join(map(repr, others[:3])) + (", ..." if len(others) > 3 else "")) if others else ""
        raise ValueError(f"{name} {os.fspath(path)!r} holds no finished run (no {store.RESULT_FILE} written by ydrop "
                         f"in it or below it{skipped}); {allowed}")
    return runs


def _stored_config(folder: Path) -> TrainConfig:
    """The run's resolved config; settings added to TrainConfig since keep their defaults."""
    stored = store.read_json(folder / store.RESULT_FILE).get("config") or store.read_json(folder / store.CONFIG_FILE)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig.from_dict({k: v for k, v in stored.items() if k in known})


def default_layer(config: TrainConfig, info: DatasetInfo) -> str:
    """The first dropout slot of the run's model: the output of the first hidden layer
    (after its ReLU) where dropout may act, e.g. ``"classifier.2"`` for FC-1, whatever
    the method and the run's ``dropout_at`` (an ``nn.Identity`` without dropout). Found
    on a twin with standard dropout in every slot the model has (``dropout_at``
    dropped from its kwargs), built on the meta device."""
    every_slot = {key: value for key, value in config.model_kwargs.items() if key != "dropout_at"}
    with torch.device("meta"):
        twin = build_model(config.replace(model_kwargs=every_slot), info, "dropout", {})
    paths = getattr(twin, "dropout_paths", [])
    if not paths:
        raise ValueError(f"model {model_label(config.to_dict())!r} has no dropout slot to analyse by default; "
                         "choose one with layer= (a submodule name)")
    return paths[0]


def check_layer(config: TrainConfig, info: DatasetInfo, layer: str | None, name: str = "layer") -> str:
    """``layer`` (default :func:`default_layer`) after checking that the run's model has
    it; the model is built on the meta device, so nothing is loaded or computed."""
    if layer is None:
        return default_layer(config, info)
    with torch.device("meta"):
        names = [n for n, _ in build_model(config, info).named_modules() if n]
    if layer not in names:
        raise ValueError(f"{name} {layer!r} is not a layer of model {model_label(config.to_dict())!r}; "
                         f"allowed: {', '.join(names)}")
    return layer


@dataclass
class LoadedRun:
    """A finished run ready to analyse: its model (best weights, eval mode, on the device)
    and data batches on the device (validation and test splits)."""

    folder: Path
    config: TrainConfig
    result: dict[str, Any]
    info: DatasetInfo
    model: nn.Module
    initial: dict[str, torch.Tensor]
    final: dict[str, torch.Tensor]
    val: list[tuple[torch.Tensor, torch.Tensor]]
    test: list[tuple[torch.Tensor, torch.Tensor]]


def _batches(dataset, config: TrainConfig, device: torch.device) -> list:
    loader = BatchLoader(dataset, max(config.batch_size or 1, EVAL_BATCH), device=device)
    return list(itertools.islice(loader, DRY_RUN_BATCHES if config.dry_run else None))


def load_run(folder: str | os.PathLike, device: str = "auto", data_dir: str | os.PathLike | None = None,
             progress: bool = False, cache: dict | None = None) -> LoadedRun:
    """Rebuild a finished run: model with its best weights, validation and test batches.

    ``device``: "auto" (cuda when available), "cpu" or "cuda". ``data_dir``: the
    dataset root, default the one stored with the run. ``cache``: a dict shared by
    several calls, so each dataset split is read once.
    """
    folder = Path(folder)
    device = check_choice("device", device, DEVICES)
    config = _stored_config(folder)
    config = config.replace(device=device, **({"data_dir": os.fspath(data_dir)} if data_dir else {})).resolved()
    cache = {} if cache is None else cache

    def cached_load(name: str, root: str, split: str, **kwargs: Any):
        if (name, root, split) not in cache:
            cache[name, root, split] = load_dataset(name, root=root, split=split, **kwargs)
        return cache[name, root, split]

    _, val_set, test_set, info = load_splits(config, progress, load=cached_load)
    model = build_model(config, info)
    checkpoint = torch.load(folder / store.CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    # The weights the run was tested with: the best epoch's (or the last, if none was best).
    final = (checkpoint.get("best") or {}).get("state") or checkpoint["model"]
    model.load_state_dict(final)
    model.to(config.device).eval()
    initial = torch.load(folder / store.INITIAL_FILE, map_location="cpu", weights_only=True)
    device_ = torch.device(config.device)
    return LoadedRun(folder, config, store.read_json(folder / store.RESULT_FILE), info, model, initial, final,
                     _batches(val_set, config, device_), _batches(test_set, config, device_))


# ------------------------------------------------------------------------ analysis


@dataclass
class RunAnalysis:
    """Every analysis of one run's layer."""

    run_dir: str
    dataset: str
    model: str  # model label, with its kwargs
    method: str  # method label, with its kwargs
    seed: int
    layer: str
    feeding_layer: str  # the module holding the units' incoming weights
    units: int
    spread: SpreadResult
    utilisation: UtilisationResult
    conservative: int
    conservative_delta: float
    curves: dict[str, RobustnessCurve] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # the run's stored (training) config

    def metrics(self) -> dict[str, float]:
        """The table's numbers for this run (accuracies and shares as fractions of 1)."""
        def area(kind: str, metric: str) -> float:
            """Area under the mean curve over the width of its grid: its mean height."""
            curve = self.curves[kind]
            values = torch.tensor(getattr(curve, f"{metric}_mean"), dtype=torch.float64)
            grid = torch.tensor(curve.grid, dtype=torch.float64)
            width = float(grid[-1] - grid[0])
            return float(torch.trapezoid(values, grid)) / width if width > 0 else float(values[0])

        u = self.utilisation
        row = dict(test_acc=self.curves["random"].unpruned_accuracy, units=self.units, neurons_on=u.neurons_on,
                   peak_peb=u.peak_peb, entropy_activations=u.entropy_activations, entropy_peb=u.entropy_peb,
                   conservative=self.conservative, total_conductance=self.spread.total)
        row.update({f"top{round(100 * f)}": share for f, share in self.spread.top_shares.items()})
        row.update(auc_random=area("random", "accuracy"), auc_most=area("most", "accuracy"),
                   auc_least=area("least", "accuracy"), auc_peb_most=area("peb_most", "gt_prob"),
                   auc_peb_least=area("peb_least", "gt_prob"))
        return row

    def to_dict(self) -> dict[str, Any]:
        s = self.spread
        return dict(
            run_dir=self.run_dir, dataset=self.dataset, model=self.model, method=self.method, seed=self.seed,
            layer=self.layer, feeding_layer=self.feeding_layer, units=self.units, metrics=self.metrics(),
            conservative_delta=self.conservative_delta, utilisation=self.utilisation.as_dict(),
            spread=dict(mean=s.mean.tolist(), sorted=s.sorted.tolist(), order=s.order.tolist(), total=s.total,
                        top_shares={str(k): v for k, v in s.top_shares.items()}, samples=s.samples),
            curves={kind: curve.as_dict() for kind, curve in self.curves.items()}, config=self.config,
        )


def analyse_run(
    run: LoadedRun,
    layer: str | None = None,
    repeats: int = DEFAULT_REPEATS,
    conservative_delta: float = DEFAULT_CONSERVATIVE_DELTA,
    progress: bool = False,
) -> RunAnalysis:
    """All metrics and curves of ``layer`` (default: :func:`default_layer`) of one run."""
    repeats = check_positive_int("repeats", repeats)
    conservative_delta = check_non_negative("conservative_delta", conservative_delta)
    c, model = run.config, run.model
    layer = check_layer(c, run.info, layer)
    feeding = feeding_layer(model, layer, run.test[0][0])

    def bar(batches: list, desc: str):
        return tqdm(batches, desc=desc, unit="batch", leave=False, disable=not progress)

    spread = conductance_spread(model, bar(run.val, "conductance (validation)"), layer)
    used = utilisation(model, bar(run.test, "utilisation (test)"), layer)
    conservative = conservative_units(run.initial, run.final, feeding, conservative_delta)
    generator = torch.Generator().manual_seed(c.seed)  # the same random removals on every call
    curves = {
        "random": random_removal(model, run.test, layer, repeats=repeats, generator=generator, progress=progress),
        "most": ranked_removal(model, run.test, layer, scores=spread.mean, order="most", progress=progress),
        "least": ranked_removal(model, run.test, layer, scores=spread.mean, order="least", progress=progress),
        "peb_most": peb_threshold_removal(model, run.test, layer, order="most", progress=progress),
        "peb_least": peb_threshold_removal(model, run.test, layer, order="least", progress=progress),
    }
    config = c.to_dict()
    # The config it trained with, not c: loading it set the device (and data_dir) of the analysis.
    trained = run.result.get("config") or config
    return RunAnalysis(str(run.folder), c.dataset, model_label(config), method_label(config), c.seed, layer,
                       feeding, spread.mean.numel(), spread, used, conservative.count, conservative_delta, curves,
                       trained)


def run_layers(folders: Sequence[str | os.PathLike], layer: str | None = None, name: str = "layer") -> list[str]:
    """The layer to analyse in each run (``layer``, or each run's :func:`default_layer`),
    checked against every run's model before anything is loaded (on the meta device;
    image-folder runs, whose classes come from their files, are checked when loaded)."""
    layers = []
    for folder in folders:
        config = _stored_config(Path(folder))
        if config.dataset == "image-folder":
            layers.append(layer)
            continue
        layers.append(check_layer(config, dataset_info(config.dataset), layer, name))
    return layers
