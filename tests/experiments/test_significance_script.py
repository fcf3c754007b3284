"""experiments/significance.py: t-tests of each table row against its baseline row."""

from __future__ import annotations

import json
import math
import sys

import pytest

from experiment_scripts import imported_script

pytest.importorskip("scipy")


@pytest.fixture(scope="module")
def script():
    yield from imported_script("significance")


def _result(method, seed, acc, monitor="val_loss", model_kwargs=None):
    return {"config": {"dataset": "digits", "model": "fc1", "model_kwargs": model_kwargs or {}, "method": method,
                       "method_kwargs": {}, "seed": seed, "monitor": monitor}, "test_acc": acc}


def _runs(monitor, accuracies):
    return [_result(method, seed, acc, monitor) for method, accs in accuracies.items() for seed, acc in enumerate(accs)]


# Differences to dropout per seed: Excitation 1, 2, 0 (loss rule) and 2, 2, 3 (accuracy rule).
LOSS = _runs("val_loss", {"dropout": [90.0, 91.0, 92.0], "excitation": [91.0, 93.0, 92.0]})
ACCURACY = _runs("val_acc", {"dropout": [92.0, 93.0, 94.0], "excitation": [94.0, 95.0, 97.0]})


def _table(script, results, *args):
    lines = script.comparisons(script.accuracy_groups(results), *args)
    return {(line[2], line[3]): line for line in lines}


def test_each_row_against_dropout_trained_alike_with_both_tests(script):
    table = _table(script, LOSS + ACCURACY, "dropout")
    assert set(table) == {("excitation [monitor=val_loss]", "dropout [monitor=val_loss]"),
                          ("excitation [monitor=val_acc]", "dropout [monitor=val_acc]")}
    line = table["excitation [monitor=val_loss]", "dropout [monitor=val_loss]"]
    assert line[:2] == ["digits", "fc1"] and line[4:6] == ["3", "+1.00"]
    # paired: differences 1, 2, 0 -> t = mean / (sd / sqrt(n)) = sqrt(3); with 2 degrees of
    # freedom the two-sided p is 1 - t / sqrt(2 + t^2) in closed form
    t = math.sqrt(3)
    assert line[6] == f"{t:.2f} ({1 - t / math.sqrt(2 + t * t):.3f})"
    # Welch: both sides have variance 1 and 3 runs -> t = 1 / sqrt(2 / 3)
    assert line[7].startswith(f"{1 / math.sqrt(2 / 3):.2f} (")


def test_the_baseline_can_be_the_same_method_under_other_settings(script):
    table = _table(script, LOSS + ACCURACY, script.SAME, None, "monitor=val_loss")
    assert set(table) == {("dropout [monitor=val_acc]", "dropout [monitor=val_loss]"),
                          ("excitation [monitor=val_acc]", "excitation [monitor=val_loss]")}
    assert table["excitation [monitor=val_acc]", "excitation [monitor=val_loss]"][5] == "+3.33"


def test_the_baseline_can_be_another_models_row(script):
    first = [_result(m, 0, acc, model_kwargs={"dropout_at": "first"}) for m, acc in (("dropout", 95.0),
                                                                                     ("excitation", 96.0))]
    table = _table(script, LOSS + first, "dropout", "fc1")
    assert table["excitation", "fc1 dropout"][4:8] == ["1", "+5.00", "–", "–"]  # one seed: no test
    assert table["dropout", "fc1 dropout"][5] == "+4.00"
    assert ("excitation", "dropout") in table  # fc1's own rows keep their own baseline


def test_rows_without_a_baseline_and_the_baseline_itself_are_left_out(script):
    assert _table(script, LOSS, "none") == {}
    assert list(_table(script, LOSS, "dropout")) == [("excitation", "dropout")]


def test_the_command_reads_folders_together_and_refuses_empty_ones(script, tmp_path, monkeypatch, capsys):
    for i, result in enumerate(LOSS):  # dropout's runs in one folder, Excitation's in another
        folder = tmp_path / result["config"]["method"] / str(i)
        folder.mkdir(parents=True)
        (folder / "result.json").write_text(json.dumps(result))
    monkeypatch.setattr(sys, "argv", ["significance.py", str(tmp_path / "dropout"), str(tmp_path / "excitation")])
    script.main()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| dataset | model | method | vs |") and len(out) == 3
    assert out[2].startswith("| digits | fc1 | excitation | dropout | 3 | +1.00 | 1.73 (")
    (tmp_path / "empty").mkdir()
    monkeypatch.setattr(sys, "argv", ["significance.py", str(tmp_path / "empty")])
    with pytest.raises(SystemExit):
        script.main()
    assert f"no finished run (result.json) below {tmp_path / 'empty'}" in capsys.readouterr().err
