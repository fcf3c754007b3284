"""The guided training step of another revision of ydrop against today's, in one process.

    .venv/bin/python -m benchmarks.ab_revision 0db851b            # FC_1, 150 rounds
    .venv/bin/python -m benchmarks.ab_revision 0db851b --small    # FC_1's layout at 16-32-32-10

Timings drift between processes by as much as a small change saves
(docs/performance.md, session 21), so both codes run in this one: the revision's
``src/ydrop`` is exported with ``git archive`` into a temporary folder as the package
``ydrop_rev`` (its custom op renamed with it), and its Y-Drop step, today's and the
``nn.Dropout`` step alternate round by round (the order reversed every other round).
Prints new / old and each against ``nn.Dropout``, medians of the per-round ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from benchmarks.common import interleaved, model_step

REVISION_PACKAGE = "ydrop_rev"


def export_revision(revision: str, into: Path) -> ModuleType:
    """``src/ydrop`` of git ``revision`` as the package ``ydrop_rev`` under ``into``, imported."""
    found = subprocess.run(["git", "archive", revision, "src/ydrop"], cwd=Path(__file__).parents[1],
                           capture_output=True)
    if found.returncode:
        raise SystemExit(f"revision {revision!r}: git archive failed: {found.stderr.decode().strip()}")
    archive = found.stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    package = into / REVISION_PACKAGE
    (into / "src" / "ydrop").rename(package)
    for source in package.rglob("*.py"):
        source.write_text(_renamed(source.read_text()))
    spec = importlib.util.spec_from_file_location(REVISION_PACKAGE, package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[REVISION_PACKAGE] = module  # before running it: its relative imports look it up
    spec.loader.exec_module(module)
    return module


def _renamed(code: str) -> str:
    """``code`` with its absolute imports of ydrop and its custom op's namespace renamed
    (two packages cannot define the same ``ydrop::mask``)."""
    code = re.sub(r"^(\s*)(from|import) ydrop\b", rf"\1\2 {REVISION_PACKAGE}", code, flags=re.MULTILINE)
    return code.replace('"ydrop::', f'"{REVISION_PACKAGE}::').replace("torch.ops.ydrop.", f"torch.ops.{REVISION_PACKAGE}.")


def guided_step(package: ModuleType | None, small: bool) -> Callable[[], None]:
    """One SGD step of FC_1 (or its 16-32-32-10 layout) on a fixed batch of 64: Y-Drop
    scored every step with ``package``'s Guide, or ``nn.Dropout`` for None."""
    shape, layout = ((1, 4, 4), {"hidden": (32, 32)}) if small else (None, None)
    if package is None:
        return model_step("fc1", nn.Dropout, 64, shape, model_kwargs=layout)
    return model_step("fc1", "ydrop", 64, shape, model_kwargs=layout, package=package, warmup_epochs=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision", help="the git revision to compare today's code with, e.g. 0db851b")
    parser.add_argument("--small", action="store_true", help="FC_1's layout at 16-32-32-10: the fixed cost")
    parser.add_argument("--rounds", type=int, default=150)
    args = parser.parse_args()
    import ydrop

    with tempfile.TemporaryDirectory() as folder:
        old = export_revision(args.revision, Path(folder))
        steps = {"old": guided_step(old, args.small), "new": guided_step(ydrop, args.small),
                 "nn.Dropout": guided_step(None, args.small)}
        times = interleaved(steps, args.rounds, repeats=40 if args.small else 5, warmup=5)

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(times[a], times[b]))

    ms = ", ".join(f"{name} {statistics.median(values) * 1e3:.3f} ms" for name, values in times.items())
    print(f"{'16-32-32-10' if args.small else 'FC_1'}, {torch.get_num_threads()} thread(s), {args.rounds} rounds: {ms}")
    print(f"new / old {ratio('new', 'old'):.4f}; old / nn.Dropout {ratio('old', 'nn.Dropout'):.3f}; "
          f"new / nn.Dropout {ratio('new', 'nn.Dropout'):.3f}")


if __name__ == "__main__":
    main()
