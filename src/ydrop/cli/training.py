"""The commands that train: ``compare``, ``sweep`` and ``train``.

Each checks its options into configs (:mod:`.configs`), warns once if the machine is
too busy for the threads asked for, trains (under torchrun, in one process group;
rank 0 prints and writes) and prints its table or the run's final line.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

from .configs import base_config, check_counts
from .options import UsageError, parse_methods
from .reports import print_analysis


def _warn_if_busy(args: argparse.Namespace) -> None:
    """The one-line warning when the machine is too busy for the threads asked for:
    only once every option is checked, so that a usage error comes alone."""
    warning = getattr(args, "busy_warning", lambda: None)()
    if warning:
        print(warning, file=sys.stderr)


def _run_cells(args: argparse.Namespace, configs: list, tables) -> tuple[list, list, dict[str, str]]:
    """Run this process's cells of ``configs``; then, on rank 0 and under the out folder's
    lock, write the files ``tables(finished results of the whole grid)`` returns
    ({file name: text}; it may write more itself). Returns (this process's results,
    the finished ones, the texts).

    The tables hold every finished cell of the grid, whoever trained it, so the last
    shard to finish writes the complete ones; the lock makes "collect, then write"
    one step, so a shard that collected earlier cannot overwrite them with fewer rows.
    """
    from .. import distributed
    from ..train import finished_results, run_configs, train_run
    from ..train.lock import TABLES_LOCK, wait_lock
    from ..train.table import write_outputs

    train = functools.partial(train_run, tensorboard=True) if args.tensorboard else train_run
    mine = run_configs(configs, progress=not args.no_progress, shard=args.shard, train=train, wait=not args.no_wait)
    finished, texts = [], {}
    if distributed.is_main_process():
        out = Path(configs[0].out)
        with wait_lock(out / TABLES_LOCK):
            finished = finished_results(configs)
            texts = tables(finished)
            write_outputs(out, texts)
    return mine, finished, texts


def _ran(args: argparse.Namespace, mine: list, finished: list, configs: list, started: float) -> str:
    from ..train.grid import shard_cells

    part = f"shard {args.shard[0]}/{args.shard[1]}: " if args.shard else ""
    own = len(shard_cells(configs, args.shard))
    left = f", {own - len(mine)} left to the processes that train them (--no-wait)" if own > len(mine) else ""
    return (f"{part}{sum(r.trained for r in mine)} run(s) trained, {len(mine) - sum(r.trained for r in mine)} "
            f"reused{left}; {len(finished)} of the grid's {len(configs)} cells finished "
            f"({time.perf_counter() - started:.0f} s)")


def _compare(args: argparse.Namespace) -> int:
    from .. import distributed
    from ..train import plot_validation_curves, summarize, to_csv, to_latex, to_markdown
    from ..train.grid import grid_configs

    methods = parse_methods(args.methods)
    config, method_kwargs = base_config(args, methods)
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
    print(f"wrote {out / 'table.md'}, table.csv, table.tex, val_curves.png; {_ran(args, mine, finished, configs, started)}")
    if args.analyze and finished:
        print_analysis([r.run_dir for r in finished], out / "analysis", None, args)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from .. import distributed
    from ..train import summarize_sweep, sweep_configs, sweep_csv, sweep_markdown
    from ..train.sweep import SWEEP_KEYS

    config, method_kwargs = base_config(args, ["ydrop"])
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
        print(f"wrote {Path(config.out) / 'sweep.md'}, sweep.csv; {_ran(args, mine, finished, configs, started)}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from ..distributed import rank as dist_rank
    from ..train import train_run

    method = parse_methods(args.method, "--method")
    if len(method) != 1:
        raise UsageError(f"--method takes one method; got {args.method!r} (use compare for several)")
    if args.seed < 0:
        raise UsageError(f"--seed must be an integer >= 0; got {args.seed}")
    config, method_kwargs = base_config(args, method)
    config = config.replace(method=method[0], seed=args.seed, method_kwargs=method_kwargs.get(method[0], {}))
    _warn_if_busy(args)
    result = train_run(config, progress=not args.no_progress, tensorboard=args.tensorboard)
    if result.world_size > 1 and dist_rank() != 0:
        return 0  # rank 0 reports
    print(f"{'trained' if result.trained else 'already finished'}: {result.run_dir}\n{_run_line(result)}")
    return 0


def _run_line(result) -> str:
    """The final line of ``ydrop train``; epochs counted from 1, as everywhere the user reads them."""
    from ..train.table import at_cap, still_improving

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


def run_training(args: argparse.Namespace) -> int:
    """``compare``, ``sweep`` or ``train``: the flags that need something installed or a
    look at the machine first, then the command, with torch's threads as asked."""
    import torch

    from .. import distributed
    from ..distributed import process_group
    from ..train.threads import busy_warning, set_threads

    check_counts(args)
    if args.tensorboard:
        from ..train.tensorboard import require_tensorboard

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
