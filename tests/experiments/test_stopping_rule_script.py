"""experiments/stopping_rule.py on real (tiny) runs: the embedded digits, a few epochs."""

from __future__ import annotations

import json
import sys

import pytest

from experiment_scripts import imported_script
from ydrop.cli import main as ydrop_main


@pytest.fixture(scope="module")
def script():
    yield from imported_script("stopping_rule")


def test_one_line_per_row_with_the_tested_and_the_most_accurate_epoch(script, tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    # lr 0.5 on 16 units: in some run the validation loss and accuracy peak at different epochs
    assert ydrop_main(["compare", "--methods", "none,dropout", "--seeds", "2", "--epochs", "6", "--out", str(runs),
                       "--set", "hidden=16,", "--set", "lr=0.5", "--no-progress", "--threads", "1"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["stopping_rule.py", str(runs)])
    script.main()
    lines = [line.strip("| ").split(" | ") for line in capsys.readouterr().out.splitlines()[2:]]
    assert sorted(line[2] for line in lines) == ["dropout", "none"]
    for line in lines:
        results = [json.loads(path.read_text()) for path in sorted(runs.rglob(f"{line[2]}/seed*/result.json"))]
        accs = [[record["val_acc"] for record in result["history"]] for result in results]
        tested = [acc[result["best_epoch"]] for acc, result in zip(accs, results)]
        assert line[3] == "2" and float(line[4]) == pytest.approx(6.0)
        assert float(line[5]) == pytest.approx(sum(r["best_epoch"] + 1 for r in results) / 2, abs=0.05)
        assert float(line[6]) == pytest.approx(sum(tested) / 2, abs=0.005)
        assert float(line[8]) == pytest.approx(sum(max(acc) for acc in accs) / 2, abs=0.005)
        assert float(line[9]) == pytest.approx(float(line[8]) - float(line[6]), abs=0.011)
        assert float(line[9]) >= 0  # the tested epoch is one of the trained ones
    assert any(float(line[9]) > 0 for line in lines)  # the case the script is for occurs here


def test_a_folder_without_runs_is_an_error(script, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["stopping_rule.py", str(tmp_path)])
    with pytest.raises(SystemExit):
        script.main()
    assert f"no finished run (result.json) below {tmp_path}" in capsys.readouterr().err
