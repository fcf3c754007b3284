import pytest

from ydrop.train import TrainConfig, summarize_sweep, sweep_configs, sweep_markdown
from ydrop.train.grid import check_shard, grid_configs, shard_cells


def test_shards_partition_the_grid_stably():
    configs = grid_configs(TrainConfig(), ["none", "dropout", "ydrop"], 3)
    parts = [shard_cells(configs, (i, 4)) for i in range(4)]
    cells = [(c.method, c.seed) for part in parts for c in part]
    assert sorted(cells) == sorted((c.method, c.seed) for c in configs) and len(set(cells)) == len(configs)
    assert [(c.method, c.seed) for c in parts[1]] == [("none", 1), ("dropout", 2)]  # cells 1 and 5 of 9
    assert shard_cells(configs, None) == configs


@pytest.mark.parametrize("shard", [(2, 2), (-1, 2), (0, 0), "0/2", (0.0, 2), (True, 2)])
def test_bad_shard_is_named(shard):
    with pytest.raises(ValueError, match=r"shard must be None or \(index, count\).*0 <= index < count; got"):
        check_shard(shard)


def test_sweep_cells_in_order_with_both_settings():
    base = TrainConfig(method_kwargs={"steps": 3})
    configs = sweep_configs(base, alphas=[1e-3, 1e-2], warmups=[1, 3], seeds=2)
    assert [(c.method_kwargs["elasticity"], c.method_kwargs["warmup_epochs"], c.seed) for c in configs] == [
        (1e-3, 1, 0), (1e-3, 1, 1), (1e-3, 3, 0), (1e-3, 3, 1),
        (1e-2, 1, 0), (1e-2, 1, 1), (1e-2, 3, 0), (1e-2, 3, 1)]
    assert all(c.method == "ydrop" and c.method_kwargs["steps"] == 3 for c in configs)
    assert len(sweep_configs(TrainConfig())) == 5 * 5 * 3  # the paper's grid by default
    with pytest.raises(ValueError, match="sets elasticity, which the sweep varies"):
        sweep_configs(TrainConfig(method_kwargs={"elasticity": 0.1}))
    with pytest.raises(ValueError, match=r"warmups must be a non-empty list of integers >= 0; got \[-1\]"):
        sweep_configs(base, warmups=[-1])


def _run(alpha, k, seed, val, test):
    return {"config": {"dataset": "digits", "model": "fc1", "model_kwargs": {}, "method": "ydrop", "seed": seed,
                       "method_kwargs": {"elasticity": alpha, "warmup_epochs": k}},
            "best_epoch": 1, "history": [{"val_acc": 0.0}, {"val_acc": val}, {"val_acc": 100.0}], "test_acc": test}


def test_pick_by_validation_reports_its_test_accuracy():
    runs = [_run(1e-3, 1, 0, 90.0, 99.0), _run(1e-3, 1, 1, 92.0, 97.0),  # best test, worse validation
            _run(1e-2, 1, 0, 95.0, 80.0), _run(1e-2, 1, 1, 95.0, 82.0),  # best validation
            {"config": {"dataset": "digits", "model": "fc1", "method": "dropout", "method_kwargs": {}, "seed": 0},
             "best_epoch": 0, "history": [{"val_acc": 100.0}], "test_acc": 100.0}]  # not Y-Drop: ignored
    rows = summarize_sweep(runs)
    assert [(r["elasticity"], r["n"], r["val_mean"], r["test_mean"], r["picked"]) for r in rows] == [
        (1e-3, 2, 91.0, 98.0, False), (1e-2, 2, 95.0, 81.0, True)]
    text = sweep_markdown(rows)
    assert "alpha = 0.01, K = 1 (validation 95.00 %), test accuracy 81.00 ± 1.41 %" in text


def test_summary_groups_defaults_other_arguments_and_ties():
    import inspect

    from ydrop import YDrop

    default = {k: inspect.signature(YDrop).parameters[k].default for k in ("elasticity", "warmup_epochs")}
    defaults = _run(0, 0, 0, 80.0, 70.0)
    defaults["config"]["method_kwargs"] = None  # neither argument set: YDrop's defaults
    other = _run(1e-3, 1, 0, 80.0, 60.0)
    other["config"]["method_kwargs"]["steps"] = 3  # another Y-Drop argument: its own model row
    unfinished = _run(1e-3, 1, 2, 99.0, 99.0)
    unfinished["history"] = []  # no epoch finished: ignored
    rows = summarize_sweep([_run(1e-2, 1, 0, 90.0, 50.0), _run(1e-3, 1, 0, 90.0, 40.0), defaults, other, unfinished])
    assert [(r["model"], r["elasticity"], r["warmup_epochs"]) for r in rows] == sorted(
        [("fc1", 1e-3, 1), ("fc1", 1e-2, 1), ("fc1", default["elasticity"], default["warmup_epochs"]),
         ("fc1, ydrop(steps=3)", 1e-3, 1)])  # sorted by (dataset, model, alpha, K)
    assert all(r["n"] == 1 and r["val_std"] is None and r["test_std"] is None for r in rows)
    picked = [(r["model"], r["elasticity"], r["warmup_epochs"]) for r in rows if r["picked"]]
    # A tie on validation goes to the first in (alpha, K) order; each model has its own pick.
    assert picked == [("fc1", 1e-3, 1), ("fc1, ydrop(steps=3)", 1e-3, 1)]
