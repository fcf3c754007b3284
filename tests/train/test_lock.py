import json
import os
import subprocess
import sys

import pytest

from ydrop.train import RunLocked, run_configs, train_run
from ydrop.train.lock import LOCK_FILE, lock_holder, try_lock, wait_lock
from ydrop.train.store import run_dir


def test_second_taker_is_refused_until_release(tmp_path):
    path = tmp_path / "cell" / LOCK_FILE
    first = try_lock(path)
    assert first is not None and lock_holder(path)["pid"] == os.getpid()
    assert try_lock(path) is None  # held by a live process (this one)
    first.release()
    assert not path.exists()
    with try_lock(path) as again:
        assert again is not None
    assert not path.exists()


def _write_lock(path, host, pid, age=0.0):
    path.write_text(json.dumps({"host": host, "pid": pid, "token": "t", "time": 0}))
    if age:
        stamp = path.stat().st_mtime - age
        os.utime(path, (stamp, stamp))


def test_stale_locks_are_broken_live_ones_kept(tmp_path):
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = tmp_path / LOCK_FILE
    _write_lock(path, socket.gethostname(), dead.pid)  # a dead owner on this host
    taken = try_lock(path)
    assert taken is not None and lock_holder(path)["pid"] == os.getpid()
    taken.release()
    _write_lock(path, "another-host", 1, age=30.0)  # another host, recent heartbeat: alive
    assert try_lock(path, stale_after=60.0) is None
    _write_lock(path, "another-host", 1, age=120.0)  # no heartbeat for too long: abandoned
    assert try_lock(path, stale_after=60.0) is not None
    assert [p.name for p in tmp_path.iterdir()] == [LOCK_FILE]  # nothing left aside


def test_heartbeat_and_release_only_own_lock(tmp_path, monkeypatch):
    from ydrop.train import lock as lock_module

    path = tmp_path / LOCK_FILE
    lock = try_lock(path)
    old = path.stat().st_mtime - 500
    os.utime(path, (old, old))
    lock.heartbeat()
    assert path.stat().st_mtime == old  # just taken: not touched again so soon
    monkeypatch.setattr(lock_module, "HEARTBEAT_EVERY", 0.0)
    lock.heartbeat()
    assert path.stat().st_mtime > old + 400
    _write_lock(path, "another-host", 1)  # someone broke ours and took it
    lock.release()
    assert lock_holder(path)["host"] == "another-host"


def test_wait_lock_times_out_naming_the_holder(tmp_path):
    path = tmp_path / LOCK_FILE
    _write_lock(path, "another-host", 7)
    with pytest.raises(TimeoutError, match="another-host"):
        wait_lock(path, timeout=0.1, stale_after=3600)
    with pytest.raises(ValueError, match="stale_after must be .* > 0; got 0"):
        try_lock(path, stale_after=0)


def test_locked_run_is_refused_then_trained_after_release(tiny):
    config = tiny(max_epochs=1)
    folder = run_dir(config.resolved())
    lock = try_lock(folder / LOCK_FILE)
    with pytest.raises(RunLocked, match="being trained by another process"):
        train_run(config, progress=False)
    assert not (folder / "config.json").exists()
    lock.release()
    assert train_run(config, progress=False).trained
    assert not (folder / LOCK_FILE).exists()


def test_run_configs_does_other_cells_first_then_waits_for_locked_ones(tiny):
    configs = [tiny(seed=s) for s in range(3)]
    calls = []

    def train(config, progress):
        calls.append(config.seed)
        if config.seed == 0 and calls.count(0) < 3:
            raise RunLocked("busy")  # another process holds cell 0 for two looks
        return config.seed

    assert run_configs(configs, progress=False, train=train, poll=0) == [0, 1, 2]
    assert calls == [0, 1, 2, 0, 0]


def test_run_configs_without_wait_leaves_locked_cells_to_their_holder(tiny):
    configs = [tiny(seed=s) for s in range(3)]
    calls = []

    def train(config, progress):
        calls.append(config.seed)
        if config.seed == 1:
            raise RunLocked("busy")  # another process holds cell 1 throughout
        return config.seed

    assert run_configs(configs, progress=False, train=train, poll=0, wait=False) == [0, 2]
    assert calls == [0, 1, 2]  # one look at the locked cell, no wait


def test_compare_no_wait_trains_the_free_cells_and_says_what_it_left(tiny, capsys):
    from ydrop.cli import main

    config = tiny(max_epochs=1, model_kwargs={"hidden": (16, 16)})  # the dropout cell of seed 0 below
    with try_lock(run_dir(config.resolved()) / LOCK_FILE):
        assert main(["compare", "--methods", "none,dropout", "--seeds", "1", "--no-wait", "--out", config.out,
                     "--epochs", "1", "--device", "cpu", "--no-progress", "--set", "hidden=16,16"]) == 0
    out = capsys.readouterr().out
    assert "1 run(s) trained, 0 reused, 1 left to the processes that train them (--no-wait); " \
           "1 of the grid's 2 cells finished" in out
    assert not (run_dir(config.resolved()) / "result.json").exists()


def test_cli_train_of_a_locked_run_exits_1_naming_the_holder(tiny, capsys):
    from ydrop.cli import main

    config = tiny(max_epochs=1, model_kwargs={"hidden": (16, 16)})
    with try_lock(run_dir(config.resolved()) / LOCK_FILE):
        with pytest.raises(SystemExit) as info:
            main(["train", "--out", config.out, "--epochs", "1", "--device", "cpu", "--no-progress",
                  "--set", "hidden=16,16"])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "being trained by another process" in err and f"'pid': {os.getpid()}" in err


def test_a_lock_of_this_host_is_stale_after_long_silence_even_if_its_pid_lives(tmp_path):
    """After a reboot or a container restart the pid in an old lock belongs to another
    process (pid 1 always exists): a live pid alone must not keep a lock forever."""
    import socket

    from ydrop.train.lock import STALE_AFTER, is_held

    path = tmp_path / LOCK_FILE
    _write_lock(path, socket.gethostname(), os.getpid(), age=3 * 86400.0)  # a live pid, silent 3 days
    assert not is_held(path)
    taken = try_lock(path)
    assert taken is not None and lock_holder(path)["token"] != "t"
    taken.release()
    # A live owner of this host with a recent heartbeat is kept, also under a caller's
    # short limit (meant for other hosts, as the tables lock's 120 s).
    _write_lock(path, socket.gethostname(), os.getpid(), age=STALE_AFTER / 2)
    assert try_lock(path, stale_after=120.0) is None and is_held(path, stale_after=120.0)


def test_a_run_with_an_old_lock_of_a_reused_pid_is_trained(tiny):
    import socket

    config = tiny(max_epochs=1)
    folder = run_dir(config.resolved())
    folder.mkdir(parents=True)
    _write_lock(folder / LOCK_FILE, socket.gethostname(), 1, age=3 * 86400.0)
    assert train_run(config, progress=False).trained
    assert not (folder / LOCK_FILE).exists()


def test_training_refreshes_its_lock_every_epoch(tiny):
    """An epoch may take longer than the heartbeat interval allows without a beat: the
    end of every epoch refreshes the lock, whatever the step-wise throttling."""
    from ydrop.train.lock import is_held

    config = tiny(max_epochs=3)
    seen = []

    def check(epoch, record, folder):
        lock = folder / LOCK_FILE
        seen.append(is_held(lock))  # alive and fresh, as another process judges it
        old = lock.stat().st_mtime - 3 * 86400.0  # as if the next epoch stalled for days
        os.utime(lock, (old, old))

    train_run(config, progress=False, callbacks=[check])
    assert seen == [True, True, True]


def test_compare_says_once_which_cell_it_waits_for_and_who_holds_it(tiny, capsys):
    configs = [tiny(max_epochs=1, seed=s) for s in range(2)]
    folder = run_dir(configs[0].resolved())
    folder.mkdir(parents=True)
    _write_lock(folder / LOCK_FILE, "another-host", 4242)  # fresh: that process is alive
    looks = []

    def train(config, progress):
        if config.seed == 0:
            looks.append(1)
            if len(looks) == 4:  # the other process is done (and gone) after three looks
                (folder / LOCK_FILE).unlink()
        return train_run(config, progress=progress)

    results = run_configs(configs, progress=False, train=train, poll=0)
    assert [r.trained for r in results] == [True, True] and len(looks) == 4
    err = capsys.readouterr().err
    expected = f"waiting for digits/fc1/dropout/seed0 ({folder}), which another process trains (host another-host, pid 4242)"
    assert err.count("waiting for") == 1 and expected in err
