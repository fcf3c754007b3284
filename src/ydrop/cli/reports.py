"""The commands that read finished runs: ``table`` (their results table) and
``analyze`` (Table 5 and the figures of :mod:`ydrop.analysis.report`; also run by
``compare --analyze``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .options import UsageError


def run_table(args: argparse.Namespace) -> int:
    from ..train import plot_validation_curves, summarize, to_csv, to_latex, to_markdown

    if args.sweep and args.format == "latex":
        raise UsageError("--sweep prints Markdown or CSV; use --format md or --format csv")
    if args.plot:
        from ..train.table import plot_format

        try:
            plot_format(args.plot, "--plot")
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    results = _finished_runs(args.runs_dirs)
    if args.sweep:
        from ..train import summarize_sweep, sweep_csv, sweep_markdown

        rows = summarize_sweep(results)
        if not rows:
            raise UsageError(f"no Y-Drop run found below {', '.join(map(repr, args.runs_dirs))} "
                             "(--sweep tabulates ydrop sweeps)")
        print({"md": sweep_markdown, "csv": sweep_csv}[args.format](rows), end="")
        return 0
    rows = summarize(results)
    _warn_copies("table", rows)
    print({"md": to_markdown, "csv": to_csv, "latex": to_latex}[args.format](rows), end="")
    if args.plot:
        plot_validation_curves(results, args.plot)
    return 0


def _finished_runs(folders: list[str]) -> list[dict[str, Any]]:
    """The results below every folder of ``ydrop table``'s RUNS_DIR arguments, read
    together: a run in two of them (a copy) counts once, as :func:`summarize` leaves
    the copy out with a warning. A UsageError for a missing folder or no run at all."""
    from ..train import collect_results
    from ..train.store import RUN_FOLDER_HOLDS

    allowed = ("allowed: a folder holding finished runs (their result.json) in it or below it, such as the --out "
               f"folder of ydrop compare, sweep or train; {RUN_FOLDER_HOLDS}")
    for folder in folders:
        if not Path(folder).is_dir():
            raise UsageError(f"RUNS_DIR {folder!r} is not a folder; {allowed}")
    results = collect_results(*folders)
    if not results:
        raise UsageError(f"RUNS_DIR {', '.join(map(repr, folders))} {'holds' if len(folders) == 1 else 'hold'} "
                         f"no finished run (no result.json written by ydrop in it or below it); {allowed}")
    return results


def _warn_copies(command: str, rows: list[dict[str, Any]]) -> None:
    """One stderr line per run a row left out as a copy of one it counts (same config and seed)."""
    for row in rows:
        for copy in row.get("copies", ()):
            print(f"ydrop {command}: warning: left out {copy}: a copy (same config and seed) of a run that row "
                  f"{row['method']!r} ({row['dataset']}, {row['model']}) counts already", file=sys.stderr)


def print_analysis(runs: list, out: str | Path | None, layer: str | None, args: argparse.Namespace,
                   repeats: int = 25, delta: float = 0.1) -> None:
    from ..analysis.report import analyze

    report = analyze(runs, out=out, layer=layer, repeats=repeats, device=args.device, data_dir=args.data_dir,
                     conservative_delta=delta, progress=not args.no_progress)
    folder = report.files["table.md"].parent
    _warn_copies(args.command, report.rows)
    print(f"\nanalysis of layer {', '.join(sorted({a.layer for a in report.analyses}))} "
          f"({len(report.analyses)} run(s)):\n\n{report.markdown}")
    print(f"wrote {', '.join(report.files)} into {folder} ({report.seconds:.0f} s)")


def run_analyze(args: argparse.Namespace) -> int:
    from .._validation import check_non_negative, check_positive_int
    from ..analysis.report import default_out
    from ..analysis.runs import find_runs, run_layers

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
    print_analysis(runs, out, args.layer, args, args.repeats, args.delta)
    return 0
