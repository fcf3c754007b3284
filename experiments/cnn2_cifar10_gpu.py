#!/usr/bin/env python3
"""Excitation Dropout Tables 4 / 6 on one GPU: CNN-2 on CIFAR-10 (issue 20).

The Excitation Dropout paper's own experiment (Zunino et al., sec. 4 "Models trained
from scratch"): CNN-2 (``ydrop.models.create("cnn2")``, Table 1) trained from scratch
with Adam, lr 1e-3 then 1e-4 after 25K iterations, weight decay 5e-3, batch 100, 100K
iterations, on the 50K CIFAR-10 training images, tested on the 10K test images. The
methods, each a separate run per seed with the same initial weights, data order and
augmentation:

    dropout-first      standard dropout 0.5 at fc1            (paper: 80.13)
    dropout-both       standard dropout 0.5 at fc1 and fc2    (paper: 80.80)
    excitation-first   Excitation Dropout, P = 0.5, at fc1    (paper: 81.94)
    activation-first   Activation Dropout, P = 0.5, at fc1    (paper: 81.33)
    (also: none, excitation-both, activation-both)

``--p 0.25`` / ``--p 0.75`` give the other columns of Table 4 (paper, CIFAR-10:
first fc 79.16 / 81.19, both fcs 79.47 / 81.72, Excitation 81.38 / 81.55).

Built for speed on one GPU, with the same code path on the CPU:

* the whole dataset lives on the device as uint8 (150 MB for CIFAR-10's training set);
* each batch is gathered, augmented (random crop with padding 4 + horizontal flip,
  ``ydrop.data.PadCropFlip`` with a generator on the device) and normalised on the
  device;
* no host synchronisation per step: no ``.item()``, no Python branch on a tensor;
  loss and accuracy are summed on the device and read once per ``--eval-every``
  iterations, together with the test metrics;
* optional ``--bf16`` (autocast for the whole training step, including Excitation
  Dropout's EB pass, which runs inside the training forward) and ``--channels-last``;
  Adam is torch's fused kernel.

Runs are written like the project's: ``OUT/cifar10/cnn2[-<hash>]/<method>/seed<k>/``
with ``config.json`` and, last, ``result.json`` (both written to a temp file then
``os.replace``d), so ``ydrop table OUT`` prints the table. A finished run is skipped
when the script is run again; an interrupted one starts over (no checkpoints: a run
takes minutes on a GPU).

    python experiments/cnn2_cifar10_gpu.py --data-dir ../shared/data --out runs/cnn2-cifar10-gpu \
        --device cuda --bf16 --channels-last
    python experiments/cnn2_cifar10_gpu.py --iterations 20 --eval-every 10 --device cpu \
        --out runs/cnn2-smoke      # smoke run: its own --out, as a run folder holds one setting
"""

from __future__ import annotations

import argparse
import functools
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import ydrop
from ydrop.data import PadCropFlip, load_dataset
from ydrop.train import store

# name -> (dropout method, dropout_at); "all" is the model's default (both FC layers).
METHODS: dict[str, tuple[str, str]] = {
    "none": ("none", "all"),
    "dropout-first": ("dropout", "first"),
    "dropout-both": ("dropout", "all"),
    "excitation-first": ("excitation", "first"),
    "excitation-both": ("excitation", "all"),
    "activation-first": ("activation", "first"),
    "activation-both": ("activation", "all"),
}
DEFAULT_METHODS = ("dropout-first", "dropout-both", "excitation-first", "activation-first")
# The paper's CIFAR-10 numbers (Table 6 top; Table 4 at P = p = 0.5), for the printout.
PAPER = {"dropout-first": 80.13, "dropout-both": 80.80, "activation-first": 81.33, "excitation-first": 81.94}
# Settings that do not change what a run computes: a stored run with other values still counts.
NEUTRAL = ("out", "data_dir", "entry")


# ---------------------------------------------------------------------------- config
def run_config(args: argparse.Namespace, name: str, seed: int, device: torch.device) -> dict[str, Any]:
    """The resolved settings of one run, as written to config.json (the project's keys
    where they mean the same, so ``ydrop table`` reads it)."""
    method, dropout_at = METHODS[name]
    return dict(
        dataset="cifar10", model="cnn2", method=method,
        method_kwargs={} if method == "none" or args.p == 0.5 else {"p": args.p},
        model_kwargs={**({} if dropout_at == "all" else {"dropout_at": dropout_at}),
                      **({} if args.width_multiplier == 1.0 else {"width_multiplier": args.width_multiplier})},
        seed=seed, data_dir=str(args.data_dir), out=str(args.out), device=device.type,
        protocol="excitation", optimizer="adam", lr=args.lr, momentum=0.0, weight_decay=args.weight_decay,
        batch_size=args.batch_size, iterations=args.iterations, lr_drop_iteration=args.lr_drop,
        lr_gamma=args.lr_gamma,
        val_fraction=0.0,  # none held out: the paper trains on all 50K images and tests on the 10K
        augment=not args.no_augment, eval_every=args.eval_every, bf16=args.bf16,
        channels_last=args.channels_last, name=name, entry="experiments/cnn2_cifar10_gpu.py",
    )


def _differing_keys(stored: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """The settings (NEUTRAL aside) in which a stored run's config differs from ``config``."""
    return sorted(k for k in set(stored) | set(config) if k not in NEUTRAL and stored.get(k) != config.get(k))


# ------------------------------------------------------------------------------ data
class DeviceData:
    """A dataset split held on the device: uint8 images (N, C, H, W) and int64 labels."""

    def __init__(self, dataset: Any, device: torch.device) -> None:
        # load_dataset gives float32 in [0, 1] made from uint8 / 255: round back, exactly.
        self.images = (dataset.images * 255).round_().to(torch.uint8).to(device)
        self.labels = dataset.labels.to(device)
        info = dataset.info
        self.mean = torch.tensor(info.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(info.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.num_classes, self.in_shape = info.num_classes, tuple(info.in_shape)

    def __len__(self) -> int:
        return self.labels.shape[0]

    def prepare(self, images: Tensor, channels_last: bool) -> Tensor:
        x = (images.float().div_(255) - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def load_device_data(data_dir: str, device: torch.device) -> tuple[DeviceData, DeviceData]:
    train = load_dataset("cifar10", root=data_dir, split="train", download=False, progress=False)
    test = load_dataset("cifar10", root=data_dir, split="test", download=False, progress=False)
    return DeviceData(train, device), DeviceData(test, device)


# ---------------------------------------------------------------------------- one run
def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def evaluate(model: nn.Module, data: DeviceData, config: dict[str, Any], device: torch.device,
             batch: int = 1000) -> Tensor:
    """(loss sum, correct) over ``data`` in eval mode, as one float64 tensor on the device."""
    model.eval()
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    with torch.no_grad(), _autocast(device, config["bf16"]):
        for start in range(0, len(data), batch):
            x = data.prepare(data.images[start:start + batch], config["channels_last"])
            y = data.labels[start:start + batch]
            logits = model(x).float()
            sums += torch.stack([F.cross_entropy(logits, y, reduction="sum").double(),
                                 (logits.argmax(1) == y).sum().double()])
    return sums


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Stopwatch:
    """Training seconds and evaluation seconds, kept apart. The device is synchronised
    at each switch (only there: at evaluations), so a GPU's queued work is counted on
    the side that queued it."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.train_time, self.eval_time = 0.0, 0.0
        self._paused_at = 0.0
        _sync(device)
        self._started = time.perf_counter()

    def pause(self) -> None:
        """Training stops here, for an evaluation."""
        _sync(self.device)
        self._paused_at = time.perf_counter()
        self.train_time += self._paused_at - self._started

    def resume(self) -> None:
        """Training goes on here; the time since `pause` was evaluation."""
        _sync(self.device)
        self._started = time.perf_counter()
        self.eval_time += self._started - self._paused_at


class _TrainSums:
    """Train loss sum and correct since the last evaluation, on the device; the count on
    the host (a tensor made from a Python number would be a host-to-device copy, and a
    blocking one, every step)."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(2, dtype=torch.float64, device=device)
        self.count = 0

    def add(self, loss: Tensor, logits: Tensor, y: Tensor) -> None:
        with torch.no_grad():  # on the device; read at the next evaluation only
            self.sums += torch.stack([loss.detach().double() * y.shape[0], (logits.detach().argmax(1) == y).sum().double()])
        self.count += y.shape[0]

    def read_and_reset(self) -> tuple[float, float, int]:
        """(loss sum, correct, count) since the last call: a host read, for evaluations only."""
        (loss_sum, correct), count = self.sums.tolist(), self.count
        self.sums.zero_()
        self.count = 0
        return loss_sum, correct, count


def _build_model(config: dict[str, Any], train: DeviceData, device: torch.device) -> nn.Module:
    """CNN-2 with the run's dropout method and placement, on the device (channels-last
    if asked); its initial weights come from torch's global generator."""
    model = ydrop.models.create("cnn2", num_classes=train.num_classes, in_shape=train.in_shape,
                                dropout=config["method"], dropout_kwargs=config["method_kwargs"],
                                **config["model_kwargs"]).to(device)
    if config["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    return model


class _Run:
    """One run in progress: its model, optimizer and data stream, and what it has done so
    far. `train_one` drives it epoch by epoch; the result is read from it at the end."""

    def __init__(self, config: dict[str, Any], train: DeviceData, test: DeviceData, device: torch.device,
                 log) -> None:
        self.config, self.train, self.test, self.device, self.log = config, train, test, device, log
        seed = config["seed"]
        torch.manual_seed(seed)  # the same initial weights for every method of a seed
        self.model = _build_model(config, train, device)
        self.guide = ydrop.Guide(self.model) if ydrop.guided_layers(self.model) else None
        # The fused kernel (CUDA and CPU) keeps its step counters on the device: the
        # for-each kernel reads a host copy of each one with .item() every step.
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config["lr"],
                                          weight_decay=config["weight_decay"], fused=True)
        # Data order and augmentation from their own generator on the device: the same for
        # every method of a seed, and drawn without a host round trip.
        self.data_gen = torch.Generator(device=device)
        self.data_gen.manual_seed(seed)
        self.augment = PadCropFlip(padding=4, flip_p=0.5) if config["augment"] else None
        self.steps_per_epoch = len(train) // config["batch_size"]  # the last partial batch of an epoch is dropped
        torch.manual_seed(seed + 1)  # dropout masks: a stream apart from the weights'

        self.history: list[dict[str, Any]] = []
        self.train_sums = _TrainSums(device)
        self.lr = config["lr"]
        self.step = 0
        self.diverged = False
        self.clock = _Stopwatch(device)

    def train_epoch(self, epoch: int) -> None:
        """One pass over a fresh order of the training set, evaluating every
        ``eval_every`` iterations; stops early at ``iterations`` or on divergence."""
        if self.guide is not None:
            self.guide.set_epoch(epoch)
        order = torch.randperm(len(self.train), generator=self.data_gen, device=self.device)
        batch, iterations = self.config["batch_size"], self.config["iterations"]
        for i in range(self.steps_per_epoch):
            if self.step >= iterations:
                break
            self._train_step(order[i * batch:(i + 1) * batch])
            if self.step % self.config["eval_every"] == 0 or self.step == iterations:
                self._evaluate_and_log(epoch)
                if self.diverged:
                    break

    def _drop_lr_if_due(self) -> None:
        """lr = lr x lr_gamma from ``lr_drop_iteration`` on (set once, at that iteration)."""
        if self.config["lr_drop_iteration"] is not None and self.step == self.config["lr_drop_iteration"]:
            self.lr = self.config["lr"] * self.config["lr_gamma"]
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr

    def _train_step(self, index: Tensor) -> None:
        """One optimizer step on the training images at ``index``; no host read."""
        self._drop_lr_if_due()
        images = self.train.images.index_select(0, index)
        y = self.train.labels.index_select(0, index)
        if self.augment is not None:
            images = self.augment(images, self.data_gen)
        x = self.train.prepare(images, self.config["channels_last"])
        self.model.train()
        with _autocast(self.device, self.config["bf16"]):
            if self.guide is not None:
                self.guide.step(x, y)
            logits = self.model(x).float()
        loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        self.train_sums.add(loss, logits, y)

    def _evaluate_and_log(self, epoch: int) -> None:
        """Test the model, read the train sums (the host reads of the run), record and log
        them; marks the run diverged on a non-finite training loss."""
        self.clock.pause()
        test_sums = evaluate(self.model, self.test, self.config, self.device)
        loss_sum, correct, count = self.train_sums.read_and_reset()
        (t_loss, t_correct), t_count = test_sums.tolist(), len(self.test)
        train_loss = loss_sum / max(count, 1)
        record = dict(iteration=self.step, epoch=epoch, lr=self.lr, train_loss=train_loss,
                      train_acc=100.0 * correct / max(count, 1), test_loss=t_loss / max(t_count, 1),
                      test_acc=100.0 * t_correct / max(t_count, 1),
                      elapsed=self.clock.train_time)  # training seconds so far (not an epoch's "time")
        self.history.append(record)
        name, seed, iterations = self.config["name"], self.config["seed"], self.config["iterations"]
        self.log(f"  {name} seed {seed}: iteration {self.step}/{iterations}, train loss {train_loss:.4f}, "
                 f"test acc {record['test_acc']:.2f} %, {1000 * self.clock.train_time / self.step:.2f} ms/iteration")
        self.diverged = not math.isfinite(train_loss)
        if self.diverged:
            self.log(f"  {name} seed {seed}: training loss {train_loss} at iteration {self.step}; stopped")
            return
        self.clock.resume()

    def result(self) -> dict[str, Any]:
        """The result dict (the project's RunResult keys plus extras)."""
        history, step, clock, device = self.history, self.step, self.clock, self.device
        final = history[-1] if history else dict(test_acc=math.nan, test_loss=math.nan)
        epochs_run = step / self.steps_per_epoch
        return dict(
            config=self.config, history=history,
            test_acc=final["test_acc"], test_loss=final["test_loss"],  # the last weights, as the paper tests
            best_epoch=len(history) - 1, best_val_loss=None,  # no validation split (keys of the project's results)
            test_size=len(self.test), epochs=epochs_run, iterations=step, stopped_early=self.diverged,
            diverged=self.diverged,
            time_per_epoch=clock.train_time / epochs_run if epochs_run else math.nan,  # training only, per 50K images
            time_per_100_iterations=100 * clock.train_time / step if step else math.nan,  # Excitation Table 6's unit
            total_time=clock.train_time, eval_time=clock.eval_time,
            versions={"ydrop": ydrop.__version__, "torch": torch.__version__, "python": platform.python_version(),
                      "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()},
        )


def train_one(config: dict[str, Any], train: DeviceData, test: DeviceData, device: torch.device,
              log=print) -> dict[str, Any]:
    """Train one run; returns the result dict (the project's RunResult keys plus extras)."""
    batch = config["batch_size"]
    if len(train) < batch:
        raise ValueError(f"batch_size {batch} is larger than the training set ({len(train)} images)")
    run = _Run(config, train, test, device, log)
    epoch = 0
    while run.step < config["iterations"] and not run.diverged:
        run.train_epoch(epoch)
        epoch += 1
    return run.result()


# ------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", default="../shared/data", help="root holding cifar-10/ (archive or extracted batches)")
    p.add_argument("--out", default="runs/cnn2-cifar10-gpu", help="runs folder")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda or cuda:N")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help="comma-separated, of: " + ", ".join(METHODS))
    p.add_argument("--seeds", default="1", help="N (seeds 0..N-1) or a comma-separated list such as 3,4")
    p.add_argument("--iterations", type=int, default=100_000, help="training steps per run")
    p.add_argument("--lr-drop", type=int, default=25_000, help="lr *= lr-gamma from this iteration on")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-gamma", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-3)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=5000,
                   help="iterations between test evaluations (the only host reads)")
    p.add_argument("--p", type=float, default=0.5,
                   help="drop rate of standard dropout and base drop rate of Excitation / Activation "
                        "Dropout (Table 4 also has 0.25 and 0.75)")
    p.add_argument("--width-multiplier", type=float, default=1.0,
                   help="scale CNN-2's channels and FC widths (1 = the paper's; smaller for smoke tests)")
    p.add_argument("--no-augment", action="store_true", help="no random crop / flip")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for training and evaluation")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    return p


def _method_names(p: argparse.ArgumentParser, text: str) -> list[str]:
    """The names of ``--methods``; exits with a usage error on an unknown or missing one."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        p.error(f"--methods: unknown {unknown or names!r}; choose from {', '.join(METHODS)}")
    return names


def _seed_list(p: argparse.ArgumentParser, text: str) -> list[int]:
    """The seeds of ``--seeds``: N gives 0..N-1, a text with a comma the listed ones."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        p.error(f"--seeds must be N or a comma-separated list of integers; got {text!r}")
    if not seeds or any(s < 0 for s in seeds):
        p.error(f"--seeds must be N >= 1 or a list of integers >= 0; got {text!r}")
    seed_list = list(range(seeds[0])) if "," not in text else seeds
    if not seed_list:  # --seeds 0
        p.error(f"--seeds must be N >= 1 or a list of integers >= 0; got {text!r}")
    return seed_list


def _check_numbers(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exits with a usage error naming the first option out of its range."""
    for name in ("iterations", "batch_size", "eval_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    if not 0 < args.p < 1:
        p.error(f"--p must be in (0, 1); got {args.p}")
    if not args.width_multiplier > 0:
        p.error(f"--width-multiplier must be > 0; got {args.width_multiplier}")
    for option, value, in_range, allowed in (
        ("--lr-drop", args.lr_drop, args.lr_drop >= 0, ">= 0"),
        ("--lr", args.lr, args.lr > 0, "> 0"),
        ("--lr-gamma", args.lr_gamma, 0 < args.lr_gamma <= 1, "in (0, 1]"),
        ("--weight-decay", args.weight_decay, args.weight_decay >= 0, ">= 0"),
    ):
        if not in_range:
            p.error(f"{option} must be {allowed}; got {value}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options, checked, plus ``method_names`` and ``seed_list`` resolved from
    ``--methods`` and ``--seeds``."""
    p = _parser()
    args = p.parse_args(argv)
    args.method_names = _method_names(p, args.methods)
    args.seed_list = _seed_list(p, args.seeds)
    _check_numbers(p, args)
    return args


def resolve_device(text: str) -> torch.device:
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(text)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {text}: no CUDA device is available")
    return device


def _use_fast_cuda_kernels(device: torch.device) -> None:
    """cuDNN autotuning and TF32 matmuls / convolutions on a CUDA device."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _refuse_other_settings(folder: Path, config: dict[str, Any]) -> None:
    """Exit if the run folder holds a config or result of other settings (NEUTRAL aside)."""
    result_path = folder / store.RESULT_FILE
    for path in (result_path, folder / store.CONFIG_FILE):
        if path.exists():
            stored = store.read_json(path)
            stored = stored.get("config", stored) if path == result_path else stored
            differ = _differing_keys(stored, config)
            if differ:
                raise SystemExit(f"{folder} holds a run with other settings ({', '.join(differ)}); "
                                 "use another --out or delete that run")


def _run_or_read(args: argparse.Namespace, name: str, seed: int, device: torch.device,
                 device_data: Callable[[], tuple[DeviceData, DeviceData]], log) -> dict[str, Any]:
    """The result of one (method, seed): read if the run is finished, else trained and
    written (config.json first, result.json last, as it marks the run finished)."""
    config = run_config(args, name, seed, device)
    folder = store.run_dir(config)
    result_path = folder / store.RESULT_FILE
    _refuse_other_settings(folder, config)
    if result_path.exists():
        log(f"{name} seed {seed}: finished already, {folder}")
        return store.read_json(result_path)
    train, test = device_data()
    log(f"{name} seed {seed}: training {args.iterations} iterations on {device} -> {folder}")
    store.write_json(folder / store.CONFIG_FILE, config)
    result = train_one(config, train, test, device, log=log)
    store.write_json(result_path, result)  # written last: marks the run finished
    return result


def _table_row(name: str, runs: list[dict[str, Any]]) -> str:
    """One method's row: mean test accuracy ± sample std over its seeds, the paper's
    number, ms per training iteration."""
    accs = [r["test_acc"] for r in runs]
    mean = sum(accs) / len(accs)
    std = (sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) ** 0.5 if len(accs) > 1 else None
    ms = sum(r["time_per_100_iterations"] for r in runs) / len(runs) * 10
    return (f"| {name} | {mean:.2f}{f' ± {std:.2f}' if std is not None else ''} | {f'{PAPER[name]:.2f}' if name in PAPER else '–'} "
            f"| {ms:.2f} | {len(runs)} |")


def main(argv: Sequence[str] | None = None, log=print) -> list[dict[str, Any]]:
    """Run every (method, seed) not finished yet; returns the results of all of them."""
    args = parse_args(argv)
    device = resolve_device(args.device)
    _use_fast_cuda_kernels(device)
    # Loaded at the first run that trains: a call whose runs are all finished loads nothing.
    device_data = functools.cache(functools.partial(load_device_data, args.data_dir, device))
    results = [_run_or_read(args, name, seed, device, device_data, log)
               for seed in args.seed_list for name in args.method_names]
    log("\n| method | test acc. (%) | paper | ms / iteration | seeds |\n|---|---|---|---|---|")
    for name in args.method_names:
        log(_table_row(name, [r for r in results if r["config"]["name"] == name]))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
