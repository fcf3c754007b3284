"""``TrainConfig``: every setting of one training run, typed, with its default.

Two protocols (DESIGN section 4):

* ``"ydrop"`` (Y-Drop paper): SGD momentum 0.9, lr 0.01, batch 64, optional step LR
  schedule, a validation split of the training set, early stopping on validation loss
  (patience 10) capped at ``max_epochs``; the best checkpoint is tested.
* ``"excitation"`` (Excitation Dropout paper): Adam, lr 1e-3 then 1e-4 after
  ``lr_drop_iteration``, weight decay 5e-3, batch 100, a fixed number of
  ``iterations`` (no early stopping; the best checkpoint by validation loss is tested).

``monitor="val_acc"`` picks the tested epoch, and stops early, on the highest validation
accuracy instead of the lowest validation loss, under either protocol.

Settings left at ``None`` are filled from the protocol by :meth:`TrainConfig.resolved`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

__all__ = ["TrainConfig", "PROTOCOLS", "DEVICES", "MONITORS", "PROTOCOL_DEFAULTS", "allowed_values"]

PROTOCOLS = ("ydrop", "excitation")
DEVICES = ("auto", "cpu", "cuda")
# What picks the tested epoch and drives early stopping: the lowest validation loss (the
# Y-Drop paper's) or the highest validation accuracy.
MONITORS = ("val_loss", "val_acc")

# Settings each protocol fills in when the config leaves them at None.
PROTOCOL_DEFAULTS: dict[str, dict[str, Any]] = {
    "ydrop": dict(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=0.0, batch_size=64,
                  patience=10, max_epochs=60, iterations=None, lr_drop_iteration=None),
    "excitation": dict(optimizer="adam", lr=1e-3, momentum=0.0, weight_decay=5e-3, batch_size=100,
                       patience=None, max_epochs=None, iterations=20000, lr_drop_iteration=15000),
}
# Datasets where pad-crop + flip augmentation is on unless the config says otherwise.
AUGMENTED_DATASETS = ("cifar10", "cifar100", "svhn", "stl10")
DRY_RUN_EPOCHS = 2
DRY_RUN_BATCHES = 3


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# TrainConfig fields that do not change what a run computes, so that runs differing only
# in them (and in the seed) are pooled into one row: where the files live (out,
# data_dir) and how a missing dataset is fetched (download, mirror); the fields train_run
# ignores too when it reuses a stored run (and ydrop table when it pools runs). Threads, progress bars and TensorBoard are
# options of the command, not config fields. Every other field can change the results
# (protocol, optimizer, lr, momentum, weight_decay, batch_size, lr_step_size, lr_gamma,
# patience, monitor, max_epochs, iterations, lr_drop_iteration, val_fraction, augment,
# information_beta, dry_run, and device: CUDA rounds differently), so runs that differ
# in one of them get rows of their own.
NEUTRAL_FIELDS = ("out", "data_dir", "download", "mirror")


@dataclass
class TrainConfig:
    """One training run. ``TrainConfig(method="ydrop", seed=1).resolved()`` is ready to train."""

    # --- what is trained -------------------------------------------------------------
    dataset: str = "digits"  # any ydrop.data dataset name; "digits" is embedded (no download)
    model: str = "fc1"  # any ydrop.models name (fc1..fc4, s1..s4, m1, m2, cnn2, vgg16, ...)
    method: str = "dropout"  # dropout method: none, dropout, curriculum, standout, information, ydrop, excitation, activation
    method_kwargs: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the method, e.g. {"elasticity": 0.01}
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # model options, e.g. {"hidden": (256, 256)}
    seed: int = 0  # seeds the weights, the split, the batch order and every random draw
    # --- where -----------------------------------------------------------------------
    data_dir: str = "data"  # dataset root (downloads go there when allowed)
    download: bool = True  # download a missing dataset (never needed for digits)
    mirror: str | None = None  # base URL serving the dataset's official files, tried instead of the official ones
    out: str = "runs"  # runs directory: each run writes out/<dataset>/<model>/<method>/seed<k>/
    device: str = "auto"  # "auto" (cuda when available), "cpu" or "cuda"
    # --- protocol --------------------------------------------------------------------
    protocol: str = "ydrop"  # "ydrop" (SGD + early stopping) or "excitation" (Adam, fixed iterations)
    optimizer: str | None = None  # "sgd" or "adam"; None: the protocol's
    lr: float | None = None  # learning rate; None: 0.01 (ydrop) or 1e-3 (excitation)
    momentum: float | None = None  # SGD momentum; None: 0.9 (ydrop)
    weight_decay: float | None = None  # L2 weight decay; None: 0 (ydrop) or 5e-3 (excitation)
    batch_size: int | None = None  # None: 64 (ydrop) or 100 (excitation)
    lr_step_size: int | None = None  # ydrop: multiply lr by lr_gamma every lr_step_size epochs; None: constant lr
    lr_gamma: float = 0.1  # factor of the step schedule and of the excitation lr drop
    patience: int | None = None  # early stopping: epochs without a better monitor value; None: 10 (ydrop), off (excitation)
    monitor: str = "val_loss"  # the tested epoch and early stopping: lowest "val_loss" or highest "val_acc"
    max_epochs: int | None = None  # cap on epochs; None: 60 (ydrop), unbounded (excitation: iterations decide)
    iterations: int | None = None  # excitation: training steps in total; None: 20000
    lr_drop_iteration: int | None = None  # excitation: lr *= lr_gamma from this step on; None: 15000
    val_fraction: float = 0.25  # share of the training set held out for validation
    augment: bool | None = None  # pad-crop + flip; None: on for cifar10/100, svhn, stl10, off otherwise
    information_beta: float = 1e-3  # weight of the KL term of "information" dropout (ignored by other methods)
    dry_run: bool = False  # tiny smoke run: 2 epochs of 3 batches

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> "TrainConfig":
        """Check every field; raises ValueError naming the field, the value and what is allowed."""
        for name, (is_ok, _) in _checks().items():
            value = getattr(self, name)
            if not is_ok(value):
                raise ValueError(f"{name} must be {allowed_values(name)}; got {value!r}")
        return self

    # ------------------------------------------------------------------ resolution
    def resolved(self) -> "TrainConfig":
        """A copy with "auto" turned into the actual device and every None filled from the protocol."""
        values = self.to_dict()
        if values["device"] == "auto":
            values["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        elif values["device"] == "cuda" and not torch.cuda.is_available():
            raise ValueError("device must be 'cpu' or 'auto' here: 'cuda' was asked for but no CUDA device is available")
        values["method"] = values["method"].strip().lower()
        for key, default in PROTOCOL_DEFAULTS[self.protocol].items():
            if values[key] is None:
                values[key] = default
        if values["augment"] is None:
            values["augment"] = self.dataset in AUGMENTED_DATASETS
        if self.dry_run:
            values["max_epochs"] = min(values["max_epochs"] or DRY_RUN_EPOCHS, DRY_RUN_EPOCHS)
            if values["iterations"] is not None:
                values["iterations"] = min(values["iterations"], DRY_RUN_EPOCHS * DRY_RUN_BATCHES)
        return TrainConfig.from_dict(values)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples in the kwargs become lists)."""
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise, naming the allowed ones."""
        if not isinstance(values, dict):
            raise TypeError(f"config must be a dict, got {type(values).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in values if k not in names]
        if unknown:
            raise ValueError(f"unknown config key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(names)}")
        values = dict(values)
        if isinstance(values.get("model_kwargs"), dict):
            # JSON turns tuples into lists; model options such as hidden are tuples.
            values["model_kwargs"] = {k: tuple(v) if isinstance(v, list) else v for k, v in values["model_kwargs"].items()}
        return cls(**values)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)



def allowed_values(name: str) -> str:
    """What the field ``name`` accepts, in the words of :meth:`TrainConfig.validate`'s errors."""
    allowed = _checks()[name][1]
    return allowed() if callable(allowed) else allowed


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _int_at_least(low: int) -> Callable[[Any], bool]:
    return lambda value: _is_int(value) and value >= low


def _real_where(test: Callable[[float], bool]) -> Callable[[Any], bool]:
    return lambda value: _is_real(value) and test(value)


def _one_of(names: Sequence[str]) -> tuple[Callable[[Any], bool], str]:
    return (lambda value: value in names), "one of " + ", ".join(map(repr, names))


def _str_keyed(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)


def _non_empty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _checks() -> dict[str, tuple[Callable[[Any], bool], Any]]:
    """Per field: (is the value allowed, what is allowed: text or a function making it)."""
    from ..data import DATASET_NAMES
    from ..layers.factory import DROPOUT_METHODS
    from ..models import list_models

    is_bool = (lambda value: isinstance(value, bool)), "True or False"
    optional_count = _optional(_int_at_least(1)), "an integer >= 1 or None"
    return {
        "dataset": _one_of(DATASET_NAMES),
        "model": (lambda v: isinstance(v, str) and bool(v.strip()),
                  lambda: "a model name (" + ", ".join(list_models()) + ")"),
        "method": (lambda v: isinstance(v, str) and v.strip().lower() in DROPOUT_METHODS,
                   "one of " + ", ".join(map(repr, DROPOUT_METHODS))),
        "method_kwargs": (_str_keyed, "a dict with string keys"),
        "model_kwargs": (_str_keyed, "a dict with string keys"),
        "seed": (_int_at_least(0), "an integer >= 0"),
        "data_dir": (_non_empty_str, "a non-empty path string"),
        "out": (_non_empty_str, "a non-empty path string"),
        "download": is_bool,
        "mirror": (_optional(_non_empty_str), "a base URL string such as 'http://host/path', or None"),
        "device": _one_of(DEVICES),
        "protocol": _one_of(PROTOCOLS),
        "optimizer": (_optional(lambda v: v in ("sgd", "adam")), "'sgd', 'adam' or None"),
        "lr": (_optional(_real_where(lambda v: v > 0)), "a number > 0 or None"),
        "momentum": (_optional(_real_where(lambda v: 0 <= v < 1)), "a number in [0, 1) or None"),
        "weight_decay": (_optional(_real_where(lambda v: v >= 0)), "a number >= 0 or None"),
        "batch_size": optional_count,
        "lr_step_size": optional_count,
        "patience": optional_count,
        "monitor": _one_of(MONITORS),
        "max_epochs": optional_count,
        "iterations": optional_count,
        "lr_drop_iteration": (_optional(_int_at_least(0)), "an integer >= 0 or None"),
        "lr_gamma": (_real_where(lambda v: 0 < v <= 1), "a number in (0, 1]"),
        "val_fraction": (_real_where(lambda v: 0 < v < 1), "a number in (0, 1)"),
        "augment": (lambda v: v is None or isinstance(v, bool), "True, False or None"),
        "information_beta": (_real_where(lambda v: v >= 0), "a number >= 0"),
        "dry_run": is_bool,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
