import csv
import io
import math
from pathlib import Path

import pytest

from ydrop.train import collect_results, run_grid, summarize, to_csv, to_latex, to_markdown, train_run
from ydrop.train.table import plot_validation_curves


def test_grid_skips_finished_cells(tiny):
    calls = []

    def counting(config, progress=True):
        result = train_run(config, progress=False)
        calls.append((config.method, config.seed, result.trained))
        return result

    base = tiny(max_epochs=1)
    first = run_grid(base, ["none", "dropout"], 2, progress=False, train=counting)
    assert len(first) == 4 and all(t for _, _, t in calls)
    calls.clear()
    second = run_grid(base, ["none", "dropout", "ydrop"], [0, 1], progress=False, train=counting)
    trained = [(m, s) for m, s, t in calls if t]
    assert trained == [("ydrop", 0), ("ydrop", 1)]
    assert [r.test_acc for r in second[:4]] == [r.test_acc for r in first]
    assert len(collect_results(base.out)) == 6
    assert len(collect_results(base.out, base.out)) == 12  # several folders, read in turn
    # the Python API names its own parameter (the CLI says RUNS_DIR)
    with pytest.raises(FileNotFoundError, match=r"^runs_dir '.*missing' is not a folder"):
        collect_results(base.out + "/missing")


def test_grid_method_kwargs_only_for_that_method(tiny):
    seen = []
    run_grid(tiny(), ["dropout", "ydrop"], 1, method_kwargs={"ydrop": {"elasticity": 0.01}}, progress=False,
             train=lambda c, progress: seen.append((c.method, c.method_kwargs)))
    assert seen == [("dropout", {}), ("ydrop", {"elasticity": 0.01})]
    with pytest.raises(ValueError, match="seeds"):
        run_grid(tiny(), ["dropout"], 0, progress=False)


def _result(method, acc, seed, kwargs=None, curve=(50.0, 60.0)):
    return {"config": {"dataset": "digits", "model": "fc1", "model_kwargs": {}, "method": method,
                       "method_kwargs": kwargs or {}, "seed": seed},
            "test_acc": acc, "time_per_epoch": 0.5,
            "history": [{"epoch": i, "val_acc": v} for i, v in enumerate(curve)]}


HAND = [_result("none", 90.0, 0), _result("none", 92.0, 1),
        _result("dropout", 93.0, 0), _result("dropout", 95.0, 1),
        _result("ydrop", 96.0, 0), _result("ydrop", 97.0, 1), _result("ydrop", 98.0, 2, curve=(1, 2, 3)),
        _result("ydrop", 99.0, 0, kwargs={"elasticity": 0.01})]


def test_summarize_mean_std_gains():
    rows = {r["method"]: r for r in summarize(HAND)}
    assert list(rows) == ["none", "dropout", "ydrop", "ydrop(elasticity=0.01)"]
    y = rows["ydrop"]
    assert (y["n"], y["mean"]) == (3, 97.0)
    assert y["std"] == pytest.approx(1.0)  # sample std of 96, 97, 98
    assert y["delta_none"] == pytest.approx(6.0) and y["delta_dropout"] == pytest.approx(3.0)
    assert rows["none"]["delta_none"] is None and rows["none"]["delta_dropout"] == pytest.approx(-3.0)
    assert rows["dropout"]["delta_dropout"] is None
    assert rows["ydrop(elasticity=0.01)"]["std"] is None  # one seed
    assert rows["none"]["std"] == pytest.approx(math.sqrt(2))


def test_markdown_csv_latex_shapes():
    rows = summarize(HAND)
    md = to_markdown(rows).strip().splitlines()
    table = [line for line in md if line.startswith("|")]
    assert len(table) == 2 + 4 and all(line.count("|") == 10 for line in table)
    assert "| digits | fc1 | ydrop | 97.00 ± 1.00 | +6.00 | +3.00 | 3 | 0/3 | 0.500 |" in table
    assert md[len(table)] == "" and all(line.startswith("- ") for line in md[len(table) + 1:])
    assert to_markdown(rows, notes=False).strip().splitlines() == table
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert len(parsed) == 4 and float(parsed[2]["mean"]) == 97.0 and parsed[0]["delta_none"] == ""
    assert parsed[2]["capped"] == "0" and parsed[2]["test_size"] == ""
    tex = to_latex(rows).strip().splitlines()
    assert tex[0].startswith(r"\begin{tabular}") and tex[-1] == r"\end{tabular}"
    body = [line for line in tex if line.startswith("digits")]
    assert len(body) == 4 and all(line.count("&") == 8 and line.endswith(r"\\") for line in body)
    assert r"97.00 $\pm$ 1.00" in tex[6]


def _run(method, acc, seed, times, stopped_early, patience=10, test_size=360, max_epochs=60, best_epoch=-1):
    return {"config": {"dataset": "digits", "model": "fc1", "model_kwargs": {}, "method": method,
                       "method_kwargs": {}, "seed": seed, "patience": patience, "max_epochs": max_epochs},
            "test_acc": acc, "time_per_epoch": sum(times) / len(times), "stopped_early": stopped_early,
            "test_size": test_size, "best_epoch": best_epoch % len(times),
            "history": [{"epoch": i, "val_acc": 90.0 + i, "time": t} for i, t in enumerate(times)]}


def test_the_table_marks_runs_at_the_cap_and_says_what_its_columns_mean():
    runs = [_run("dropout", 97.0, 0, [1.0, 1.0, 1.2], True), _run("dropout", 98.0, 1, [1.1, 0.9], True),
            # one slow run (another process was busy): the median ignores it, the mean would not
            _run("excitation", 90.0, 0, [1.0, 1.0, 1.0], False), _run("excitation", 92.0, 1, [30.0, 30.0], True),
            _run("excitation", 91.0, 2, [1.0, 1.0, 1.0], False, best_epoch=0)]  # at the cap, not improving
    rows = {row["method"]: row for row in summarize(runs)}
    assert (rows["dropout"]["capped"], rows["excitation"]["capped"], rows["excitation"]["improving"]) == (0, 2, 1)
    assert rows["excitation"]["time_per_epoch"] == 1.0 and rows["dropout"]["time_per_epoch"] == 1.0
    assert rows["excitation"]["test_size"] == 360
    md = to_markdown(list(rows.values()))
    assert "| digits | fc1 | excitation | 91.00 ± 1.00 | – | -6.50 | 3 | 2/3 | 1.000 |" in md
    notes = " ".join(md.split())
    assert "mean ± sample standard deviation (n - 1) over the seeds" in notes
    assert "Δ none, Δ dropout: the row's mean minus the mean of no dropout / standard dropout" in notes
    assert "runs that ended at the 60-epoch cap before early stopping triggered (rows: excitation)" in notes
    assert ("still improving (lowest validation loss in their last epoch), so maybe under-trained: "
            "excitation (1 of 2); raise --epochs") in notes
    assert "test set: digits, 360 images, so one image is 0.28 points" in notes
    assert "s / epoch: median time of one epoch" in notes
    assert "placement: shared, every method sits in the same dropout slots of the model (dropout_at=all" in notes
    improving = summarize([_run("dropout", 97.0, 0, [1.0, 1.0], False), _run("none", 96.0, 0, [1.0], False)])
    assert ("runs that ended at the 60-epoch cap before early stopping triggered, all still improving (lowest "
            "validation loss in their last epoch), so they may be under-trained (rows: dropout, none); raise --epochs"
            ) in " ".join(to_markdown(improving).split())
    # at the cap but past their best epoch: not claimed to be still improving
    spent = summarize([_run("dropout", 97.0, 0, [1.0, 1.0, 1.0], False, best_epoch=1)])
    assert (spent[0]["capped"], spent[0]["improving"]) == (1, 0)
    assert "(rows: dropout); none was still improving (lowest validation loss in its last epoch)" in " ".join(
        to_markdown(spent).split())
    # the excitation protocol has no early stopping: reaching its iterations is no cap
    fixed = [_run("excitation", 90.0, 0, [1.0], False, patience=None)]
    assert summarize(fixed)[0]["capped"] == 0


def test_the_cap_note_names_what_picked_the_best_epoch():
    def notes(*monitors):
        runs = [_run(method, 97.0, 0, [1.0, 1.0], False) for method in ("dropout", "none")[:len(monitors)]]
        for run, monitor in zip(runs, monitors):
            if monitor is not None:  # None: a result stored before the setting existed
                run["config"]["monitor"] = monitor
        return " ".join(to_markdown(summarize(runs)).split())

    assert "all still improving (lowest validation loss in their last epoch)" in notes(None)
    assert "of the best epoch (lowest validation loss) of each run" in notes(None)
    assert "of the best epoch (highest validation accuracy) of each run" in notes("val_acc")
    assert "all still improving (highest validation accuracy in their last epoch)" in notes("val_acc")
    assert "all still improving (best validation loss or accuracy in their last epoch)" in notes("val_acc", None)


def test_curve_range_separates_curves_that_end_close_together():
    import numpy as np

    from ydrop.train.table import curve_range

    climb = np.array([10.0, 60.0, 90.0, 96.0, 97.0, 97.5, 97.6, 97.8])
    slow = np.array([10.0, 40.0, 45.0, 45.0, 60.0, 80.0, 90.0, 94.0])  # still climbing at the end
    means = [climb, climb + 1.0, climb + 1.5, slow]
    low, high = curve_range(means, [np.full(8, 0.2)] * 4)
    # the final accuracies (~88-99.3) fill the axis, instead of a few % of a 10-100 one
    assert 85.0 < low < 88.0 and 99.3 < high <= 100.5 and high - low < 16
    assert curve_range([np.array([50.0, 99.9])], [np.array([0.0, 0.5])])[1] <= 100.5


def test_plot_validation_curves(tmp_path, monkeypatch):
    import matplotlib.figure

    from ydrop.train.table import BAND_CAPTION

    texts = []
    original = matplotlib.figure.Figure.text
    monkeypatch.setattr(matplotlib.figure.Figure, "text",
                        lambda self, x, y, s, *a, **k: texts.append(s) or original(self, x, y, s, *a, **k))
    path = plot_validation_curves(HAND, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]
    assert texts == [BAND_CAPTION] and "band: ± 1 sample standard deviation over seeds" in BAND_CAPTION


def test_an_unreadable_result_is_reported_by_path_and_the_others_still_collected(tiny):
    from ydrop.train import store

    base = tiny(max_epochs=1)
    run_grid(base, ["none"], 2, progress=False)
    broken = sorted(Path(base.out).rglob("result.json"))[0]
    broken.write_text(broken.read_text()[:23])  # cut short, as by a full disk
    with pytest.warns(store.UnreadableResultWarning) as caught:
        results = collect_results(base.out)
    assert [r["config"]["seed"] for r in results] == [1]
    assert len(caught) == 1 and f"'{broken}' is not valid JSON (" in str(caught[0].message)
    # whoever reads it directly (train_run on a finished run, a grid) learns which file and what to do
    with pytest.raises(ValueError, match=r"^'.*seed0/result\.json' is not valid JSON \(.*\); delete it and run "):
        store.read_json(broken)
    with pytest.raises(ValueError, match="seed0/result.json' is not valid JSON"):
        train_run(base.replace(method="none", seed=0), progress=False)
    broken.unlink()  # as the message says: the run is tested again from its checkpoint
    assert train_run(base.replace(method="none", seed=0), progress=False).epochs == 1


def _with(result, run_dir="", **config):
    return {**result, "run_dir": run_dir, "config": {**result["config"], **config}}


def _default(field):
    import dataclasses

    from ydrop.train import TrainConfig

    return {f.name: f.default for f in dataclasses.fields(TrainConfig)}[field]  # hand-made results lack the field


def test_runs_of_other_training_settings_get_rows_of_their_own_and_deltas_of_their_own():
    # a grid at lr 0.01 / 4 epochs, and next to it one at lr 0.1 / 2 epochs (seed 0 again)
    slow = [_with(_result(m, acc, seed), lr=0.01, max_epochs=4)
            for m, acc, seed in (("none", 90.0, 0), ("none", 92.0, 1), ("dropout", 93.0, 0), ("dropout", 95.0, 1))]
    fast = [_with(_result("none", 80.0, 0), lr=0.1, max_epochs=2), _with(_result("dropout", 70.0, 0), lr=0.1,
                                                                              max_epochs=2)]
    rows = {row["method"]: row for row in summarize(slow + fast)}
    assert list(rows) == ["none [lr=0.01, max_epochs=4]", "dropout [lr=0.01, max_epochs=4]",
                          "none [lr=0.1, max_epochs=2]", "dropout [lr=0.1, max_epochs=2]"]
    assert [row["n"] for row in rows.values()] == [2, 2, 1, 1]  # seed 0 of each setting once
    assert rows["none [lr=0.01, max_epochs=4]"]["mean"] == 91.0
    assert rows["dropout [lr=0.01, max_epochs=4]"]["delta_none"] == pytest.approx(3.0)  # 94 - 91, same settings
    assert rows["dropout [lr=0.1, max_epochs=2]"]["delta_none"] == pytest.approx(-10.0)  # 70 - 80
    assert rows["none [lr=0.1, max_epochs=2]"]["delta_dropout"] == pytest.approx(10.0)
    md = to_markdown(list(rows.values()))
    assert "| digits | fc1 | none [lr=0.1, max_epochs=2] | 80.00 | – | +10.00 | 1 |" in md
    assert "the same dataset and model with the same settings" in md and "never pooled" in md
    # the other fields that change results split rows too; a homogeneous folder keeps plain labels
    for field, value in (("patience", 3), ("protocol", "excitation"), ("dry_run", True), ("device", "cuda")):
        labels = [row["method"] for row in summarize(slow[:2] + [_with(slow[0], **{field: value})])]
        assert labels == [f"none [{field}={_default(field)}]", f"none [{field}={value}]"]
    assert [row["method"] for row in summarize(slow)] == ["none", "dropout"]


def test_paths_and_download_settings_do_not_split_rows_and_a_copy_of_a_run_counts_once():
    runs = [_with(_result("none", 90.0, 0), "a/none/seed0", out="a", data_dir="data"),
            _with(_result("none", 92.0, 1), "b/none/seed1", out="b", data_dir="/mnt/data", download=False,
                  mirror="http://host/mnist"),
            _with(_result("none", 90.0, 0), "c/none/seed0", out="c"),  # a copy of a/none/seed0
            _with(_result("dropout", 93.0, 0), "a/dropout/seed0", information_beta=1e-3)]  # a field older runs lack
    rows = summarize(runs)
    assert [(row["method"], row["n"], row["mean"], row["copies"]) for row in rows] == [
        ("none", 2, 91.0, ["c/none/seed0"]), ("dropout", 1, 93.0, [])]
    assert rows[1]["delta_none"] == pytest.approx(2.0)


def test_the_sweep_keeps_runs_of_other_settings_apart():
    from ydrop.train import summarize_sweep

    def run(seed, val, **config):
        return _with({**_result("ydrop", 90.0 + seed, seed, kwargs={"elasticity": 0.01, "warmup_epochs": 1}),
                      "best_epoch": 0, "history": [{"val_acc": val}]}, **config)

    rows = summarize_sweep([run(0, 80.0, lr=0.01), run(1, 82.0, lr=0.01), run(0, 99.0, lr=0.5), run(0, 99.0, lr=0.5)])
    assert [(row["model"], row["n"], row["picked"]) for row in rows] == [
        ("fc1 [lr=0.01]", 2, True), ("fc1 [lr=0.5]", 1, True)]


def test_the_plot_is_written_in_the_format_its_suffix_names(tmp_path):
    from ydrop.train.table import plot_format

    assert plot_validation_curves(HAND, tmp_path / "curves.pdf").read_bytes()[:5] == b"%PDF-"
    assert b"<svg" in plot_validation_curves(HAND, tmp_path / "curves.SVG").read_bytes()[:500]
    assert plot_validation_curves(HAND, tmp_path / "curves").read_bytes()[:4] == b"\x89PNG"  # matplotlib's default
    with pytest.raises(ValueError, match=r"^path '.*curves\.foo': matplotlib writes no '\.foo' files; allowed "
                                         r"suffixes: .*\.pdf, .*\.png, .*\.svg"):
        plot_validation_curves(HAND, tmp_path / "curves.foo")
    assert not (tmp_path / "curves.foo").exists()
    assert plot_format("x.jpg", "--plot") == "jpg"
