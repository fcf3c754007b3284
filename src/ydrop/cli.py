"""The ``ydrop`` command: ``compare`` (the main job), ``train`` (one run), ``table``.

``ydrop compare`` with no arguments trains FC-1 (narrowed for the 8x8 digits) with no
dropout, dropout, Y-Drop, Excitation Dropout and Activation Dropout on the embedded
digits dataset over 3 seeds (Y-Drop protocol: SGD, early stopping on validation loss),
prints a Table-2-style Markdown table and writes table.md, table.csv, table.tex and
val_curves.png into the out folder. Finished runs are reused; interrupted ones resume.

``ydrop sweep`` runs the paper's Y-Drop tuning grid (elasticity x warm-up x seeds) and
reports the test accuracy of the setting with the best validation accuracy.
``compare --shard i/n`` and ``sweep --shard i/n`` run the i-th of n disjoint parts of
their grid (for job arrays sharing one out folder); ``ydrop table`` merges them.
``train``, ``compare`` and ``sweep`` train the same default model (FC-1 narrowed for
the digits), so their runs share folders; they run under ``torchrun --nproc_per_node N -m
ydrop.cli ...`` with DistributedDataParallel; rank 0 prints and writes. They take
``--threads N`` (torch's threads: on a busy machine fewer are faster, and the command
says so when the load average leaves fewer free cores than threads) and
``--tensorboard`` (event files in each run folder).

``ydrop analyze RUN_DIR ...`` (or ``compare --analyze``) analyses finished runs: the
Table-5-style table and the plots of Y-Drop Fig. 2-3 and Excitation Dropout Fig. 7
(see ``ydrop.analysis.report``).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import functools
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

DEFAULT_METHODS = "none,dropout,ydrop,excitation,activation"
# compare, sweep and train on the embedded digits with the default model: FC-1 narrowed
# from 2x1024 to 2x256 (8x8 inputs), so the whole comparison takes a few minutes on 2
# cores. The same for the three commands, so that `ydrop train --seed 3` adds a seed to
# the demo's grid (same run folder) rather than training another model.
DIGITS_FC_HIDDEN = (256, 256)


# What a --set item looks like, for the errors about one.
SET_FORM = "key=value (e.g. ydrop.elasticity=0.01, hidden=128,128, lr=0.05)"


class UsageError(Exception):
    """A bad command-line value: reported as ``ydrop: error: ...`` with exit code 2."""


def _parse_value(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _split_set(item: str) -> tuple[str | None, str, Any]:
    """One ``--set`` item -> (scope before the '.', None for a plain key; key; value)."""
    if "=" not in item:
        raise UsageError(f"--set expects {SET_FORM}; got {item!r}")
    key, _, raw = item.partition("=")
    key, value = key.strip(), _parse_value(raw)
    scope, dot, name = key.partition(".") if "." in key else ("", "", key)
    if not name:
        where = f"after '{scope}.'" if dot else "before '='"
        raise UsageError(f"--set {item}: the key {where} is empty; expected {SET_FORM}")
    return (scope if dot else None), name, tuple(value) if isinstance(value, list) else value


def _parse_sets(items: Sequence[str], config_fields: set[str], methods: Sequence[str]):
    """``--set`` items -> (config changes, model kwargs, {method: kwargs})."""
    from .layers.factory import DROPOUT_METHODS

    changes: dict[str, Any] = {}
    model_kwargs: dict[str, Any] = {}
    method_kwargs: dict[str, dict[str, Any]] = {}
    for item in items:
        scope, key, value = _split_set(item)
        if scope is None:
            # A config field, else a model option (e.g. hidden=128,128), checked against the model below.
            (changes if key in config_fields else model_kwargs)[key] = value
        elif scope == "model":
            model_kwargs[key] = value
        elif scope not in DROPOUT_METHODS:
            raise UsageError(f"--set {item}: the part before '.' must be 'model' or a method "
                             f"({', '.join(DROPOUT_METHODS)}); got {scope!r}")
        elif scope not in methods:
            raise UsageError(f"--set {item}: method {scope!r} is not run here (methods: {', '.join(methods)})")
        else:
            method_kwargs.setdefault(scope, {})[key] = value
    return changes, model_kwargs, method_kwargs


def _shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n), 0 <= i < n."""
    index, slash, count = text.partition("/")
    try:
        shard = (int(index), int(count))
    except ValueError:
        shard = None
    if not slash or shard is None or not 0 <= shard[0] < shard[1]:
        raise argparse.ArgumentTypeError(
            f"expects I/N with 0 <= I < N, e.g. 0/4 for the first of 4 parts (with SLURM: "
            f"$SLURM_ARRAY_TASK_ID/$N and --array=0-$((N-1))); got {text!r}")
    return shard


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects comma-separated numbers such as 1e-3,1e-2; got {text!r}") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects comma-separated integers such as 1,3,5; got {text!r}") from None


def _grid_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=3, help="seeds per cell, 0..N-1 (default: %(default)s)")
    parser.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                        help="run only the I-th (0-based) of N disjoint parts of the grid; parts share the out "
                             "folder and `ydrop table` merges them (default: the whole grid)")


def _common_options(parser: argparse.ArgumentParser) -> None:
    from .data import DATASET_NAMES
    from .models import list_models

    parser.add_argument("--dataset", default="digits", choices=DATASET_NAMES, metavar="NAME",
                        help=f"dataset, one of: {', '.join(DATASET_NAMES)} (default: %(default)s, embedded, "
                             "no download)")
    parser.add_argument("--model", default="fc1", metavar="NAME",
                        help=f"model, one of: {', '.join(list_models())}; case, '_' and '-' are ignored, "
                             "wrn-D-K builds any depth and width (default: %(default)s; on digits narrowed to "
                             f"{'x'.join(map(str, DIGITS_FC_HIDDEN))} hidden units unless --set hidden=...)")
    parser.add_argument("--epochs", type=int, default=None, metavar="N",
                        help="max epochs per run, early stopping may end sooner (default: the protocol's, 60)")
    parser.add_argument("--protocol", default="ydrop", choices=("ydrop", "excitation"),
                        help="training protocol (default: %(default)s)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="device (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch's intra-op threads per process; on a machine other processes keep busy, "
                             "fewer threads train faster (default: torch's, one per core)")
    parser.add_argument("--data-dir", default="data", metavar="DIR", help="dataset root (default: %(default)s)")
    parser.add_argument("--mirror", default=None, metavar="URL",
                        help="base URL serving the dataset's official files, tried instead of the official "
                             "sites (default: the official sites)")
    parser.add_argument("--no-download", action="store_true",
                        help="never download: a dataset missing under --data-dir is an error (default: download "
                             "what is missing, checksums verified)")
    parser.add_argument("--out", default="runs", metavar="DIR", help="runs directory (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="tiny smoke run: 2 epochs of 3 batches (default: off)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars (default: shown)")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write TensorBoard event files into each run folder's tensorboard/ (losses, "
                             "accuracies, lr, drop rates of the guided layers); needs "
                             "pip install 'ydrop[tensorboard]' (default: off)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="method kwargs (ydrop.elasticity=0.01), model kwargs (hidden=128,128 or "
                             "model.width_multiplier=0.5) or config fields (lr=0.05, patience=5) other than "
                             "those an option sets (--epochs, --seed, ...); repeatable (default: none)")


COMPARE_DESCRIPTION = (
    "Train several dropout methods over seeds and tabulate their test accuracy. With no arguments: FC-1 "
    "(narrowed for the 8x8 digits) with no dropout, dropout, Y-Drop, Excitation Dropout and Activation Dropout "
    "on the embedded digits dataset over 3 seeds (Y-Drop protocol: SGD, early stopping on validation loss); "
    "prints a Table-2-style Markdown table and writes table.md, table.csv, table.tex and val_curves.png into "
    "the out folder. Finished runs are reused; interrupted ones resume.")


def build_parser() -> argparse.ArgumentParser:
    from .train.sweep import ALPHAS, WARMUPS

    parser = argparse.ArgumentParser(prog="ydrop", description="Importance-guided dropout: train and compare methods.")
    sub = parser.add_subparsers(dest="command", metavar="{compare,sweep,train,table,analyze}")
    sub.required = True

    from .layers.factory import DROPOUT_METHODS

    compare = sub.add_parser("compare", help="compare dropout methods over seeds and write a results table",
                             description=COMPARE_DESCRIPTION)
    _common_options(compare)
    compare.add_argument("--methods", default=DEFAULT_METHODS, metavar="A,B,..",
                         help=f"comma-separated methods, from: {', '.join(DROPOUT_METHODS)} (default: %(default)s)")
    _grid_options(compare)
    compare.add_argument("--analyze", action="store_true",
                         help="then analyse the runs as `ydrop analyze` does, into OUT/analysis (default: off)")

    sweep = sub.add_parser("sweep", help="tune Y-Drop's elasticity and warm-up, pick by validation accuracy",
                           description="Train Y-Drop over elasticity alpha x warm-up K x seeds (the paper's "
                                       "tuning grid), pick the (alpha, K) with the best mean validation accuracy "
                                       "and report its test accuracy; writes sweep.md and sweep.csv.")
    _common_options(sweep)
    sweep.add_argument("--alphas", type=_floats, default=",".join(f"{a:g}" for a in ALPHAS), metavar="A,B,..",
                       help="elasticity values (default: %(default)s)")
    sweep.add_argument("--warmups", type=_ints, default=",".join(map(str, WARMUPS)), metavar="K,L,..",
                       help="warm-up epochs K (default: %(default)s)")
    _grid_options(sweep)

    train = sub.add_parser("train", help="train one run", description="Train (or resume, or load) one run.")
    _common_options(train)
    train.add_argument("--method", default="dropout", metavar="NAME",
                       help=f"dropout method, one of: {', '.join(DROPOUT_METHODS)} (default: %(default)s)")
    train.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")

    table = sub.add_parser("table", help="aggregate finished runs into a table",
                           description="Print the table of every result.json below RUNS_DIR.")
    table.add_argument("runs_dir", metavar="RUNS_DIR", help="folder searched for result.json files")
    table.add_argument("--format", default="md", choices=("md", "csv", "latex"), help="output format (default: %(default)s)")
    table.add_argument("--plot", default=None, metavar="FILE",
                       help="also write the validation curves there, in the format its suffix names (.png, .pdf, "
                            ".svg, ...) (default: no plot)")
    table.add_argument("--sweep", action="store_true",
                       help="the Y-Drop sweep table (alpha x K, pick by validation accuracy) instead (default: off)")
    _analyze_options(sub)
    return parser


def _analyze_options(sub) -> None:
    analyze = sub.add_parser(
        "analyze", help="analyse finished runs: conductance spread, utilisation, robustness to removed units",
        description="Analyse one layer of finished runs (Y-Drop Fig. 2-3, Excitation Dropout Table 5 and Fig. 7): "
                    "print the Table-5-style table (mean (±std) over seeds) and write table.md, table.csv, "
                    "analysis.json, spread.png, removal.png and peb_removal.png.")
    analyze.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                         help="a run folder (holding result.json) or a folder searched for finished runs")
    analyze.add_argument("--out", default=None, metavar="DIR",
                         help="report folder (default: analysis/ in the common folder of the RUN_DIRs)")
    analyze.add_argument("--layer", default=None, metavar="NAME",
                         help="submodule analysed, e.g. classifier.5 (default: the model's first dropout slot, the "
                              "first hidden FC layer, the same for every method and dropout_at)")
    analyze.add_argument("--repeats", type=int, default=25,  # ydrop.analysis.DEFAULT_REPEATS
                         help="repeats of random removal (default: %(default)s)")
    analyze.add_argument("--delta", type=float, default=0.1,  # ydrop.analysis.DEFAULT_CONSERVATIVE_DELTA
                         help="a unit whose incoming weights moved less than this (L2) is conservative "
                              "(default: %(default)s)")
    analyze.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="device (default: %(default)s)")
    analyze.add_argument("--data-dir", default=None, metavar="DIR",
                         help="dataset root (default: the one stored with each run)")
    analyze.add_argument("--no-progress", action="store_true", help="hide the progress bars (default: shown)")


# TrainConfig fields set by an option of their own: errors about them name the option,
# and a plain --set of one is refused (either would silently win over the other).
# "A/B": train's option / compare's and sweep's.
_OPTION_OF = {"dataset": "--dataset", "model": "--model", "max_epochs": "--epochs", "protocol": "--protocol",
              "device": "--device", "data_dir": "--data-dir", "out": "--out", "mirror": "--mirror",
              "download": "--no-download", "dry_run": "--dry-run", "method": "--method/--methods",
              "seed": "--seed/--seeds"}


def _check_counts(args: argparse.Namespace) -> None:
    """The integer options, named as typed."""
    for option, value, low in (("--seeds", getattr(args, "seeds", 1), 1), ("--epochs", args.epochs, 1),
                               ("--threads", getattr(args, "threads", None), 1)):
        if value is not None and value < low:
            raise UsageError(f"{option} must be an integer >= {low}; got {value}")


def _check_own_options(args: argparse.Namespace) -> None:
    """Refuse a plain ``--set key=value`` of a config field that has an option of its own
    (``--set seed=3`` next to ``--seed``), naming both: one of the two would be ignored."""
    for item in args.sets:
        scope, key, _ = _split_set(item)
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
    from .train.config import PROTOCOL_DEFAULTS, allowed_values

    for key, value in changes.items():
        default = PROTOCOL_DEFAULTS[config.protocol].get(key)
        if value is not None or default is None:
            continue
        item = next(i for i in reversed(sets) if _split_set(i)[:2] == (None, key))
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
    from .train import TrainConfig

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

    from .data import dataset_info
    from .models import create

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
    from .train import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    items = []
    for item in sets:
        scope, key, _ = _split_set(item)
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
    from .train import TrainConfig

    named = [key for scope, key, _ in map(_split_set, items) if scope is None and f"'{key}'" in message]
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


def _base_config(args: argparse.Namespace, methods: Sequence[str]):
    """The checked base config and per-method kwargs. The command checks its own
    options next, then calls :func:`_warn_if_busy`."""
    from .train import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    changes, model_kwargs, method_kwargs = _parse_sets(args.sets, fields, methods)
    _check_own_options(args)
    if args.dataset == "digits" and args.model == "fc1" and "hidden" not in model_kwargs:
        model_kwargs["hidden"] = DIGITS_FC_HIDDEN
    config = _make_config(args, changes, model_kwargs)
    _check_protocol_nones(config, changes, args.sets)
    _check_models(config, methods, method_kwargs, args.sets)
    return config, method_kwargs


def _warn_if_busy(args: argparse.Namespace) -> None:
    """The one-line warning when the machine is too busy for the threads asked for:
    only once every option is checked, so that a usage error comes alone."""
    warning = getattr(args, "busy_warning", lambda: None)()
    if warning:
        print(warning, file=sys.stderr)


def _methods(text: str, option: str = "--methods") -> list[str]:
    from .layers.factory import DROPOUT_METHODS

    methods = [m.strip().lower() for m in text.split(",") if m.strip()]
    if not methods:
        raise UsageError(f"{option} must name a method, one of: {', '.join(DROPOUT_METHODS)}; got {text!r}")
    bad = [m for m in methods if m not in DROPOUT_METHODS]
    if bad:
        raise UsageError(f"{option}: unknown method(s) {', '.join(map(repr, bad))}; allowed: {', '.join(DROPOUT_METHODS)}")
    if len(set(methods)) != len(methods):
        raise UsageError(f"{option} lists a method twice: {text!r}")
    return methods


def _run_cells(args: argparse.Namespace, configs: list, tables) -> tuple[list, list, dict[str, str]]:
    """Run this process's cells of ``configs``; then, on rank 0 and under the out folder's
    lock, write the files ``tables(finished results of the whole grid)`` returns
    ({file name: text}; it may write more itself). Returns (this process's results,
    the finished ones, the texts).

    The tables hold every finished cell of the grid, whoever trained it, so the last
    shard to finish writes the complete ones; the lock makes "collect, then write"
    one step, so a shard that collected earlier cannot overwrite them with fewer rows.
    """
    from . import distributed
    from .train import finished_results, run_configs, train_run
    from .train.lock import TABLES_LOCK, wait_lock
    from .train.table import write_outputs

    train = functools.partial(train_run, tensorboard=True) if args.tensorboard else train_run
    mine = run_configs(configs, progress=not args.no_progress, shard=args.shard, train=train)
    finished, texts = [], {}
    if distributed.is_main_process():
        out = Path(configs[0].out)
        with wait_lock(out / TABLES_LOCK):
            finished = finished_results(configs)
            texts = tables(finished)
            write_outputs(out, texts)
    return mine, finished, texts


def _ran(args: argparse.Namespace, mine: list, finished: list, cells: int, started: float) -> str:
    part = f"shard {args.shard[0]}/{args.shard[1]}: " if args.shard else ""
    return (f"{part}{sum(r.trained for r in mine)} run(s) trained, {len(mine) - sum(r.trained for r in mine)} "
            f"reused; {len(finished)} of the grid's {cells} cells finished ({time.perf_counter() - started:.0f} s)")


def _compare(args: argparse.Namespace) -> int:
    from . import distributed
    from .train import plot_validation_curves, summarize, to_csv, to_latex, to_markdown
    from .train.grid import grid_configs

    methods = _methods(args.methods)
    config, method_kwargs = _base_config(args, methods)
    started = time.perf_counter()
    out = Path(config.out)

    def tables(results):
        plot_validation_curves(results, out / "val_curves.png")
        rows = summarize(results)
        return {"table.md": to_markdown(rows), "table.csv": to_csv(rows), "table.tex": to_latex(rows)}

    configs = grid_configs(config, methods, args.seeds, method_kwargs=method_kwargs)
    _warn_if_busy(args)
    mine, finished, texts = _run_cells(args, configs, tables)
    if not distributed.is_main_process():
        return 0
    c = config.resolved()
    print(f"\n{c.dataset}, {c.model} {c.model_kwargs or ''}, protocol {c.protocol} ({c.optimizer}, lr {c.lr}, "
          f"batch {c.batch_size}, max {c.max_epochs} epochs), {args.seeds} seed(s):\n")
    print(texts["table.md"])
    print(f"wrote {out / 'table.md'}, table.csv, table.tex, val_curves.png; {_ran(args, mine, finished, len(configs), started)}")
    if args.analyze and finished:
        _print_analysis([r.run_dir for r in finished], out / "analysis", None, args)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from . import distributed
    from .train import summarize_sweep, sweep_configs, sweep_csv, sweep_markdown
    from .train.sweep import SWEEP_KEYS

    config, method_kwargs = _base_config(args, ["ydrop"])
    clash = [k for k in SWEEP_KEYS if k in method_kwargs.get("ydrop", {})]
    if clash:
        raise UsageError(f"--set ydrop.{clash[0]}=...: the sweep varies it; use --alphas / --warmups instead")
    try:
        configs = sweep_configs(config.replace(method="ydrop", method_kwargs=method_kwargs.get("ydrop", {})),
                                args.alphas, args.warmups, args.seeds)
    except ValueError as exc:
        raise UsageError(str(exc).replace("alphas", "--alphas").replace("warmups", "--warmups")) from exc
    _warn_if_busy(args)
    started = time.perf_counter()

    def tables(results):
        rows = summarize_sweep(results)
        return {"sweep.md": sweep_markdown(rows), "sweep.csv": sweep_csv(rows)}

    mine, finished, texts = _run_cells(args, configs, tables)
    if distributed.is_main_process():
        print(texts["sweep.md"])
        print(f"wrote {Path(config.out) / 'sweep.md'}, sweep.csv; {_ran(args, mine, finished, len(configs), started)}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .distributed import rank as dist_rank
    from .train import train_run

    method = _methods(args.method, "--method")
    if len(method) != 1:
        raise UsageError(f"--method takes one method; got {args.method!r} (use compare for several)")
    if args.seed < 0:
        raise UsageError(f"--seed must be an integer >= 0; got {args.seed}")
    config, method_kwargs = _base_config(args, method)
    config = config.replace(method=method[0], seed=args.seed, method_kwargs=method_kwargs.get(method[0], {}))
    _warn_if_busy(args)
    result = train_run(config, progress=not args.no_progress, tensorboard=args.tensorboard)
    if result.world_size > 1 and dist_rank() != 0:
        return 0  # rank 0 reports
    print(f"{'trained' if result.trained else 'already finished'}: {result.run_dir}\n{_run_line(result)}")
    return 0


def _run_line(result) -> str:
    """The final line of ``ydrop train``; epochs counted from 1, as everywhere the user reads them."""
    from .train.table import at_cap, still_improving

    if result.stopped_early:
        how = "stopped early"
    elif at_cap(result):  # "still improving" only where the history shows it
        how = "stopped at the epoch cap, " + ("still improving" if still_improving(result)
                                              else "before early stopping triggered")
    else:
        how = "the planned iterations done"
    # The best epoch is the first with a validation loss below every earlier one, starting
    # from inf: none when every validation loss was NaN or inf, and the last weights are tested.
    if result.best_epoch >= 0:
        weights = f"the weights of epoch {result.best_epoch + 1}, the best"
    else:
        weights, how = "the last weights", how + "; no epoch had a finite validation loss"
    return (f"test accuracy {result.test_acc:.2f}% (loss {result.test_loss:.4f}) with {weights} of {result.epochs} "
            f"epoch(s) trained ({how}), {result.time_per_epoch:.3f} s/epoch")


def _table(args: argparse.Namespace) -> int:
    from .train import collect_results, plot_validation_curves, summarize, to_csv, to_latex, to_markdown

    if args.sweep and args.format == "latex":
        raise UsageError("--sweep prints Markdown or CSV; use --format md or --format csv")
    from .train.store import RUN_FOLDER_HOLDS
    from .train.table import plot_format

    allowed = ("allowed: a folder holding finished runs (their result.json) in it or below it, such as the --out "
               f"folder of ydrop compare, sweep or train; {RUN_FOLDER_HOLDS}")
    if not Path(args.runs_dir).is_dir():
        raise UsageError(f"RUNS_DIR {args.runs_dir!r} is not a folder; {allowed}")
    if args.plot:
        try:
            plot_format(args.plot, "--plot")
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    results = collect_results(args.runs_dir)
    if not results:
        raise UsageError(f"RUNS_DIR {args.runs_dir!r} holds no finished run (no result.json written by ydrop "
                         f"in it or below it); {allowed}")
    if args.sweep:
        from .train import summarize_sweep, sweep_csv, sweep_markdown

        rows = summarize_sweep(results)
        if not rows:
            raise UsageError(f"no Y-Drop run found below {args.runs_dir!r} (--sweep tabulates ydrop sweeps)")
        print({"md": sweep_markdown, "csv": sweep_csv}[args.format](rows), end="")
        return 0
    rows = summarize(results)
    _warn_copies("table", rows)
    print({"md": to_markdown, "csv": to_csv, "latex": to_latex}[args.format](rows), end="")
    if args.plot:
        plot_validation_curves(results, args.plot)
    return 0


def _warn_copies(command: str, rows: list[dict[str, Any]]) -> None:
    """One stderr line per run a row left out as a copy of one it counts (same config and seed)."""
    for row in rows:
        for copy in row.get("copies", ()):
            print(f"ydrop {command}: warning: left out {copy}: a copy (same config and seed) of a run that row "
                  f"{row['method']!r} ({row['dataset']}, {row['model']}) counts already", file=sys.stderr)


def _print_analysis(runs: list, out: str | Path | None, layer: str | None, args: argparse.Namespace,
                    repeats: int = 25, delta: float = 0.1) -> None:
    from .analysis.report import analyze

    report = analyze(runs, out=out, layer=layer, repeats=repeats, device=args.device, data_dir=args.data_dir,
                     conservative_delta=delta, progress=not args.no_progress)
    folder = report.files["table.md"].parent
    _warn_copies(args.command, report.rows)
    print(f"\nanalysis of layer {', '.join(sorted({a.layer for a in report.analyses}))} "
          f"({len(report.analyses)} run(s)):\n\n{report.markdown}")
    print(f"wrote {', '.join(report.files)} into {folder} ({report.seconds:.0f} s)")


def _analyze(args: argparse.Namespace) -> int:
    from ._validation import check_non_negative, check_positive_int
    from .analysis.report import default_out
    from .analysis.runs import find_runs, run_layers

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device 'cuda' was asked for but no CUDA device is available; allowed: auto, cpu")
    try:  # bad values, folders and layers are refused before any run is loaded
        check_positive_int("--repeats", args.repeats)
        check_non_negative("--delta", args.delta)
        runs = find_runs(args.run_dirs, name="RUN_DIR")
        run_layers(runs, args.layer, name="--layer")
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    # The default folder follows the RUN_DIRs given, as --help says, not the runs found
    # below them (whose common folder is deeper, e.g. DIR/digits/fc1-24c3beda).
    out = args.out if args.out is not None else default_out(args.run_dirs)
    _print_analysis(runs, out, args.layer, args, args.repeats, args.delta)
    return 0


def _training(args: argparse.Namespace) -> int:
    """``compare``, ``sweep`` or ``train``: the flags that need something installed or a
    look at the machine first, then the command, with torch's threads as asked."""
    import torch

    from . import distributed
    from .distributed import process_group
    from .train.threads import busy_warning, set_threads

    _check_counts(args)
    if args.tensorboard:
        from .train.tensorboard import require_tensorboard

        try:
            require_tensorboard()
        except ImportError as exc:
            raise UsageError(f"--tensorboard: {exc}") from exc
    before = torch.get_num_threads()
    try:
        threads = set_threads(args.threads)
        # Under torchrun: one process group for the whole command (gloo on CPU, nccl on CUDA).
        # The load is looked at once the options are checked, just before training.
        args.busy_warning = lambda: busy_warning(threads) if distributed.is_main_process() else None
        with process_group(args.device):
            return {"compare": _compare, "sweep": _sweep, "train": _train}[args.command](args)
    finally:
        torch.set_num_threads(before)  # main() may be called again in this process


def _failure(exc: Exception) -> str | None:
    """The message of an expected failure (dataset, run folder), None for a bug."""
    from .data import DatasetFormatError, DatasetNotFoundError
    from .train import RunLocked

    if isinstance(exc, DatasetNotFoundError):
        return exc.cli_message  # the advice names --mirror and --no-download, not Python arguments
    if isinstance(exc, (DatasetFormatError, FileNotFoundError, ValueError, RunLocked)):
        return str(exc)
    return None


@contextlib.contextmanager
def _skipped_results_reported(command: str):
    """Each result.json skipped as unreadable reported on stderr as one line
    ``ydrop <command>: warning: skipped '<path>' ...``, however often the process has
    warned about it before (Python shows a warning once per place by default)."""
    from .train.store import UnreadableResultWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", UnreadableResultWarning)
        show = warnings.showwarning

        def report(message, category, *rest, **kwargs):
            if issubclass(category, UnreadableResultWarning):
                print(f"ydrop {command}: warning: {message}", file=sys.stderr)
            else:
                show(message, category, *rest, **kwargs)

        warnings.showwarning = report
        yield


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in ("table", "analyze"):
            with _skipped_results_reported(args.command):
                return {"table": _table, "analyze": _analyze}[args.command](args)
        return _training(args)
    except UsageError as exc:
        parser.exit(2, f"ydrop {args.command}: error: {exc}\n")
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs are kept, the current one resumes from its last checkpoint",
              file=sys.stderr)
        return 130
    except Exception as exc:  # dataset or run errors: a message, not a traceback
        message = _failure(exc)
        if message is None:
            raise
        parser.exit(1, f"ydrop {args.command}: error: {message}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
