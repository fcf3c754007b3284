"""experiments/rescale_factor.py on real (tiny) runs: the embedded digits, 1 epoch."""

from __future__ import annotations

import sys

import pytest

from experiment_scripts import imported_script
from ydrop.cli import main as ydrop_main


@pytest.fixture(scope="module")
def script():
    yield from imported_script("rescale_factor")


def test_one_row_per_dropout_layer_of_every_run_with_weights(script, tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    assert ydrop_main(["compare", "--methods", "none,dropout,activation", "--seeds", "1", "--epochs", "1",
                       "--out", str(runs), "--no-progress", "--threads", "1"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["rescale_factor.py", str(runs), "--batches", "2"])
    script.main()
    table = capsys.readouterr().out
    script.main()
    assert capsys.readouterr().out == table  # seeded masks: a re-run gives the same table
    rows = [line for line in table.splitlines() if line.startswith("| fc1")]
    # two hidden layers each for dropout and Activation Dropout; "none" has no layer to measure
    assert [row.split(" | ")[1] for row in rows] == ["activation"] * 2 + ["dropout"] * 2
    for row in rows:
        cells = row.strip("| ").split(" | ")
        train_scale, kept_share, kept_scale = float(cells[7]), float(cells[5]), float(cells[6])
        assert train_scale == pytest.approx(kept_share * kept_scale, abs=2e-3)  # rounded to 3 digits
        if cells[1] == "dropout":
            assert train_scale == pytest.approx(1.0, abs=0.05)
        else:
            assert train_scale < 1.0  # N / kept counts the off units as kept
