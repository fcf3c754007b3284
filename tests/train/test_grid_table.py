import csv
import io
import math

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
    assert len(md) == 2 + 4 and all(line.count("|") == 9 for line in md)
    assert "| digits | fc1 | ydrop | 97.00 ± 1.00 | +6.00 | +3.00 | 3 | 0.500 |" in md
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert len(parsed) == 4 and float(parsed[2]["mean"]) == 97.0 and parsed[0]["delta_none"] == ""
    tex = to_latex(rows).strip().splitlines()
    assert tex[0].startswith(r"\begin{tabular}") and tex[-1] == r"\end{tabular}"
    body = [line for line in tex if line.startswith("digits")]
    assert len(body) == 4 and all(line.count("&") == 7 and line.endswith(r"\\") for line in body)
    assert r"97.00 $\pm$ 1.00" in tex[6]


def test_plot_validation_curves(tmp_path):
    path = plot_validation_curves(HAND, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]
