"""The ``ydrop`` command: ``compare`` (the main job), ``train`` (one run), ``table``.

``ydrop compare`` with no arguments trains FC-1 (narrowed for the 8x8 digits) with no
dropout, dropout, Y-Drop, Excitation Dropout and Activation Dropout on the embedded
digits dataset over 3 seeds (Y-Drop protocol: SGD, early stopping on validation loss),
prints a Table-2-style Markdown table and writes table.md, table.csv, table.tex and
val_curves.png into the out folder. Finished runs are reused; interrupted ones resume.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Sequence

DEFAULT_METHODS = "none,dropout,ydrop,excitation,activation"
# compare on the embedded digits with the default model: FC-1 narrowed from 2x1024 to
# 2x256 (8x8 inputs), so the whole comparison takes a few minutes on 2 cores.
DIGITS_FC_HIDDEN = (256, 256)


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


def _parse_sets(items: Sequence[str], config_fields: set[str], methods: Sequence[str]):
    """``--set`` items -> (config changes, model kwargs, {method: kwargs})."""
    from .layers.factory import DROPOUT_METHODS

    changes: dict[str, Any] = {}
    model_kwargs: dict[str, Any] = {}
    method_kwargs: dict[str, dict[str, Any]] = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--set expects key=value (e.g. ydrop.elasticity=0.01, hidden=128,128, lr=0.05); got {item!r}")
        key, _, raw = item.partition("=")
        key, value = key.strip(), _parse_value(raw)
        if isinstance(value, list):
            value = tuple(value)
        if "." in key:
            scope, _, name = key.partition(".")
            if scope == "model":
                model_kwargs[name] = value
            elif scope in DROPOUT_METHODS:
                if scope not in methods:
                    raise UsageError(f"--set {item!r} sets method {scope!r}, which is not run here (methods: {', '.join(methods)})")
                method_kwargs.setdefault(scope, {})[name] = value
            else:
                raise UsageError(
                    f"--set {item!r}: the part before '.' must be 'model' or a method "
                    f"({', '.join(DROPOUT_METHODS)}); got {scope!r}"
                )
        elif key in config_fields:
            changes[key] = value
        else:
            model_kwargs[key] = value  # e.g. hidden=128,128; checked against the model below
    return changes, model_kwargs, method_kwargs


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="digits", help="dataset name (default: %(default)s, embedded, no download)")
    parser.add_argument("--model", default="fc1", help="model name, see ydrop.models.list_models() (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=None, metavar="N",
                        help="max epochs per run, early stopping may end sooner (default: the protocol's, 60)")
    parser.add_argument("--protocol", default="ydrop", choices=("ydrop", "excitation"),
                        help="training protocol (default: %(default)s)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="device (default: %(default)s)")
    parser.add_argument("--data-dir", default="data", metavar="DIR", help="dataset root (default: %(default)s)")
    parser.add_argument("--out", default="runs", metavar="DIR", help="runs directory (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="tiny smoke run: 2 epochs of 3 batches (default: off)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars (default: shown)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="method kwargs (ydrop.elasticity=0.01), model kwargs (hidden=128,128 or "
                             "model.width_multiplier=0.5) or config fields (lr=0.05, patience=5); repeatable "
                             "(default: none)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ydrop", description="Importance-guided dropout: train and compare methods.")
    sub = parser.add_subparsers(dest="command", metavar="{compare,train,table}")
    sub.required = True

    compare = sub.add_parser("compare", help="compare dropout methods over seeds and write a results table",
                             description=__doc__.splitlines()[2].strip() + " " + " ".join(
                                 line.strip() for line in __doc__.splitlines()[3:7]))
    _common_options(compare)
    compare.add_argument("--methods", default=DEFAULT_METHODS, help="comma-separated methods (default: %(default)s)")
    compare.add_argument("--seeds", type=int, default=3, help="seeds per method, 0..N-1 (default: %(default)s)")

    train = sub.add_parser("train", help="train one run", description="Train (or resume, or load) one run.")
    _common_options(train)
    train.add_argument("--method", default="dropout", help="dropout method (default: %(default)s)")
    train.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")

    table = sub.add_parser("table", help="aggregate finished runs into a table",
                           description="Print the table of every result.json below RUNS_DIR.")
    table.add_argument("runs_dir", metavar="RUNS_DIR", help="folder searched for result.json files")
    table.add_argument("--format", default="md", choices=("md", "csv", "latex"), help="output format (default: %(default)s)")
    table.add_argument("--plot", default=None, metavar="PNG", help="also write the validation curves there (default: no plot)")
    return parser


def _base_config(args: argparse.Namespace, methods: Sequence[str]):
    from .data import dataset_info
    from .train import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    changes, model_kwargs, method_kwargs = _parse_sets(args.sets, fields, methods)
    if args.command == "compare" and args.dataset == "digits" and args.model == "fc1" and "hidden" not in model_kwargs:
        model_kwargs["hidden"] = DIGITS_FC_HIDDEN
    values = dict(dataset=args.dataset, model=args.model, protocol=args.protocol, device=args.device,
                  data_dir=args.data_dir, out=args.out, dry_run=args.dry_run, model_kwargs=model_kwargs)
    if args.epochs is not None:
        values["max_epochs"] = args.epochs
    values.update(changes)
    for name in ("method_kwargs", "model_kwargs"):
        if name in changes:
            raise UsageError(f"--set {name}=...: set its entries one by one instead (method.key=value, model.key=value)")
    try:
        config = TrainConfig(**values)
        config.resolved()
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from exc
    # Build every model on the meta device now, so bad model or method kwargs fail before training.
    try:
        import torch

        from .models import create

        info = dataset_info(config.dataset) if config.dataset != "image-folder" else None
        for method in methods:
            with torch.device("meta"):
                create(config.model, num_classes=info.num_classes if info else 10,
                       in_shape=info.in_shape if info else None, dropout=method,
                       dropout_kwargs={**config.method_kwargs, **method_kwargs.get(method, {})}, **config.model_kwargs)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from exc
    return config, method_kwargs


def _methods(text: str) -> list[str]:
    from .layers.factory import DROPOUT_METHODS

    methods = [m.strip().lower() for m in text.split(",") if m.strip()]
    if not methods:
        raise UsageError("--methods must name at least one method")
    bad = [m for m in methods if m not in DROPOUT_METHODS]
    if bad:
        raise UsageError(f"--methods: unknown method(s) {', '.join(map(repr, bad))}; allowed: {', '.join(DROPOUT_METHODS)}")
    if len(set(methods)) != len(methods):
        raise UsageError(f"--methods lists a method twice: {text!r}")
    return methods


def _compare(args: argparse.Namespace) -> int:
    from .train import plot_validation_curves, run_grid, summarize, to_csv, to_latex, to_markdown
    from .train.store import atomic_write

    methods = _methods(args.methods)
    if args.seeds < 1:
        raise UsageError(f"--seeds must be an integer >= 1; got {args.seeds}")
    config, method_kwargs = _base_config(args, methods)
    started = time.perf_counter()
    results = run_grid(config, methods, args.seeds, method_kwargs=method_kwargs, progress=not args.no_progress)
    rows = summarize(results)
    markdown = to_markdown(rows)
    out = Path(config.out)
    for name, text in (("table.md", markdown), ("table.csv", to_csv(rows)), ("table.tex", to_latex(rows))):
        atomic_write(out / name, lambda f, t=text: f.write(t.encode()))
    plot_validation_curves(results, out / "val_curves.png")
    c = config.resolved()
    print(f"\n{c.dataset}, {c.model} {c.model_kwargs or ''}, protocol {c.protocol} ({c.optimizer}, lr {c.lr}, "
          f"batch {c.batch_size}, max {c.max_epochs} epochs), {args.seeds} seed(s):\n")
    print(markdown)
    print(f"wrote {out / 'table.md'}, table.csv, table.tex, val_curves.png "
          f"({time.perf_counter() - started:.0f} s, {sum(r.trained for r in results)} run(s) trained)")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .train import train_run

    method = _methods(args.method)
    if len(method) != 1:
        raise UsageError(f"--method takes one method; got {args.method!r} (use compare for several)")
    if args.seed < 0:
        raise UsageError(f"--seed must be an integer >= 0; got {args.seed}")
    config, method_kwargs = _base_config(args, method)
    config = config.replace(method=method[0], seed=args.seed, method_kwargs=method_kwargs.get(method[0], {}))
    result = train_run(config, progress=not args.no_progress)
    print(f"{'trained' if result.trained else 'already finished'}: {result.run_dir}\n"
          f"test accuracy {result.test_acc:.2f}% (loss {result.test_loss:.4f}) at best epoch {result.best_epoch} "
          f"of {result.epochs}, {result.time_per_epoch:.3f} s/epoch")
    return 0


def _table(args: argparse.Namespace) -> int:
    from .train import collect_results, plot_validation_curves, summarize, to_csv, to_latex, to_markdown

    try:
        results = collect_results(args.runs_dir)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from exc
    if not results:
        raise UsageError(f"no result.json found below {args.runs_dir!r}")
    rows = summarize(results)
    print({"md": to_markdown, "csv": to_csv, "latex": to_latex}[args.format](rows), end="")
    if args.plot:
        plot_validation_curves(results, args.plot)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return {"compare": _compare, "train": _train, "table": _table}[args.command](args)
    except UsageError as exc:
        parser.exit(2, f"ydrop {args.command}: error: {exc}\n")
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs are kept, the current one resumes from its last checkpoint",
              file=sys.stderr)
        return 130
    except Exception as exc:  # dataset or run errors: a message, not a traceback
        from .data import DatasetFormatError, DatasetNotFoundError

        if isinstance(exc, (DatasetNotFoundError, DatasetFormatError, FileNotFoundError, ValueError)):
            parser.exit(1, f"ydrop {args.command}: error: {exc}\n")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
