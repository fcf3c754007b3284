import re
import subprocess
import sys

import pytest

from ydrop.cli import main


@pytest.mark.parametrize("argv", [["--help"], ["compare", "--help"], ["train", "--help"], ["table", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: ydrop" in out
    if argv[0] == "compare":
        flat = " ".join(out.split())  # argparse wraps help lines at the terminal width
        assert "default: none,dropout,ydrop,excitation,activation" in flat and "default: 3" in flat


def test_help_lists_the_allowed_values_in_plain_text(capsys):
    from ydrop.data import DATASET_NAMES
    from ydrop.layers.factory import DROPOUT_METHODS
    from ydrop.models import list_models

    for command, option in (("compare", "--methods"), ("train", "--method"), ("sweep", None)):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        flat = " ".join(capsys.readouterr().out.split())
        assert "``" not in flat  # no raw reStructuredText markup from docstrings
        assert "dataset, one of: " + ", ".join(DATASET_NAMES) in flat
        assert "model, one of: " + ", ".join(list_models()) in flat
        if option:
            assert ", ".join(DROPOUT_METHODS) in flat
        for flag in ("--threads N", "--tensorboard", "--mirror URL", "--no-download"):
            assert flag in flat


@pytest.mark.parametrize("argv, message", [
    (["compare", "--methods", "none,foo"], "--methods: unknown method(s) 'foo'; allowed: none, dropout"),
    (["train", "--method", "foo"], "--method: unknown method(s) 'foo'; allowed: none, dropout"),
    (["train", "--method", ""], "--method must name a method, one of: none, dropout"),
    (["train", "--epochs", "0"], "--epochs must be an integer >= 1; got 0"),
    (["compare", "--threads", "0"], "--threads must be an integer >= 1; got 0"),
    (["train", "--model", "fcx"], "--model must be one of 'fc1', 'fc2'"),
    (["train", "--dataset", "foo"], "argument --dataset: invalid choice: 'foo' (choose from 'mnist'"),
    (["train", "--out", ""], "--out must be a non-empty path string; got ''"),
    (["train", "--mirror", ""], "--mirror must be a base URL string"),
    (["compare", "--set", "lr=-1"], "--set lr=-1: lr must be a number > 0"),
    (["compare", "--set", "nonsense"], "--set expects key=value"),
    (["compare", "--set", "ydrop.elasticity=7"], "--set ydrop.elasticity=7: elasticity must be"),
    (["train", "--set", "hidden=16"], "--set hidden=16: hidden must be"),
    (["train", "--seed", "-1"], "--seed must be"),
    (["table", "/nonexistent/folder"], "RUNS_DIR '/nonexistent/folder' is not a folder; allowed: a folder holding "
                                       "finished runs (their result.json) in it or below it, such as the --out folder "
                                       "of ydrop compare, sweep or train"),
    # every --set error starts with the item as typed
    (["train", "--method", "ydrop", "--set", "ydrop.score=nosuch"],
     "error: --set ydrop.score=nosuch: score='nosuch' is not a registered score; registered: activation"),
    (["train", "--set", "=1"], "error: --set =1: the key before '=' is empty; expected key=value"),
    (["train", "--method", "ydrop", "--set", "ydrop.=1"], "error: --set ydrop.=1: the key after 'ydrop.' is empty"),
    (["compare", "--methods", "none", "--set", "dropout.p=0.3"],
     "error: --set dropout.p=0.3: method 'dropout' is not run here (methods: none)"),
    (["train", "--method", "ydrop", "--set", "lr=0.1", "--set", "ydrop.lr=1"],
     "error: --set ydrop.lr=1: dropout method 'ydrop' got unknown keyword argument 'lr'"),
    (["train", "--method", "ydrop", "--set", "ydrop.p_low_max=0.05"],
     "error: --set ydrop.p_low_max=0.05: mu_low must be <= p_low_max = 0.05"),
    # optimizer settings that train to NaN are refused
    (["train", "--set", "momentum=2"], "error: --set momentum=2: momentum must be a number in [0, 1) or None; got 2"),
    (["train", "--set", "momentum=1.0"], "error: --set momentum=1.0: momentum must be a number in [0, 1)"),
    (["train", "--set", "weight_decay=-1e-4"], "error: --set weight_decay=-1e-4: weight_decay must be a number >= 0"),
    # a layer built for units its place does not have fails before training, not after the warm-up
    (["train", "--method", "ydrop", "--set", "ydrop.num_units=3"],
     "error: --set ydrop.num_units=3: num_units must be the number of units of every place the method is put "
     "(256 here), or be left out"),
    (["compare", "--methods", "dropout,information", "--set", "information.num_units=3"],
     "error: --set information.num_units=3: num_units must be the number of units"),
    (["table", "."], "RUNS_DIR '.' holds no finished run (no result.json written by ydrop in it or below it)"),
    (["table", ".", "."], "RUNS_DIR '.', '.' hold no finished run (no result.json written by ydrop in it or below"),
    (["table", ".", "/nonexistent/folder"], "RUNS_DIR '/nonexistent/folder' is not a folder; allowed: a folder"),
    (["table", ".", "--plot", "curves.foo"],
     "--plot 'curves.foo': matplotlib writes no '.foo' files; allowed suffixes: ."),
])
def test_bad_values_exit_2_naming_the_option_as_typed(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert "max_epochs" not in err and "data_dir" not in err  # field names the user never typed
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


@pytest.mark.parametrize("key", ["epochs", "width"])
def test_an_unknown_plain_set_key_lists_the_model_options_and_the_config_fields(key, capsys, tmp_path, monkeypatch):
    """A plain --set key=value sets a config field, else a model option: the error lists both."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["train", "--set", f"{key}=3"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    assert err.startswith(f"ydrop train: error: --set {key}=3: model 'fc1' got unknown keyword argument '{key}'; "
                          "it accepts: hidden, width_multiplier, dropout_at; ")
    assert f"nor is '{key}' a config field, which a plain --set key=value sets: " in err
    for field in ("lr", "momentum", "patience", "max_epochs (--epochs)", "dataset (--dataset)"):
        assert f" {field}," in err or err.rstrip().endswith(f" {field}")
    assert "model_kwargs" not in err and "method_kwargs" not in err  # --set refuses those
    assert list(tmp_path.iterdir()) == []


def test_a_set_num_units_that_fits_its_places_trains(tmp_path, capsys):
    assert main(["train", "--dry-run", "--method", "ydrop", "--out", str(tmp_path), "--no-progress",
                 "--set", "hidden=8,8", "--set", "ydrop.num_units=8"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["sweep", "--alphas", "2"], "error: --alphas must be a non-empty list of numbers in [0, 1]; got [2.0]"),
    (["sweep", "--warmups", "-1"], "error: --warmups must be a non-empty list of integers >= 0; got [-1]"),
    (["sweep", "--set", "ydrop.elasticity=0.1"], "error: --set ydrop.elasticity=...: the sweep varies it"),
    (["train", "--set", "momentum=2"], "error: --set momentum=2: momentum must be"),
    (["compare", "--methods", "ydrop", "--set", "ydrop.num_units=3"], "error: --set ydrop.num_units=3: "),
])
def test_a_usage_error_on_a_busy_machine_comes_without_the_busy_warning(argv, message, tmp_path, monkeypatch,
                                                                         capsys):
    from ydrop.train import threads

    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.9, 1.0, 1.0))
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main([*argv, "--threads", "2", "--dry-run", "--no-progress"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err
    assert "busy" not in err and err.startswith(f"ydrop {argv[0]}: error: ")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("download", ["--no-download", "--mirror=http://127.0.0.1:9/nothing"])
def test_a_missing_dataset_fails_with_cli_advice_and_leaves_nothing_on_disk(download, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["train", "--dataset", "mnist", "--data-dir", "data", "--out", "runs", "--no-progress", download])
    err = capsys.readouterr().err
    assert info.value.code == 1 and "Traceback" not in err
    assert "dataset files not found under data/mnist" in err and "pass --mirror URL" in err
    assert "download=True" not in err and "mirror=" not in err  # Python arguments, not the CLI's options
    assert ("because of --no-download" in err) == (download == "--no-download")
    assert list(tmp_path.iterdir()) == []  # no run folder, no config.json, no empty data/mnist/


def test_threads_are_set_for_the_run_and_restored(tmp_path, monkeypatch, capsys):
    import torch

    import ydrop.train

    seen = []
    real = ydrop.train.train_run

    def spy(config, **kwargs):
        seen.append(torch.get_num_threads())
        return real(config, **kwargs)

    monkeypatch.setattr(ydrop.train, "train_run", spy)
    before = torch.get_num_threads()
    assert main(["train", "--dry-run", "--threads", "1", "--out", str(tmp_path), "--no-progress",
                 "--set", "hidden=8,"]) == 0
    assert seen == [1] and torch.get_num_threads() == before


def test_a_busy_machine_gets_one_line_saying_what_to_pass(tmp_path, monkeypatch, capsys):
    from ydrop.train import threads

    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.9, 1.0, 1.0))
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    assert main(["compare", "--dry-run", "--threads", "2", "--methods", "none", "--seeds", "1",
                 "--out", str(tmp_path), "--no-progress", "--set", "hidden=8,"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "busy" in line]
    assert len(lines) == 1 and "load average 1.90 on 2 cores" in lines[0] and "pass --threads 1" in lines[0]


def test_busy_warning_rule():
    from ydrop.train.threads import busy_warning

    assert busy_warning(2, load=0.2, cores=2) is None  # an idle machine
    assert busy_warning(1, load=1.0, cores=2) is None  # one core busy, one thread: fits
    assert "pass --threads 1 (now 2)" in busy_warning(2, load=1.0, cores=2)
    assert "pass --threads 4 (now 8)" in busy_warning(8, load=4.0, cores=8)
    assert "expect slower epochs" in busy_warning(1, load=2.5, cores=2)  # nothing fewer to suggest


def test_tensorboard_without_the_package_fails_with_the_install_hint(tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["train", "--dry-run", "--tensorboard", "--no-progress"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--tensorboard" in err and "pip install 'ydrop[tensorboard]'" in err
    assert list(tmp_path.iterdir()) == []


def test_compare_dry_run_writes_tables_and_curves(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["compare", "--dry-run", "--seeds", "2", "--methods", "none,dropout,ydrop", "--out", str(out),
                 "--no-progress", "--set", "hidden=16,16", "--tensorboard"]) == 0
    printed = capsys.readouterr().out
    assert "| digits | fc1(hidden=16x16) | ydrop |" in printed
    assert "test set: digits, 360 images, so one image is 0.28 points" in printed  # the table's notes
    for name in ("table.md", "table.csv", "table.tex", "val_curves.png"):
        assert (out / name).stat().st_size > 0
    assert len((out / "table.csv").read_text().splitlines()) == 4
    runs = sorted(p.parent for p in out.rglob("result.json"))
    assert len(runs) == 6 and all(list((run / "tensorboard").glob("events.out.tfevents.*")) for run in runs)
    # another tool's result.json in the folder is not a run
    (out / "elsewhere").mkdir()
    (out / "elsewhere" / "result.json").write_text('{"score": 1}')
    assert main(["table", str(out), "--format", "csv"]) == 0
    assert capsys.readouterr().out.count("\n") == 4
    assert main(["train", "--dry-run", "--method", "dropout", "--out", str(out), "--no-progress",
                 "--set", "hidden=16,16"]) == 0
    printed = capsys.readouterr().out
    assert "already finished" in printed
    assert re.search(r"with the weights of epoch [12], the best of 2 epoch\(s\) trained", printed)


def test_console_script_entry_point():
    proc = subprocess.run([sys.executable, "-m", "ydrop.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "compare" in proc.stdout


# ------------------------------------------------------------------ ydrop analyze


@pytest.fixture(scope="module")
def analysed_dry_runs(tmp_path_factory):
    """Dry runs of 2 methods x 1 seed, compared then analysed (compare --analyze)."""
    out = tmp_path_factory.mktemp("analyze") / "runs"
    assert main(["compare", "--dry-run", "--seeds", "1", "--methods", "none,ydrop", "--out", str(out),
                 "--no-progress", "--set", "hidden=16,16", "--analyze"]) == 0
    return out


ANALYSIS_FILES = ("table.md", "table.csv", "analysis.json", "spread.png", "removal.png", "peb_removal.png")


def test_compare_analyze_writes_the_analysis_of_the_runs(analysed_dry_runs):
    for name in ANALYSIS_FILES:
        assert (analysed_dry_runs / "analysis" / name).stat().st_size > 0
    lines = (analysed_dry_runs / "analysis" / "table.md").read_text().splitlines()
    assert len(lines) == 4 and "| none | classifier.2 (16) | 1 |" in lines[2] and "| ydrop |" in lines[3]


def test_analyze_prints_the_table_and_writes_it_with_the_plots(analysed_dry_runs, tmp_path, capsys):
    seed0 = next(analysed_dry_runs.rglob("none/seed0"))
    assert main(["analyze", str(seed0), str(analysed_dry_runs), "--layer", "classifier.2", "--repeats", "2",
                 "--out", str(tmp_path / "report"), "--device", "cpu", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| digits | fc1(hidden=16x16) | none | classifier.2 (16) | 1 |" in printed  # seed0 given twice
    assert "| digits | fc1(hidden=16x16) | ydrop | classifier.2 (16) | 1 |" in printed
    assert f"into {tmp_path / 'report'}" in printed
    for name in ANALYSIS_FILES:
        assert (tmp_path / "report" / name).stat().st_size > 0


def test_analyze_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit) as info:
        main(["analyze", "--help"])
    flat = " ".join(capsys.readouterr().out.split())
    assert info.value.code == 0 and "RUN_DIR [RUN_DIR ...]" in flat
    for default in ("(default: 25)", "(default: auto)", "(default: 0.1)", "(default: analysis/ in the common folder",
                    "(default: the model's first dropout slot", "(default: the one stored with each run)"):
        assert default in flat


@pytest.mark.parametrize("case", ["empty", "missing", "layer", "repeats", "delta"])
def test_analyze_bad_input_exits_2_naming_the_argument(case, analysed_dry_runs, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    argv, expected = {
        "empty": ([str(tmp_path / "empty")],
                  [f"RUN_DIR {str(tmp_path / 'empty')!r} holds no finished run", "allowed: a run folder holding"]),
        "missing": ([str(tmp_path / "missing")], [f"RUN_DIR {str(tmp_path / 'missing')!r} is not a folder", "allowed:"]),
        "layer": ([str(analysed_dry_runs), "--layer", "fc9"],
                  ["--layer 'fc9' is not a layer of model 'fc1(hidden=16x16)'", "allowed: features, avgpool, "]),
        "repeats": ([str(analysed_dry_runs), "--repeats", "0"], ["--repeats must be an integer >= 1, got 0"]),
        "delta": ([str(analysed_dry_runs), "--delta", "inf"], ["--delta must be a finite number >= 0, got inf"]),
    }[case]
    with pytest.raises(SystemExit) as info:
        main(["analyze", *argv, "--out", str(tmp_path / "report"), "--no-progress"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    assert err.startswith("ydrop analyze: error: ") and all(part in err for part in expected)
    assert not (tmp_path / "report").exists()  # refused before anything was written


@pytest.mark.filterwarnings("ignore:the units' signed total")  # barely trained nets
def test_table_and_analyze_name_each_unreadable_result_and_report_the_rest(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["compare", "--dry-run", "--seeds", "2", "--methods", "none", "--out", str(out), "--no-progress",
                 "--set", "hidden=8,"]) == 0
    broken = sorted(out.rglob("result.json"))[0]
    broken.write_text(broken.read_text()[:23])
    capsys.readouterr()
    for argv in (["table", str(out)], ["analyze", str(out), "--repeats", "1", "--no-progress"]):
        assert main(argv) == 0
        printed = capsys.readouterr()
        assert printed.err.startswith(f"ydrop {argv[0]}: warning: skipped a run: '{broken}' is not valid JSON")
        assert "delete it and run the command that trained the run again" in printed.err
        assert "| digits | fc1(hidden=8) | none |" in printed.out and "| 1 |" in printed.out  # the other seed
    with pytest.raises(SystemExit) as info:
        main(["compare", "--dry-run", "--seeds", "2", "--methods", "none", "--out", str(out), "--no-progress",
              "--set", "hidden=8,"])
    err = capsys.readouterr().err
    assert info.value.code == 1 and "Traceback" not in err
    assert f"ydrop compare: error: '{broken}' is not valid JSON (" in err and "delete it" in err


def test_table_keeps_runs_of_other_settings_apart_and_counts_a_copied_run_once(tmp_path, capsys):
    import shutil

    common = ["compare", "--dry-run", "--seeds", "1", "--methods", "none", "--no-progress", "--set", "hidden=8,"]
    assert main([*common, "--out", str(tmp_path / "mix" / "a")]) == 0
    assert main([*common, "--out", str(tmp_path / "mix" / "b"), "--set", "lr=0.1"]) == 0
    shutil.copytree(tmp_path / "mix" / "a", tmp_path / "mix" / "c")
    capsys.readouterr()
    assert main(["table", str(tmp_path / "mix")]) == 0
    printed = capsys.readouterr()
    lines = [line for line in printed.out.splitlines() if line.startswith("| digits")]
    assert [line.split(" | ")[2:3] + line.split(" | ")[6:7] for line in lines] == [["none [lr=0.01]", "1"],
                                                                                      ["none [lr=0.1]", "1"]]
    copy = next((tmp_path / "mix" / "c").rglob("seed0"))
    assert printed.err == (f"ydrop table: warning: left out {copy}: a copy (same config and seed) of a run that "
                           "row 'none [lr=0.01]' (digits, fc1(hidden=8)) counts already\n")
    # the three folders named one by one: the same table, the same copy left out
    assert main(["table", *(str(tmp_path / "mix" / name) for name in "abc")]) == 0
    assert capsys.readouterr() == printed


def test_the_train_line_says_still_improving_only_when_the_history_shows_it():
    from ydrop.cli.training import _run_line
    from ydrop.train import RunResult

    def result(val_losses, best_epoch, stopped_early=False, patience=10):
        return RunResult(config={"patience": patience}, history=[{"val_loss": v} for v in val_losses],
                         best_epoch=best_epoch, best_val_loss=min(val_losses), test_acc=12.5, test_loss=40.0,
                         epochs=len(val_losses), stopped_early=stopped_early, time_per_epoch=0.1, total_time=0.6,
                         versions={})

    # validation loss of `ydrop train --method dropout --set hidden=64, --set lr=50 --epochs 6`
    line = _run_line(result([44.5, 70.2, 62.7, 136.2, 231.0, 51.8], 0))
    assert "with the weights of epoch 1, the best of 6 epoch(s) trained (stopped at the epoch cap, before early " \
           "stopping triggered)" in line and "still improving" not in line
    assert "(stopped at the epoch cap, still improving)" in _run_line(result([3.0, 2.0, 1.0], 2))
    assert "(stopped early)" in _run_line(result([1.0, 2.0, 3.0], 0, stopped_early=True))
    assert "(the planned iterations done)" in _run_line(result([3.0, 2.0, 1.0], 2, patience=None))
    # diverged in its first epoch: no epoch is the best, the last weights are tested
    line = _run_line(result([float("nan")], -1, stopped_early=True))
    assert "with the last weights of 1 epoch(s) trained (stopped early; no epoch had a finite validation loss)" in line
    assert "epoch 0" not in line


def test_analyze_writes_into_analysis_in_the_common_folder_of_the_run_dirs_given(analysed_dry_runs, tmp_path,
                                                                                  capsys):
    import shutil

    given = tmp_path / "given"
    shutil.copytree(analysed_dry_runs, given, ignore=shutil.ignore_patterns("analysis"))
    assert main(["analyze", str(given), "--repeats", "1", "--device", "cpu", "--no-progress"]) == 0
    assert f"into {given / 'analysis'} (" in capsys.readouterr().out
    assert (given / "analysis" / "table.md").is_file()
    assert not list(given.rglob("fc1-*/analysis"))  # not in the folder of the runs found below it


@pytest.mark.parametrize("argv, message", [
    # a --set of a field that has an option of its own would silently lose to it, or win over it
    (["train", "--method", "none", "--set", "method=ydrop"],
     "--set method=ydrop: method is set by the option --method; use --method instead of --set"),
    (["compare", "--set", "method=ydrop"], "--set method=ydrop: method is set by the option --methods; use --methods"),
    (["sweep", "--set", "method=none"], "--set method=none: ydrop sweep trains Y-Drop (ydrop) only"),
    (["train", "--set", "seed=3"], "--set seed=3: seed is set by the option --seed; use --seed instead of --set"),
    (["sweep", "--set", "seed=3"], "--set seed=3: seed is set by the option --seeds; use --seeds instead of --set"),
    (["train", "--set", "max_epochs=1", "--epochs", "2"],
     "--set max_epochs=1: max_epochs is set by the option --epochs; use --epochs instead of --set"),
    (["compare", "--set", "dry_run=true"], "--set dry_run=true: dry_run is set by the option --dry-run"),
    (["train", "--set", "download=false"], "--set download=false: download is set by the option --no-download"),
    (["train", "--set", "protocol=excitation"], "--set protocol=excitation: protocol is set by the option --protocol"),
    # none leaves a setting to the protocol: patience=none does not turn early stopping off
    (["train", "--set", "patience=none"],
     "--set patience=none: none leaves patience to the protocol, 10 with --protocol ydrop, so early stopping stays "
     "on: it cannot be turned off in this protocol, but a patience of at least --epochs never triggers it; allowed: "
     "an integer >= 1, or no --set for the protocol's"),
    (["compare", "--protocol", "excitation", "--set", "lr=none"],
     "--set lr=none: none leaves lr to the protocol, 0.001 with --protocol excitation; allowed: a number > 0"),
])
def test_a_set_that_an_option_or_the_protocol_would_override_is_refused(argv, message, capsys, tmp_path,
                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith(f"ydrop {argv[0]}: error: {message}")
    assert list(tmp_path.iterdir()) == []


def test_a_set_none_where_none_means_off_is_taken(tmp_path, capsys):
    # the excitation protocol has no early stopping: patience None is its own value
    assert main(["train", "--dry-run", "--protocol", "excitation", "--set", "patience=none", "--set", "hidden=8,",
                 "--out", str(tmp_path), "--no-progress"]) == 0


def test_train_adds_a_seed_to_the_grid_compare_trains(tmp_path, capsys):
    """On digits, train narrows FC-1 as compare and sweep do: the same run folders."""
    out = str(tmp_path / "runs")
    assert main(["compare", "--dry-run", "--methods", "ydrop", "--seeds", "1", "--out", out, "--no-progress"]) == 0
    assert main(["train", "--dry-run", "--method", "ydrop", "--seed", "0", "--out", out, "--no-progress"]) == 0
    assert "already finished: " in capsys.readouterr().out  # compare's run, not another model's
    assert main(["train", "--dry-run", "--method", "ydrop", "--seed", "1", "--out", out, "--no-progress"]) == 0
    assert sorted(p.parent.relative_to(out).as_posix() for p in (tmp_path / "runs").rglob("result.json")) == [
        "digits/fc1-24c3beda/ydrop/seed0", "digits/fc1-24c3beda/ydrop/seed1"]
    assert main(["table", out, "--format", "csv"]) == 0
    assert "digits,fc1(hidden=256x256),ydrop,2," in capsys.readouterr().out
