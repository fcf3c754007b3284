import json
import math
import os

import pytest
import torch

from ydrop.train import RunResult, run_dir, train_run
from ydrop.train import store


def _metrics(folder):
    return RunResult.from_dict(json.loads((folder / "result.json").read_text())).metrics()


@pytest.mark.parametrize("method", ["ydrop", "excitation"])
def test_same_seed_gives_identical_metrics(tiny, tmp_path, method):
    a = train_run(tiny(method=method, out=str(tmp_path / "a")), progress=False)
    b = train_run(tiny(method=method, out=str(tmp_path / "b")), progress=False)
    assert a.trained and b.trained
    assert _metrics(run_dir(a.config)) == _metrics(run_dir(b.config))
    c = train_run(tiny(method=method, seed=1, out=str(tmp_path / "c")), progress=False)
    assert c.metrics() != a.metrics()


def test_run_folder_layout_and_files(tiny):
    config = tiny(method="ydrop", method_kwargs={"elasticity": 0.01}, seed=2)
    result = train_run(config, progress=False)
    folder = run_dir(config.resolved())
    assert folder.parts[-4:] == ("digits", f"fc1-{store.kwargs_hash({'hidden': [16]})}",
                                 f"ydrop-{store.kwargs_hash({'elasticity': 0.01})}", "seed2")
    assert sorted(os.listdir(folder)) == ["checkpoint.pt", "config.json", "initial.pt", "result.json"]
    data = json.loads((folder / "result.json").read_text())
    for key in ("history", "best_epoch", "test_acc", "test_loss", "time_per_epoch", "total_time", "config", "versions"):
        assert key in data
    assert set(data["history"][0]) >= {"train_loss", "train_acc", "val_loss", "val_acc", "time"}
    assert data["versions"]["torch"] == torch.__version__
    assert json.loads((folder / "config.json").read_text()) == config.resolved().to_dict()
    assert set(torch.load(folder / "initial.pt")) == set(torch.load(folder / "checkpoint.pt", weights_only=False)["model"])
    # a finished run is loaded, not trained again
    again = train_run(config, progress=False)
    assert not again.trained and again.metrics() == result.metrics()


class Stop(Exception):
    pass


def test_resume_after_interruption_matches_uninterrupted(tiny, tmp_path, capsys):
    whole = train_run(tiny(method="ydrop", max_epochs=5, out=str(tmp_path / "whole")), progress=False)

    def kill_after_epoch_2(epoch, record, folder):
        if epoch == 2:
            raise Stop

    config = tiny(method="ydrop", max_epochs=5, out=str(tmp_path / "cut"))
    with pytest.raises(Stop):
        train_run(config, progress=False, callbacks=[kill_after_epoch_2])
    folder = run_dir(config.resolved())
    assert not (folder / "result.json").exists() and (folder / "checkpoint.pt").exists()
    capsys.readouterr()
    seen = []
    resumed = train_run(config, progress=False, callbacks=[lambda e, r, f: seen.append(e)])
    assert seen == [3, 4]
    assert resumed.metrics() == whole.metrics()
    # the run says it resumed, counting epochs from 1 like every message and table
    assert capsys.readouterr().err == f"resuming {folder} from epoch 4 of 5 (epochs 1-3 are in its checkpoint)\n"


def test_resume_message_counts_epochs_from_one():
    from pathlib import Path

    from ydrop.train.run import resume_message

    assert resume_message(Path("r"), 1, 60) == "resuming r from epoch 2 of 60 (epoch 1 is in its checkpoint)"
    assert resume_message(Path("r"), 3, None) == "resuming r from epoch 4 (epochs 1-3 are in its checkpoint)"
    assert "all 60 epochs are in its checkpoint" in resume_message(Path("r"), 60, 60)
    assert resume_message(Path("r"), 7, 60, stopped=True) == (
        "resuming r: the run stopped after epoch 7 (in its checkpoint); testing its best epoch")


def test_a_run_whose_data_is_missing_leaves_nothing_on_disk(tiny, tmp_path):
    from ydrop.data import DatasetNotFoundError

    config = tiny(dataset="mnist", data_dir=str(tmp_path / "data"), download=False, model_kwargs={})
    with pytest.raises(DatasetNotFoundError, match="download=False"):
        train_run(config, progress=False)
    assert list(tmp_path.iterdir()) == []  # no run folder with a config.json, no data/mnist/


def test_a_run_whose_model_cannot_be_built_leaves_nothing_on_disk(tiny, tmp_path):
    """Bad method kwargs fail before the run folder is written; a layer built for the
    wrong number of units (here 3 for 16) used to fail after the warm-up epochs,
    leaving a checkpoint and no result."""
    for kwargs, error in (({"num_units": 3}, "num_units must be the number of units"),
                          ({"elasticity": 2.0}, "elasticity must be")):
        with pytest.raises(ValueError, match=error):
            train_run(tiny(method="ydrop", method_kwargs=kwargs), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_early_stopping_after_patience(tiny):
    # lr so high that validation loss stops improving quickly
    result = train_run(tiny(method="none", lr=5.0, patience=2, max_epochs=30), progress=False)
    assert result.stopped_early
    assert result.epochs == result.best_epoch + 1 + 2
    losses = [h["val_loss"] for h in result.history]
    assert min(losses) == losses[result.best_epoch]
    assert all(l >= losses[result.best_epoch] for l in losses[result.best_epoch + 1:])


def test_monitor_val_acc_tests_and_stops_on_the_highest_validation_accuracy(tiny, tmp_path):
    # lr 0.1: the two monitors pick different epochs here (a loss minimum after the accuracy peak)
    by_acc = train_run(tiny(method="dropout", lr=0.1, patience=2, max_epochs=30, monitor="val_acc"), progress=False)
    accs = [h["val_acc"] for h in by_acc.history]
    assert by_acc.stopped_early and by_acc.epochs == by_acc.best_epoch + 1 + 2
    assert accs.index(max(accs)) == by_acc.best_epoch  # the first epoch at the highest accuracy
    assert by_acc.best_val_loss == by_acc.history[by_acc.best_epoch]["val_loss"]
    # The same seed trains the same epochs: the two monitors read one history.
    by_loss = train_run(tiny(method="dropout", lr=0.1, patience=30, max_epochs=by_acc.epochs,
                             out=str(tmp_path / "loss")), progress=False)
    assert [h["val_acc"] for h in by_loss.history] == accs
    losses = [h["val_loss"] for h in by_loss.history]
    assert by_loss.best_epoch == losses.index(min(losses))
    if by_loss.best_epoch == by_acc.best_epoch:
        assert by_loss.test_acc == by_acc.test_acc
    else:  # another epoch's weights were tested
        assert (by_loss.test_acc, by_loss.test_loss) != (by_acc.test_acc, by_acc.test_loss)


def test_a_run_resumed_with_monitor_val_acc_matches_an_uninterrupted_one(tiny, tmp_path):
    def config(out):
        return tiny(method="ydrop", lr=0.1, patience=2, max_epochs=8, monitor="val_acc", out=str(tmp_path / out))

    whole = train_run(config("whole"), progress=False)

    def kill_after_epoch_3(epoch, record, folder):
        if epoch == 3:
            raise Stop

    with pytest.raises(Stop):
        train_run(config("cut"), progress=False, callbacks=[kill_after_epoch_3])
    assert train_run(config("cut"), progress=False).metrics() == whole.metrics()


def test_a_diverged_run_stops_with_a_warning_and_tests_its_best_epoch(tiny):
    # lr 1e6: the loss is finite in the first epoch at best and NaN / inf soon after
    with pytest.warns(RuntimeWarning, match="diverged"):
        result = train_run(tiny(method="none", lr=1e6, patience=None, max_epochs=30), progress=False)
    losses = [h["train_loss"] for h in result.history]
    assert result.stopped_early and result.epochs < 30
    assert not math.isfinite(losses[-1]) and all(math.isfinite(l) for l in losses[:-1])
    assert result.best_epoch == 0 and math.isfinite(result.test_loss)  # epoch 0's weights, not the NaN ones


@pytest.mark.filterwarnings("ignore:.*diverged:RuntimeWarning")
@pytest.mark.parametrize("old_checkpoint", [False, True])
def test_a_diverged_run_killed_after_its_checkpoint_resumes_to_the_same_result(tiny, tmp_path, capsys, old_checkpoint):
    """The stop after a NaN / inf epoch is the checkpoint's too: resuming does not train on.
    ``old_checkpoint``: one written before the stop was stored in it."""
    def config(out):
        return tiny(method="none", lr=1e6, patience=None, max_epochs=30, out=str(tmp_path / out))

    whole = train_run(config("whole"), progress=False)
    assert whole.stopped_early and whole.epochs < 30

    def kill_when_diverged(epoch, record, folder):  # after the epoch's checkpoint, before result.json
        if not math.isfinite(record["train_loss"]):
            raise Stop

    with pytest.raises(Stop):
        train_run(config("cut"), progress=False, callbacks=[kill_when_diverged])
    folder = run_dir(config("cut").resolved())
    if old_checkpoint:
        ckpt = torch.load(folder / "checkpoint.pt", weights_only=False)
        del ckpt["stopped_early"]
        torch.save(ckpt, folder / "checkpoint.pt")
    capsys.readouterr()
    seen = []
    resumed = train_run(config("cut"), progress=False, callbacks=[lambda e, r, f: seen.append(e)])
    assert seen == []  # not one more epoch
    assert resumed.stopped_early
    # json: the history holds NaN, which is not == to itself
    assert json.dumps(resumed.metrics()) == json.dumps(whole.metrics())
    assert json.dumps(_metrics(folder)) == json.dumps(_metrics(run_dir(whole.config)))
    assert f"the run stopped after epoch {whole.epochs}" in capsys.readouterr().err


def test_host_reads_per_epoch_do_not_grow_with_the_number_of_steps(tiny, tmp_path, monkeypatch):
    """The loop keeps its loss / accuracy sums on the device: doubling the steps of an
    epoch must not add reads of tensors to the host (.item / .tolist / float()).
    ydrop's argument checks read values only where that is free (the CPU): here they
    act as on a GPU."""
    import ydrop._validation

    monkeypatch.setattr(ydrop._validation, "_reads_are_free", lambda _tensor: False)
    reads = {"n": 0}
    for name in ("item", "tolist", "__float__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            reads["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    def reads_for(batch_size):
        reads["n"] = 0
        train_run(tiny(method="ydrop", method_kwargs={"warmup_epochs": 0}, batch_size=batch_size, max_epochs=1,
                       out=str(tmp_path / str(batch_size))), progress=False)
        return reads["n"]

    reads_for(16)  # warm-up: once-per-process reads (the interpolation points, cached) happen here
    assert reads_for(64) == reads_for(32) <= 4  # per epoch: training sums, validation, test


def test_information_dropout_and_excitation_protocol(tiny):
    r = train_run(tiny(method="information", information_beta=0.1, max_epochs=2), progress=False)
    assert r.epochs == 2
    e = train_run(tiny(method="activation", protocol="excitation", iterations=25, lr_drop_iteration=15,
                       batch_size=100, max_epochs=None), progress=False)
    assert e.epochs == 3  # 1078 training digits / 100 = 11 steps per epoch: 11 + 11 + 3 iterations
    assert e.history[0]["lr"] == pytest.approx(1e-3) and e.history[-1]["lr"] == pytest.approx(1e-4)


def test_changed_config_in_same_folder_is_refused(tiny):
    train_run(tiny(max_epochs=1), progress=False)
    with pytest.raises(ValueError, match="another config.*max_epochs"):
        train_run(tiny(max_epochs=2), progress=False)


def test_atomic_writes_leave_no_temp_files(tmp_path):
    target = tmp_path / "result.json"
    store.write_json(target, {"a": 1})

    def broken(handle):
        handle.write(b"{\"partial\": ")
        raise OSError("disk full")

    with pytest.raises(OSError):
        store.atomic_write(target, broken)
    assert json.loads(target.read_text()) == {"a": 1}  # the old file, whole
    with pytest.raises(OSError):
        store.atomic_write(tmp_path / "new.json", broken)
    assert sorted(os.listdir(tmp_path)) == ["result.json"]  # no temp file, no partial new.json


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077], ids=lambda m: f"umask{m:03o}")
def test_written_files_get_the_mode_open_would_give_them(tiny, tmp_path, umask, mask):
    """Not mkstemp's 0600: a group shares a runs folder when the umask says so."""
    import stat

    umask(mask)
    config = tiny(max_epochs=1)
    train_run(config, progress=False)
    folder = run_dir(config.resolved())
    with open(tmp_path / "plain", "w"):
        pass
    expected = stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    assert expected == 0o666 & ~mask
    files = ["config.json", "initial.pt", "checkpoint.pt", "result.json"]
    assert {name: stat.S_IMODE((folder / name).stat().st_mode) for name in files} == dict.fromkeys(files, expected)
    store.atomic_write(tmp_path / "table.md", lambda f: f.write(b"| a |\n"))  # tables and plots go this way
    assert stat.S_IMODE((tmp_path / "table.md").stat().st_mode) == expected


def test_interrupted_run_leaves_no_result_or_temp_files(tiny):
    config = tiny(max_epochs=3)

    def stop(epoch, record, folder):
        raise Stop

    with pytest.raises(Stop):
        train_run(config, progress=False, callbacks=[stop])
    names = os.listdir(run_dir(config.resolved()))
    assert "result.json" not in names
    assert not [n for n in names if n.startswith(store.TMP_PREFIX)]


def test_a_run_that_takes_its_lock_removes_what_killed_writes_left(tiny):
    """A SIGKILL during an atomic write leaves ``.tmp-<file>.<8 random>`` behind; the next
    process to hold the run's lock removes those (and nothing else), one that is refused
    the lock touches nothing."""
    from ydrop.train import RunLocked
    from ydrop.train.lock import LOCK_FILE, try_lock

    config = tiny(max_epochs=2)

    def stop(epoch, record, folder):
        raise Stop

    with pytest.raises(Stop):
        train_run(config, progress=False, callbacks=[stop])
    folder = run_dir(config.resolved())
    left = [".tmp-checkpoint.pt.k3j4h5g6", ".tmp-result.json.0a1b2c3d", ".tmp-config.json.x_yz9876"]
    for name in left:
        (folder / name).write_bytes(b"\0" * 1000)
    others = [".tmp-notes.txt.abcdefgh", ".tmp-checkpoint.pt.my-own-backup", "notes.txt"]  # not ydrop's
    for name in others:
        (folder / name).write_text("keep")
    with try_lock(folder / LOCK_FILE):
        with pytest.raises(RunLocked):
            train_run(config, progress=False)
        assert set(left) <= set(os.listdir(folder))  # the holder may be writing them
    assert train_run(config, progress=False).epochs == 2
    assert sorted(n for n in os.listdir(folder) if n.startswith(".") or n == "notes.txt") == sorted(others)


def test_setting_added_later_counts_as_its_default(tiny):
    import json

    from ydrop.train import store

    config = tiny(max_epochs=1)
    train_run(config, progress=False)
    path = store.run_dir(config) / store.CONFIG_FILE
    stored = json.loads(path.read_text())
    del stored["information_beta"]  # as if the run predated this setting
    path.write_text(json.dumps(stored))
    assert train_run(config, progress=False).trained is False


def test_a_run_another_process_trains_is_not_loaded_again_and_again(tiny, monkeypatch):
    """A grid asks for a locked cell every few seconds: each ask must stay cheap (no data loading)."""
    from ydrop.train import RunLocked
    from ydrop.train import run as run_module
    from ydrop.train.lock import LOCK_FILE, try_lock

    config = tiny(max_epochs=1)
    lock = try_lock(run_dir(config.resolved()) / LOCK_FILE)  # held by this (live) process
    loads = []
    monkeypatch.setattr(run_module, "load_splits", lambda *a, **k: loads.append(1))
    try:
        with pytest.raises(RunLocked):
            train_run(config, progress=False)
    finally:
        lock.release()
    assert loads == []
