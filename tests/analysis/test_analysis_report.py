"""Finished runs rebuilt, analysed and reported (tables, JSON, figures)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
import statistics

import pytest
import torch

from ydrop.analysis import (
    analyse_run,
    analyze,
    check_layer,
    default_layer,
    find_runs,
    load_run,
    summarize_analyses,
    write_report,
)
from ydrop.analysis.report import to_csv, to_markdown
from ydrop.data import dataset_info, load_dataset, train_val_split
from ydrop.train import TrainConfig, run_dir, store, train_run

METHODS = ("none", "ydrop")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """2 methods x 2 seeds of dry-run FC-1 (16, 16) on digits, trained once for the module."""
    root = tmp_path_factory.mktemp("runs")
    folders = []
    for method in METHODS:
        for seed in (0, 1):
            config = TrainConfig(method=method, seed=seed, out=str(root), model_kwargs={"hidden": (16, 16)},
                                 device="cpu", dry_run=True)
            train_run(config, progress=False)
            folders.append(run_dir(config.resolved()))
    return root, folders


@pytest.fixture(scope="module")
def analyses(runs):
    _, folders = runs
    return [analyse_run(load_run(folder, device="cpu"), repeats=3) for folder in folders]


def test_find_runs_accepts_run_folders_and_roots(runs, tmp_path):
    root, folders = runs
    assert sorted(find_runs(root)) == sorted(folders)
    assert find_runs([folders[1], root]) == [folders[1]] + [f for f in sorted(folders) if f != folders[1]]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError) as info:
        find_runs([root, tmp_path / "empty"], name="RUN_DIR")
    message = str(info.value)
    assert message.startswith(f"RUN_DIR {str(tmp_path / 'empty')!r} holds no finished run") and "allowed:" in message
    with pytest.raises(ValueError, match="is not a folder; allowed: a run folder holding result.json"):
        find_runs(tmp_path / "missing")


def test_find_runs_skips_folders_of_other_tools(runs, tmp_path):
    root, folders = runs
    other = tmp_path / "other-tool" / "exp1"
    other.mkdir(parents=True)
    (other / "result.json").write_text('{"accuracy": 0.9}')  # not ydrop's: no config, no config.json
    (tmp_path / "other-tool" / "broken").mkdir()
    (tmp_path / "other-tool" / "broken" / "result.json").write_text("{not json")
    shutil.copytree(other.parent, tmp_path / "mixed" / "other-tool")
    shutil.copytree(folders[0], tmp_path / "mixed" / "a-run")
    # a result.json that is not JSON may be a run of ours cut short: skipped, but said so
    with pytest.warns(store.UnreadableResultWarning, match=r"skipped a run: '.*broken/result.json' is not valid JSON"):
        assert find_runs(tmp_path / "mixed") == [tmp_path / "mixed" / "a-run"]
    with pytest.raises(ValueError) as info, pytest.warns(store.UnreadableResultWarning):
        find_runs(tmp_path / "other-tool", name="RUN_DIR")
    message = str(info.value)
    assert message.startswith(f"RUN_DIR {str(tmp_path / 'other-tool')!r} holds no finished run")
    assert "skipped 1 folder(s) whose result.json ydrop did not write" in message and str(other) in message
    assert "config.json, initial.pt, checkpoint.pt and result.json" in message  # what a run folder holds


def test_load_run_rebuilds_the_tested_model_and_the_training_split(runs):
    _, folders = runs
    run = load_run(folders[2], device="cpu")
    checkpoint = torch.load(folders[2] / "checkpoint.pt", weights_only=False)
    torch.testing.assert_close(run.model.state_dict(), checkpoint["best"]["state"], rtol=0, atol=0)
    torch.testing.assert_close(run.initial, torch.load(folders[2] / "initial.pt"), rtol=0, atol=0)
    assert not run.model.training and type(run.model.classifier[5]).__name__ == "YDrop"
    # the validation split is the run's own
    _, val = train_val_split(load_dataset("digits", split="train"), val_fraction=run.config.val_fraction,
                             seed=run.config.seed)
    x_val = torch.cat([x for x, _ in run.val])
    assert len(x_val) == min(len(val), 3 * 256)  # a dry run: its first 3 batches
    assert torch.equal(torch.cat([y for _, y in run.val]), val.labels[: len(x_val)])
    # and the model scores on the test batches what the run recorded
    correct = sum(int((run.model(x).argmax(1) == y).sum()) for x, y in run.test)
    assert 100 * correct / sum(len(y) for _, y in run.test) == pytest.approx(run.result["test_acc"])


def test_the_default_layer_is_the_first_dropout_slot_whatever_the_method_and_placement(runs):
    info = dataset_info("digits")
    for method in ("none", "dropout", "ydrop", "excitation"):
        for placement in ({}, {"dropout_at": "first"}, {"dropout_at": "last"}):
            config = TrainConfig(method=method, model_kwargs={"hidden": (16, 16, 8), **placement})
            assert default_layer(config, info) == "classifier.2"
    config = TrainConfig(method="none", model_kwargs={"hidden": (16,)})
    assert check_layer(config, info, None) == "classifier.2"
    assert check_layer(config, info, "classifier.0") == "classifier.0"
    with pytest.raises(ValueError) as error:
        check_layer(config, info, "fc9", name="--layer")
    assert str(error.value).startswith("--layer 'fc9' is not a layer of model 'fc1(hidden=16)'; allowed: features, ")


def test_analyse_run_measures_the_first_hidden_layer(analyses):
    for analysis in analyses:
        assert (analysis.layer, analysis.feeding_layer, analysis.units) == ("classifier.2", "classifier.0", 16)
        assert set(analysis.curves) == {"random", "most", "least", "peb_most", "peb_least"}
        assert analysis.curves["random"].repeats == 3
        for curve in analysis.curves.values():
            assert curve.accuracy_mean[0] == curve.unpruned_accuracy
        assert 0 <= analysis.utilisation.neurons_on <= 16 and 0 <= analysis.conservative <= 16
        metrics = analysis.metrics()
        assert metrics["test_acc"] == analysis.curves["random"].unpruned_accuracy
        # the curve columns are areas under the mean curve over the grid's width (0 to 0.99 removed)
        most = analysis.curves["most"]
        steps = zip(most.grid, most.grid[1:], most.accuracy_mean, most.accuracy_mean[1:])
        assert metrics["auc_most"] == pytest.approx(sum((b - a) * (u + v) / 2 for a, b, u, v in steps) / 0.99)


def test_summary_rows_are_mean_and_std_over_seeds(analyses):
    rows = summarize_analyses(analyses)
    assert [row["method"] for row in rows] == list(METHODS)
    for row, group in zip(rows, (analyses[:2], analyses[2:])):
        assert row["seeds"] == 2 and row["units"] == 16
        for key in ("neurons_on", "entropy_peb", "conservative", "auc_random", "top20"):
            values = [a.metrics()[key] for a in group]
            assert row[key] == pytest.approx((statistics.fmean(values), statistics.stdev(values)))
    single = summarize_analyses(analyses[:1])
    assert single[0]["seeds"] == 1 and single[0]["neurons_on"][1] is None
    assert "(±" not in to_markdown(single).splitlines()[2]


def test_write_report_writes_tables_json_and_figures_atomically(analyses, tmp_path):
    files = write_report(analyses, tmp_path / "report")
    assert set(files) == {"table.md", "table.csv", "analysis.json", "spread.png", "removal.png", "peb_removal.png"}
    for name in ("spread.png", "removal.png", "peb_removal.png"):
        assert files[name].read_bytes()[:8] == PNG
    lines = files["table.md"].read_text().splitlines()
    assert len(lines) == 2 + len(METHODS) and "entropy of p_EB" in lines[0] and "conservative units (Δ < 0.1)" in lines[0]
    table = list(csv.DictReader(io.StringIO(files["table.csv"].read_text())))
    assert [row["method"] for row in table] == list(METHODS) and table[0]["seeds"] == "2"
    stored = json.loads(files["analysis.json"].read_text())
    assert len(stored) == 4 and stored[0]["curves"]["random"]["repeats"] == 3
    assert len(stored[0]["spread"]["mean"]) == 16
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == sorted(files)  # no temporary file left


def test_analyze_end_to_end_with_a_chosen_layer_and_the_default_folder(runs):
    root, folders = runs
    report = analyze(folders[::2], layer="classifier.2", repeats=2, device="cpu", progress=False)
    out = folders[0].parent.parent / "analysis"  # analysis/ in the common folder of the given runs
    assert report.files["table.md"] == out / "table.md"
    assert {a.layer for a in report.analyses} == {"classifier.2"}
    assert {a.feeding_layer for a in report.analyses} == {"classifier.0"}
    assert report.markdown == (out / "table.md").read_text()
    assert to_csv(report.rows) == (out / "table.csv").read_text()
    assert sorted(find_runs(root)) == sorted(folders)  # the report folder holds no run
    with pytest.raises(ValueError, match="layer 'nope' is not a layer of model"):
        analyze(root, out=root / "bad", layer="nope", progress=False)
    with pytest.raises(ValueError, match="repeats must be an integer >= 1, got 0"):
        analyze(root, out=root / "bad", repeats=0, progress=False)
    assert not (root / "bad").exists()


def test_one_set_of_figures_per_dataset_model_and_layer(analyses, tmp_path):
    other = [dataclasses.replace(a, model="fc1(hidden=8x8)") for a in analyses[:2]]
    files = write_report(analyses[:2] + other, tmp_path)
    figures = sorted(name for name in files if name.endswith(".png"))
    assert figures == sorted(f"{kind}-digits-{model}-classifier.2.png" for kind in ("spread", "removal", "peb_removal")
                             for model in ("fc1_hidden=16x16_", "fc1_hidden=8x8_"))
    assert len((tmp_path / "table.md").read_text().splitlines()) == 2 + 2


def test_runs_of_other_settings_are_other_rows_and_a_copy_of_a_run_counts_once(analyses, tmp_path):
    first, second = analyses[:2]  # no dropout, seeds 0 and 1
    assert first.config["device"] == "cpu" and first.config["dry_run"] is True  # the config it trained with
    faster = dataclasses.replace(second, config={**second.config, "lr": 0.5})
    copy = dataclasses.replace(first, run_dir="elsewhere/seed0")
    rows = summarize_analyses([first, faster, copy])
    assert [(row["method"], row["seeds"], row["copies"]) for row in rows] == [
        ("none [lr=0.01]", 1, ["elsewhere/seed0"]), ("none [lr=0.5]", 1, [])]
    assert summarize_analyses(analyses[:2])[0]["method"] == "none"  # same settings: plain label, pooled
    files = write_report([first, faster, copy], tmp_path)
    assert len(files["table.md"].read_text().splitlines()) == 2 + 2
