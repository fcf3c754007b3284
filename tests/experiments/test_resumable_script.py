"""experiments/_resumable.sh, the grid scripts' shared part, driven with a stand-in for
``ydrop`` that logs its calls and writes a finished cell (no training)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "experiments" / "_resumable.sh"

# Logs "start|end PID ARGS" and, like a finished `ydrop compare`, leaves a result.json in
# the runs folder; sleeps between, so that copies running at once overlap in the log (the
# first call of all 2 s with SLOW_FIRST set: a cell that takes longer than the others).
FAKE_YDROP = """#!/usr/bin/env bash
echo "start $$ $*" >> "$LOG"
if [[ -n "${SLOW_FIRST:-}" ]] && mkdir slow-taken 2>/dev/null; then sleep 2; else sleep 0.5; fi
mkdir -p runs/cell-$$ && echo '{}' > runs/cell-$$/result.json && echo '{}' > runs/cell-$$/config.json
echo "end $$ $*" >> "$LOG"
exit "${FAIL:-0}"
"""

# A grid script as the real ones are: one row, two methods, a --set for one of them.
GRID_SCRIPT = f"""set -euo pipefail
RUNS=runs YDROP=./ydrop SEEDS=2 GRID=g
common=(--out runs)
source {SHARED}
seed_runs
row() {{ cells "$1" a,b --set a.x=1; }}
second() {{ cells "$1" c; }}
seed_major row ${{SECOND_ROW:+second}}
"""


def run_grid(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    fake = tmp_path / "ydrop"
    fake.write_text(FAKE_YDROP)
    fake.chmod(0o755)
    log = tmp_path / "calls.log"
    done = subprocess.run(["bash", "-c", GRID_SCRIPT], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "LOG": str(log), **env})
    lines = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
    return done, lines


def calls(lines: list[list[str]]) -> list[str]:
    return [" ".join(line[2:]) for line in lines if line[0] == "start"]


def test_one_process_runs_seed_by_seed_and_method_by_method_and_exports(tmp_path):
    done, lines = run_grid(tmp_path)
    assert done.returncode == 0, done.stderr
    assert calls(lines) == ["compare --out runs --seeds 1 --methods a --set a.x=1",
                            "compare --out runs --seeds 1 --methods b",
                            "compare --out runs --seeds 2 --methods a --set a.x=1",
                            "compare --out runs --seeds 2 --methods b"]
    exported = sorted(path.parent.name for path in (tmp_path / "docs" / "results" / "g").rglob("result.json"))
    assert exported == sorted(f"cell-{line[1]}" for line in lines if line[0] == "start")


def test_processes_runs_copies_of_one_call_at_once(tmp_path):
    done, lines = run_grid(tmp_path, PROCESSES="2")
    assert done.returncode == 0, done.stderr
    assert calls(lines) == ["compare --out runs --no-wait --seeds 2 --methods a,b --set a.x=1"] * 2
    assert [line[0] for line in lines] == ["start", "start", "end", "end"]  # both ran at once
    assert len(list((tmp_path / "docs" / "results" / "g").rglob("result.json"))) == 2  # exported after both
    assert not [p.name for p in (tmp_path / "docs").rglob(".*")]  # no temporary file of the export left


def test_a_copy_goes_on_to_the_next_row_while_another_finishes_the_last(tmp_path):
    """Each copy runs every row with --no-wait: the copy whose call of the first row ends
    first starts the second row while the other is still in the first."""
    done, lines = run_grid(tmp_path, PROCESSES="2", SECOND_ROW="1", SLOW_FIRST="1")
    assert done.returncode == 0, done.stderr
    events = [(line[0], line[-1]) for line in lines]  # the last argument names the row: a.x=1 or c
    assert events.index(("start", "c")) < events.index(("end", "a.x=1"), events.index(("end", "a.x=1")) + 1)
    assert sorted(calls(lines)) == sorted(["compare --out runs --no-wait --seeds 2 --methods a,b --set a.x=1"] * 2
                                          + ["compare --out runs --no-wait --seeds 2 --methods c"] * 2)


def test_shard_runs_its_part_in_one_call(tmp_path):
    done, lines = run_grid(tmp_path, SHARD="1/2")
    assert done.returncode == 0, done.stderr
    assert calls(lines) == ["compare --out runs --shard 1/2 --seeds 2 --methods a,b --set a.x=1"]


def test_a_failed_copy_fails_the_script(tmp_path):
    done, lines = run_grid(tmp_path, PROCESSES="2", FAIL="3")
    assert done.returncode != 0 and len(calls(lines)) == 2


@pytest.mark.parametrize("env, message", [
    ({"PROCESSES": "0"}, "PROCESSES=0: allowed: a whole number >= 1"),
    ({"PROCESSES": "two"}, "PROCESSES=two: allowed: a whole number >= 1"),
    ({"PROCESSES": "2", "SHARD": "0/2"}, "SHARD=0/2 with PROCESSES=2: give one of them"),
])
def test_bad_settings_are_refused_before_any_call(tmp_path, env, message):
    done, lines = run_grid(tmp_path, **env)
    assert done.returncode == 2 and message in done.stderr and lines == []
