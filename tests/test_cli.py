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


@pytest.mark.parametrize("argv, message", [
    (["compare", "--methods", "none,foo"], "unknown method(s) 'foo'"),
    (["compare", "--set", "lr=-1"], "lr must be a number > 0"),
    (["compare", "--set", "nonsense"], "--set expects key=value"),
    (["compare", "--set", "ydrop.elasticity=7"], "elasticity"),
    (["train", "--set", "width=3"], "unknown keyword argument 'width'"),
    (["train", "--seed", "-1"], "--seed must be"),
    (["table", "/nonexistent/folder"], "is not a folder"),
])
def test_bad_values_exit_2_with_message(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_compare_dry_run_writes_tables_and_curves(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["compare", "--dry-run", "--seeds", "2", "--methods", "none,dropout,ydrop", "--out", str(out),
                 "--no-progress", "--set", "hidden=16,16"]) == 0
    printed = capsys.readouterr().out
    assert "| digits | fc1(hidden=16x16) | ydrop |" in printed
    for name in ("table.md", "table.csv", "table.tex", "val_curves.png"):
        assert (out / name).stat().st_size > 0
    assert len((out / "table.csv").read_text().splitlines()) == 4
    assert main(["table", str(out), "--format", "csv"]) == 0
    assert capsys.readouterr().out.count("\n") == 4
    assert main(["train", "--dry-run", "--method", "dropout", "--out", str(out), "--no-progress",
                 "--set", "hidden=16,16"]) == 0
    assert "already finished" in capsys.readouterr().out


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
    assert len(lines) == 4 and "| none | classifier.5 (16) | 1 |" in lines[2] and "| ydrop |" in lines[3]


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
                    "(default: each model's last dropout slot", "(default: the one stored with each run)"):
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
