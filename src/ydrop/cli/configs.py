"""Parsed options -> a checked TrainConfig and per-method kwargs, for ``compare``,
``sweep`` and ``train``.

Everything that can be checked before training is: the integer options, ``--set``
items that an option of its own or the protocol would override, the config's values,
and every model built on the meta device. Errors name the option or the ``--set``
item as the user typed it.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any, Sequence

from .options import DIGITS_FC_HIDDEN, UsageError, parse_sets, split_set


# TrainConfig fields set by an option of their own: errors about them name the option,
# and a plain --set of one is refused (either would silently win over the other).
# "A/B": train's option / compare's and sweep's.
_OPTION_OF = {"dataset": "--dataset", "model": "--model", "max_epochs": "--epochs", "protocol": "--protocol",
              "device": "--device", "data_dir": "--data-dir", "out": "--out", "mirror": "--mirror",
              "download": "--no-download", "dry_run": "--dry-run", "method": "--method/--methods",
              "seed": "--seed/--seeds"}


def check_counts(args: argparse.Namespace) -> None:
    """The integer options, named as typed."""
    for option, value, low in (("--seeds", getattr(args, "seeds", 1), 1), ("--epochs", args.epochs, 1),
                               ("--threads", getattr(args, "threads", None), 1)):
        if value is not None and value < low:
            raise UsageError(f"{option} must be an integer >= {low}; got {value}")


def _check_own_options(args: argparse.Namespace) -> None:
    """Refuse a plain ``--set key=value`` of a config field that has an option of its own
    (``--set seed=3`` next to ``--seed``), naming both: one of the two would be ignored."""
    for item in args.sets:
        scope, key, _ = split_set(item)
        if scope is not None or key not in _OPTION_OF:
            continue
        if args.command == "sweep" and key == "method":
            raise UsageError(f"--set {item}: ydrop sweep trains Y-Drop (ydrop) only; use ydrop compare "
                             "--methods to train other methods")
        single, _, several = _OPTION_OF[key].partition("/")
        option = single if args.command == "train" or not several else several
        raise UsageError(f"--set {item}: {key} is set by the option {option}; use {option} instead of --set")


def _check_protocol_nones(config, changes: dict[str, Any], sets: Sequence[str]) -> None:
    """Refuse ``--set key=none`` where None stands for the protocol's value, not "off"
    (``--set patience=none`` would train with patience 10 under the ydrop protocol)."""
    from ..train.config import PROTOCOL_DEFAULTS, allowed_values

    for key, value in changes.items():
        default = PROTOCOL_DEFAULTS[config.protocol].get(key)
        if value is not None or default is None:
            continue
        item = next(i for i in reversed(sets) if split_set(i)[:2] == (None, key))
        never = (", so early stopping stays on: it cannot be turned off in this protocol, but a patience of at "
                 "least --epochs never triggers it") if key == "patience" else ""
        raise UsageError(f"--set {item}: none leaves {key} to the protocol, {default} with --protocol "
                         f"{config.protocol}{never}; allowed: {allowed_values(key).replace(' or None', '')}, or "
                         "no --set for the protocol's")


def _as_typed(message: str, changes: dict[str, Any], sets: Sequence[str]) -> str:
    """A TrainConfig error (``"<field> must be ..."``) in the terms the user typed:
    ``--set lr=-1: lr must be ...`` or ``--epochs must be ...``."""
    field, sep, rest = message.partition(" must be ")
    if not sep:
        return message
    if field in changes:
        return _set_item_named(message, sets)
    if field in _OPTION_OF:
        return f"{_OPTION_OF[field]} must be {rest.replace(' or None', '')}"
    return message


def _make_config(args: argparse.Namespace, changes: dict[str, Any], model_kwargs: dict[str, Any]):
    from ..train import TrainConfig

    values = dict(dataset=args.dataset, model=args.model, protocol=args.protocol, device=args.device,
                  data_dir=args.data_dir, out=args.out, dry_run=args.dry_run, model_kwargs=model_kwargs,
                  download=not args.no_download, mirror=args.mirror)
    if args.epochs is not None:
        values["max_epochs"] = args.epochs
    for name in ("method_kwargs", "model_kwargs"):
        if name in changes:
            raise UsageError(f"--set {name}=...: set its entries one by one instead (method.key=value, model.key=value)")
    values.update(changes)
    try:
        config = TrainConfig(**values)
        config.resolved()
    except (ValueError, TypeError) as exc:
        plain = [item for item in args.sets if "." not in item.partition("=")[0]]  # the config fields' items
        raise UsageError(_as_typed(str(exc), changes, plain)) from exc
    return config


def _check_models(config, methods: Sequence[str], method_kwargs: dict[str, dict[str, Any]],
                  sets: Sequence[str] = ()) -> None:
    """Build every model on the meta device now, so bad model or method kwargs fail before training."""
    import torch

    from ..data import dataset_info
    from ..models import create

    info = dataset_info(config.dataset) if config.dataset != "image-folder" else None
    for method in methods:
        try:
            with torch.device("meta"):
                create(config.model, num_classes=info.num_classes if info else 10,
                       in_shape=info.in_shape if info else None, dropout=method,
                       dropout_kwargs={**config.method_kwargs, **method_kwargs.get(method, {})}, **config.model_kwargs)
        except (ValueError, TypeError) as exc:
            raise UsageError(_build_error(exc, _build_items(sets, method))) from exc


def _build_items(sets: Sequence[str], method: str) -> list[str]:
    """The ``--set`` items a model build with ``method`` reads: model options and
    ``method``'s kwargs, not config fields nor other methods' kwargs."""
    from ..train import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    items = []
    for item in sets:
        scope, key, _ = split_set(item)
        if scope in ("model", method) or (scope is None and key not in fields):
            items.append(item)
    return items


def _build_error(exc: Exception, items: Sequence[str]) -> str:
    """The message of a failed model build, prefixed with the ``--set`` item at fault."""
    message = str(exc).replace("model name must be", "--model must be")
    if isinstance(exc, TypeError):  # an unknown keyword argument
        message = _with_config_fields(message, items)
    return _set_item_named(message, items)


def _with_config_fields(message: str, items: Sequence[str]) -> str:
    """The model's "unknown keyword argument" ``message`` about a plain ``--set key=value``
    (which sets a config field, else a model option): the config fields listed too."""
    from ..train import TrainConfig

    named = [key for scope, key, _ in map(split_set, items) if scope is None and f"'{key}'" in message]
    if not named:
        return message
    fields = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("method_kwargs", "model_kwargs")]
    listed = ", ".join(f"{name} ({_OPTION_OF[name]})" if name in _OPTION_OF else name for name in fields)
    return f"{message}; nor is {named[0]!r} a config field, which a plain --set key=value sets: {listed}"


def _set_item_named(message: str, sets: Sequence[str]) -> str:
    """``message`` prefixed with the ``--set`` item it is about (the first whose key it
    names as a word: ``score must be``, ``'width'``, ``score='x'``), if any."""
    for item in sets:
        key = item.partition("=")[0].strip().rpartition(".")[2]
        if key and re.search(rf"(?<![\w.]){re.escape(key)}(?!\w)", message):
            return f"--set {item}: {message}"
    return message


def base_config(args: argparse.Namespace, methods: Sequence[str]):
    """The checked base config and per-method kwargs. The command checks its own
    options next, then calls :func:`.training._warn_if_busy`."""
    from ..train import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    changes, model_kwargs, method_kwargs = parse_sets(args.sets, fields, methods)
    _check_own_options(args)
    if args.dataset == "digits" and args.model == "fc1" and "hidden" not in model_kwargs:
        model_kwargs["hidden"] = DIGITS_FC_HIDDEN
    config = _make_config(args, changes, model_kwargs)
    _check_protocol_nones(config, changes, args.sets)
    _check_models(config, methods, method_kwargs, args.sets)
    return config, method_kwargs
