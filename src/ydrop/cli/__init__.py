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

import contextlib
import sys
import warnings
from typing import Sequence

# The command's parts, one job each: options.py parses, configs.py checks what the
# training commands will train, training.py and reports.py are the commands.
from .options import COMPARE_DESCRIPTION, DEFAULT_METHODS, DIGITS_FC_HIDDEN, SET_FORM, UsageError, build_parser
from .reports import run_analyze, run_table
from .training import run_training

__all__ = ["COMPARE_DESCRIPTION", "DEFAULT_METHODS", "DIGITS_FC_HIDDEN", "SET_FORM", "UsageError", "build_parser",
           "main"]


def _failure(exc: Exception) -> str | None:
    """The message of an expected failure (dataset, run folder), None for a bug."""
    from ..data import DatasetFormatError, DatasetNotFoundError
    from ..train import RunLocked

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
    from ..train.store import UnreadableResultWarning

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
                return {"table": run_table, "analyze": run_analyze}[args.command](args)
        return run_training(args)
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
