"""experiments/cnn2_cifar10_gpu.py on the CPU: the GPU script's own code path, on a tiny
fake CIFAR-10 in the official pickle format, with a few iterations."""

from __future__ import annotations

import math
import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from experiment_scripts import imported_script
from ydrop.train import store
from ydrop.train.table import collect_results, summarize

PER_BATCH = 8  # images per training batch file: 40 training images, 20 test images


@pytest.fixture(scope="module")
def script():
    yield from imported_script("cnn2_cifar10_gpu")


def _batch_bytes(rng, n):
    """One CIFAR-10 batch as the official files hold it: a dict pickled at protocol 2."""
    batch = {"batch_label": "fake", "labels": [int(v) for v in rng.integers(0, 10, n)],
             "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             "filenames": [f"img_{i}.png" for i in range(n)]}
    return pickle.dumps(batch, protocol=2)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    folder = root / "cifar-10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(_batch_bytes(rng, PER_BATCH))
    (folder / "test_batch").write_bytes(_batch_bytes(rng, 20))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}, protocol=2))
    return root


def _argv(data_dir, out, *extra):
    # CNN-2 at 1/8 of its widths (conv 12/16/32, fc 256): the same code, a few ms a step
    return ["--data-dir", str(data_dir), "--out", str(out), "--device", "cpu", "--batch-size", "10",
            "--width-multiplier", "0.125",
            "--iterations", "6", "--lr-drop", "3", "--eval-every", "3", *extra]


def _quiet(*_args, **_kwargs):
    pass


def test_four_methods_write_results_like_the_project_and_are_skipped_after(script, data_dir, tmp_path, monkeypatch):
    out = tmp_path / "runs"
    results = script.main(_argv(data_dir, out), log=_quiet)
    assert [r["config"]["name"] for r in results] == list(script.DEFAULT_METHODS)
    folders = {store.run_dir(r["config"]) for r in results}
    assert len(folders) == 4
    for result in results:
        folder = store.run_dir(result["config"])
        text = (folder / "result.json").read_text()
        assert "NaN" not in text and "Infinity" not in text  # strict JSON
        stored = store.read_json(folder / "result.json")
        assert stored["config"] == store.read_json(folder / "config.json")
        assert not list(folder.glob(".tmp-*"))  # atomic writes left no temp file
        c = stored["config"]
        assert (c["optimizer"], c["weight_decay"], c["batch_size"], c["iterations"]) == ("adam", 5e-3, 10, 6)
        assert c["augment"] is True and c["val_fraction"] == 0.0
        history = stored["history"]
        assert [h["iteration"] for h in history] == [3, 6]
        assert [h["lr"] for h in history] == [pytest.approx(1e-3), pytest.approx(1e-4)]  # dropped at iteration 3
        assert all(math.isfinite(h["train_loss"]) and 0 <= h["test_acc"] <= 100 for h in history)
        assert stored["test_acc"] == history[-1]["test_acc"] and stored["iterations"] == 6
        assert stored["epochs"] == pytest.approx(6 * 10 / 40)
        assert stored["time_per_100_iterations"] > 0 and stored["test_size"] == 20
        assert all("time" not in h for h in history)  # `ydrop table` reads "time" as one epoch's time
    # the placements: dropout at fc1 only, or at both FC layers
    by_name = {r["config"]["name"]: r["config"] for r in results}
    assert by_name["dropout-both"]["model_kwargs"] == {"width_multiplier": 0.125}
    for name in ("dropout-first", "excitation-first", "activation-first"):
        assert by_name[name]["model_kwargs"] == {"dropout_at": "first", "width_multiplier": 0.125}
    # `ydrop table` reads them
    rows = summarize(collect_results(out))
    assert sorted((row["model"], row["method"]) for row in rows) == [
        ("cnn2(dropout_at=first, width_multiplier=0.125)", "activation"),
        ("cnn2(dropout_at=first, width_multiplier=0.125)", "dropout"),
        ("cnn2(dropout_at=first, width_multiplier=0.125)", "excitation"),
        ("cnn2(width_multiplier=0.125)", "dropout")]

    # a second call trains nothing and returns the stored results
    def no_training(*_args, **_kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(script, "train_one", no_training)
    again = script.main(_argv(data_dir, out), log=_quiet)
    assert [r["test_acc"] for r in again] == [r["test_acc"] for r in results]


def test_other_settings_in_a_run_folder_are_refused(script, data_dir, tmp_path):
    out = tmp_path / "runs"
    script.main(_argv(data_dir, out, "--methods", "dropout-first"), log=_quiet)
    with pytest.raises(SystemExit, match="other settings"):
        script.main(_argv(data_dir, out, "--methods", "dropout-first", "--weight-decay", "0"), log=_quiet)


def test_runs_repeat_exactly_and_methods_share_weights_and_batches(script, data_dir, tmp_path):
    args = script.parse_args(_argv(data_dir, tmp_path, "--iterations", "2", "--eval-every", "2"))
    device = torch.device("cpu")
    train, test = script.load_device_data(str(data_dir), device)
    assert train.images.dtype == torch.uint8 and len(train) == 5 * PER_BATCH and len(test) == 20
    first = script.train_one(script.run_config(args, "excitation-first", 0, device), train, test, device, log=_quiet)
    second = script.train_one(script.run_config(args, "excitation-first", 0, device), train, test, device, log=_quiet)
    strip = lambda r: [{k: v for k, v in h.items() if k != "elapsed"} for h in r["history"]]  # noqa: E731
    assert strip(first) == strip(second)
    # the same seed gives the same initial weights whatever the method and placement
    kw = dict(num_classes=10, in_shape=(3, 32, 32), width_multiplier=0.125)
    torch.manual_seed(0)
    a = script.ydrop.models.create("cnn2", dropout="dropout", dropout_at="first", **kw)
    torch.manual_seed(0)
    b = script.ydrop.models.create("cnn2", dropout="excitation", **kw)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_bf16_and_channels_last_run(script, data_dir, tmp_path):
    results = script.main(_argv(data_dir, tmp_path, "--methods", "excitation-first,activation-first", "--bf16",
                                "--channels-last", "--iterations", "3", "--eval-every", "3"), log=_quiet)
    for result in results:
        assert result["config"]["bf16"] and result["config"]["channels_last"]
        assert math.isfinite(result["history"][-1]["train_loss"])


def test_no_host_read_per_step(script, data_dir, tmp_path, monkeypatch):
    """Host reads of tensor values (item, tolist, bool, float, int, numpy) do not grow with
    the number of iterations: the loop reads metrics only at evaluations. ydrop's
    argument checks read values only where that is free (the CPU): here they act as
    on a GPU."""
    import ydrop._validation

    device = torch.device("cpu")
    train, test = script.load_device_data(str(data_dir), device)
    counts = []
    for iterations in (4, 8):
        args = script.parse_args(_argv(data_dir, tmp_path, "--iterations", str(iterations), "--eval-every", "100"))
        config = script.run_config(args, "excitation-first", 0, device)
        calls = []
        monkeypatch.setattr(ydrop._validation, "_reads_are_free", lambda _tensor: False)
        for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy", "cpu"):
            original = getattr(torch.Tensor, name)

            def spy(self, *a, _original=original, _name=name, **k):
                calls.append(_name)
                return _original(self, *a, **k)

            monkeypatch.setattr(torch.Tensor, name, spy)
        script.train_one(config, train, test, device, log=_quiet)
        monkeypatch.undo()
        counts.append(len(calls))
    assert counts[0] == counts[1], counts


def test_drop_rate_reaches_the_layers(script, data_dir, tmp_path):
    args = script.parse_args(_argv(data_dir, tmp_path, "--p", "0.25"))
    device = torch.device("cpu")
    config = script.run_config(args, "excitation-first", 0, device)
    assert config["method_kwargs"] == {"p": 0.25}
    assert script.run_config(args, "none", 0, device)["method_kwargs"] == {}
    model = script.ydrop.models.create("cnn2", dropout=config["method"], dropout_kwargs=config["method_kwargs"],
                                       **config["model_kwargs"])
    assert [m.p for m in model.dropout_modules()] == [0.25]


def test_bad_arguments_are_named(script, capsys):
    with pytest.raises(SystemExit):
        script.parse_args(["--methods", "excitation-last"])
    assert "--methods" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.parse_args(["--iterations", "0"])
    assert "--iterations" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.parse_args(["--p", "1"])
    assert "--p" in capsys.readouterr().err


@pytest.mark.parametrize("variable, value", [("SHARD", "0/2"), ("PROCESSES", "2")])
def test_the_shell_wrapper_refuses_several_processes_rather_than_racing(variable, value):
    # The .py has no run locks: two processes would train and write the same cells.
    wrapper = Path(__file__).resolve().parents[2] / "experiments" / "cnn2_cifar10_gpu.sh"
    done = subprocess.run(["bash", str(wrapper)], env={**os.environ, variable: value, "PYTHON": "false"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and f"{variable}={value}" in done.stderr and "is not supported" in done.stderr
