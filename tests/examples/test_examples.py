"""The scripts of examples/, run through their ``main(argv)`` with tiny settings.

Each run must exit with status 0, print its test accuracy (a number in [0, 100]) and,
for a method a Guide scores, say that the Guide scored at least one layer. The
CIFAR-10 example reads the real files of ``<repo>/../shared/data`` (never writing
there: ``--no-download``) and is skipped when they are absent.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"  # as tests/data/_data_formats.py


def _import(name: str):
    """examples/<name>.py as a module, imported once per test session."""
    if str(REPO / "examples") not in sys.path:  # as when run as a script: its helpers sit next to it
        sys.path.insert(0, str(REPO / "examples"))
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "examples" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _run(module, argv: list[str], capsys) -> str:
    assert module.main(argv) == 0
    return capsys.readouterr().out


def _accuracies(out: str, label: str) -> list[float]:
    values = [float(v) for v in re.findall(rf"{label}: (\d+(?:\.\d+)?) %", out)]
    assert values, f"no '{label}: N %' line in:\n{out}"
    assert all(0.0 <= v <= 100.0 for v in values), out
    return values


def _scored_layers(out: str) -> int:
    found = re.search(r"guide scored (\d+) layer", out)
    assert found, f"no 'guide scored N layer(s)' line in:\n{out}"
    return int(found.group(1))


# ---------------------------------------------------------------------- resnet_cifar10
@pytest.fixture(scope="module")
def resnet(request):
    """The example, with CIFAR-10 read once for all its tests of this module."""
    module = _import("resnet_cifar10")
    original = module.load_dataset
    module.load_dataset = functools.lru_cache(maxsize=None)(original)
    yield module
    module.load_dataset = original


CIFAR_ARGS = ["--data-dir", str(SHARED_DATA), "--no-download", "--limit", "96", "--batch-size", "32",
              "--epochs", "1", "--warmup-epochs", "0", "--no-progress", "--device", "cpu"]


@pytest.mark.skipif(not (SHARED_DATA / "cifar-10").is_dir(), reason=f"{SHARED_DATA / 'cifar-10'} is absent")
@pytest.mark.parametrize("method", ["ydrop", "excitation", "activation", "dropout"])
def test_resnet_cifar10_trains_and_reports(resnet, method, capsys):
    out = _run(resnet, CIFAR_ARGS + ["--method", method], capsys)
    _accuracies(out, "test accuracy")
    assert "96 training and 96 test images" in out
    if method in ("ydrop", "excitation"):
        # the head's dropout, scored at each of the 3 steps
        assert _scored_layers(out) == 1 and "at 3 of 3 steps" in out, out
    elif method == "activation":  # its layer scores its own input: nothing for the Guide
        assert _scored_layers(out) == 0, out
    else:  # plain nn.Dropout: no Guide at all
        assert "guide scored" not in out, out


def test_resnet_cifar10_refuses_bad_options(capsys):
    module = _import("resnet_cifar10")
    for argv, words in [
        (["--data-dir", ".", "--method", "dropot"], ["--method", "'dropot'", "'ydrop'", "'excitation'"]),
        (["--data-dir", ".", "--epochs", "0"], ["--epochs", "'0'", ">= 1"]),
        (["--data-dir", ".", "--limit", "-5"], ["--limit", "'-5'", ">= 1"]),
        (["--data-dir", ".", "--device", "tpu"], ["--device", "'tpu'", "'cpu'", "'cuda'", "'auto'"]),
        ([], ["--data-dir", "required"]),
    ]:
        with pytest.raises(SystemExit) as exc:
            module.main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert all(w in err for w in words), (argv, err)


def test_resnet_cifar10_missing_data_says_where(tmp_path, capsys):
    module = _import("resnet_cifar10")
    with pytest.raises(SystemExit) as exc:
        module.main(["--data-dir", str(tmp_path), "--no-download", "--no-progress"])
    message = str(exc.value.code)
    assert "cifar-10-python.tar.gz" in message and "--no-download" in message and str(tmp_path) in message
    assert list(tmp_path.iterdir()) == []  # nothing written


# ---------------------------------------------------------------- transformer_classifier
TRANSFORMER_ARGS = ["--limit", "64", "--batch-size", "32", "--epochs", "1", "--warmup-epochs", "0",
                    "--no-progress", "--device", "cpu"]


@pytest.mark.parametrize("method", ["ydrop", "excitation", "activation", "dropout"])
def test_transformer_classifier_trains_and_reports(method, capsys):
    module = _import("transformer_classifier")
    out = _run(module, TRANSFORMER_ARGS + ["--method", method], capsys)
    _accuracies(out, "test accuracy before training")
    _accuracies(out, "test accuracy after training")
    if method in ("ydrop", "excitation"):
        # 2 encoder layers x 3 dropouts + the head's, all scored by gradxact with the mask
        assert _scored_layers(out) == 7, out
    elif method == "activation":  # its layer scores its own input: nothing for the Guide
        assert _scored_layers(out) == 0, out
    else:  # plain nn.Dropout: no Guide at all
        assert "guide scored" not in out, out


@pytest.mark.parametrize("method", ["ydrop", "activation"])
def test_transformer_classifier_with_checkpointing_trains_as_without(method, capsys):
    """Every guided layer draws the same mask in the recomputation and Y-Drop's EMA moves
    once a step: the same seed gives the same accuracies."""
    module = _import("transformer_classifier")
    args = TRANSFORMER_ARGS + ["--method", method, "--epochs", "2"]
    plain, checkpointed = _run(module, args, capsys), _run(module, args + ["--checkpointing"], capsys)
    for label in ("test accuracy before training", "test accuracy after training"):
        assert _accuracies(checkpointed, label) == _accuracies(plain, label)
    assert _accuracies(plain, "test accuracy after training") != _accuracies(plain, "test accuracy before training")


def test_transformer_task_is_the_majority_marker():
    module = _import("transformer_classifier")
    import torch

    ids, lengths, labels = module.make_task(200, torch.Generator().manual_seed(1))
    assert ids.shape == (200, module.MAX_LEN) and labels.bincount().numel() == len(module.MARKERS)
    for seq, length, label in zip(ids, lengths, labels):
        assert (seq[length:] == module.PAD).all() and (seq[:length] != module.PAD).all()
        counts = [(seq == m).sum().item() for m in module.MARKERS]
        assert counts[label] > max(c for i, c in enumerate(counts) if i != label)


def test_transformer_classifier_refuses_bad_options(capsys):
    module = _import("transformer_classifier")
    for argv, words in [
        (["--method", "ydorp"], ["--method", "'ydorp'", "'ydrop'"]),
        (["--lr", "-1"], ["--lr", "'-1'", "> 0"]),
        (["--warmup-epochs", "x"], ["--warmup-epochs", "'x'", ">= 0"]),
    ]:
        with pytest.raises(SystemExit) as exc:
            module.main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert all(w in err for w in words), (argv, err)
