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
