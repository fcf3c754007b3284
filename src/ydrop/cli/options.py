"""The ``ydrop`` command's parser and the parsing of option values: ``--set key=value``
items, ``--shard I/N``, comma-separated numbers and methods.

A bad value is a :class:`UsageError`, which ``ydrop`` reports as ``ydrop <command>:
error: ...`` with exit code 2; argparse's own type errors (``--shard``, ``--alphas``,
``--warmups``) exit the same way.
"""

from __future__ import annotations

import argparse
import ast
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
    """A bad command-line value: reported as ``ydrop <command>: error: ...`` with exit code 2."""


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


def split_set(item: str) -> tuple[str | None, str, Any]:
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


def parse_sets(items: Sequence[str], config_fields: set[str], methods: Sequence[str]):
    """``--set`` items -> (config changes, model kwargs, {method: kwargs})."""
    from ..layers.factory import DROPOUT_METHODS

    changes: dict[str, Any] = {}
    model_kwargs: dict[str, Any] = {}
    method_kwargs: dict[str, dict[str, Any]] = {}
    for item in items:
        scope, key, value = split_set(item)
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


def parse_methods(text: str, option: str = "--methods") -> list[str]:
    from ..layers.factory import DROPOUT_METHODS

    methods = [m.strip().lower() for m in text.split(",") if m.strip()]
    if not methods:
        raise UsageError(f"{option} must name a method, one of: {', '.join(DROPOUT_METHODS)}; got {text!r}")
    bad = [m for m in methods if m not in DROPOUT_METHODS]
    if bad:
        raise UsageError(f"{option}: unknown method(s) {', '.join(map(repr, bad))}; allowed: {', '.join(DROPOUT_METHODS)}")
    if len(set(methods)) != len(methods):
        raise UsageError(f"{option} lists a method twice: {text!r}")
    return methods


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
    parser.add_argument("--no-wait", action="store_true",
                        help="leave cells that another process trains to it instead of waiting for them at the "
                             "end (copies of a grid script go on to their next command; the tables hold the "
                             "cells finished so far)")


def _common_options(parser: argparse.ArgumentParser) -> None:
    from ..data import DATASET_NAMES
    from ..models import list_models

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
                             "model.width_multiplier=0.5) or config fields (lr=0.05, patience=5, monitor=val_acc) other than "
                             "those an option sets (--epochs, --seed, ...); repeatable (default: none)")


COMPARE_DESCRIPTION = (
    "Train several dropout methods over seeds and tabulate their test accuracy. With no arguments: FC-1 "
    "(narrowed for the 8x8 digits) with no dropout, dropout, Y-Drop, Excitation Dropout and Activation Dropout "
    "on the embedded digits dataset over 3 seeds (Y-Drop protocol: SGD, early stopping on validation loss); "
    "prints a Table-2-style Markdown table and writes table.md, table.csv, table.tex and val_curves.png into "
    "the out folder. Finished runs are reused; interrupted ones resume.")


def build_parser() -> argparse.ArgumentParser:
    from ..train.sweep import ALPHAS, WARMUPS

    parser = argparse.ArgumentParser(prog="ydrop", description="Importance-guided dropout: train and compare methods.")
    sub = parser.add_subparsers(dest="command", metavar="{compare,sweep,train,table,analyze}")
    sub.required = True

    from ..layers.factory import DROPOUT_METHODS

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
                           description="Print the table of every result.json below the RUNS_DIR folders.")
    table.add_argument("runs_dirs", nargs="+", metavar="RUNS_DIR",
                       help="folder searched for result.json files; several are read together, into one table")
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
