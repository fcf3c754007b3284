"""`ydrop compare --shard`, `ydrop sweep` and `ydrop table` merging shards; concurrent processes."""

import json
import os
import re
import subprocess
import sys

import pytest

from ydrop.cli import main

TINY = ["--dry-run", "--no-progress", "--device", "cpu", "--set", "hidden=16,16"]


def test_shards_and_a_whole_grid_at_once_train_every_cell_exactly_once(tmp_path):
    out = tmp_path / "runs"
    compare = [sys.executable, "-m", "ydrop.cli", "compare", *TINY, "--methods", "none,dropout,ydrop", "--seeds", "2",
               "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Two shards and an unsharded run of the same grid, started together in one folder.
    procs = [subprocess.Popen(compare + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for extra in (["--shard", "0/2"], ["--shard", "1/2"], [])]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (stdout, stderr) in zip(procs, outputs):
        assert proc.returncode == 0, stderr[-3000:]
    trained = [int(re.search(r"(\d+) run\(s\) trained", stdout).group(1)) for stdout, _ in outputs]
    assert sum(trained) == 6, trained  # 3 methods x 2 seeds, each trained once in all
    assert "6 of the grid's 6 cells finished" in outputs[2][0]  # the whole-grid run waited for the shards
    results = sorted(out.rglob("result.json"))
    assert len(results) == 6
    leftovers = [p.name for p in out.rglob(".*")]
    assert leftovers == [], leftovers  # no lock or temp file
    # The tables written last hold every cell, and `ydrop table` merges the same.
    lines = [line for line in (out / "table.md").read_text().splitlines()[2:] if line.startswith("|")]
    assert len(lines) == 3 and all(line.split("|")[7].strip() == "2" for line in lines)
    merged = subprocess.run([sys.executable, "-m", "ydrop.cli", "table", str(out), "--format", "csv"],
                            capture_output=True, text=True, env=env)
    assert merged.returncode == 0 and len(merged.stdout.splitlines()) == 1 + 3
    assert {json.loads(p.read_text())["config"]["method"] for p in results} == {"none", "dropout", "ydrop"}


def test_sweep_in_two_shards_then_table(tmp_path, capsys):
    out = tmp_path / "sweep"
    sweep = ["sweep", *TINY, "--alphas", "1e-3,1e-1", "--warmups", "0,1", "--seeds", "1", "--out", str(out)]
    assert main(sweep + ["--shard", "0/2"]) == 0
    first = capsys.readouterr().out
    assert "shard 0/2: 2 run(s) trained, 0 reused; 2 of the grid's 4 cells finished" in first
    assert main(sweep + ["--shard", "1/2"]) == 0
    second = capsys.readouterr().out
    assert "4 of the grid's 4 cells finished" in second and second.count("**✓**") == 1
    assert (out / "sweep.md").read_text() in second and len((out / "sweep.csv").read_text().splitlines()) == 5
    assert main(["table", str(out), "--sweep", "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 5 and sum(row.endswith("True") for row in rows) == 1


@pytest.mark.parametrize("argv, message", [
    (["compare", "--shard", "2/2"], "expects I/N with 0 <= I < N"),
    (["sweep", "--shard", "a/b"], "expects I/N"),
    (["sweep", "--alphas", "1e-3,x"], "expects comma-separated numbers"),
    (["sweep", "--warmups", "1.5"], "expects comma-separated integers"),
    (["sweep", "--alphas", "2"], "--alphas must be a non-empty list of numbers in [0, 1]; got [2.0]"),
    (["sweep", "--set", "ydrop.elasticity=0.1"], "the sweep varies it; use --alphas / --warmups"),
    (["table", "/nonexistent", "--sweep", "--format", "latex"], "--sweep prints Markdown or CSV"),
])
def test_bad_values_exit_2_with_message(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(argv + ["--out", str(tmp_path)] if argv[0] != "table" else argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
