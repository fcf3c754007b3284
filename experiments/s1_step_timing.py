#!/usr/bin/env python3
"""Time a CIFAR-10 S_1 training step per method, interleaved, one thread (issue 20, grid 2).

The Y-Drop protocol's step (``guide.step``, forward, backward, SGD momentum 0.9, batch 64)
for no dropout, dropout, Y-Drop (K = 0, so every step is scored) and, at the first FC
layer only, dropout, Excitation and Activation Dropout. The six methods take turns,
ROUNDS times STEPS steps each, on the same pre-augmented batches, so a change of the
machine's load hits all of them alike; the median of the rounds is reported, with an
epoch estimate (steps per epoch x step + one measured validation pass).

    OMP_NUM_THREADS=1 python experiments/s1_step_timing.py [--data-dir ../shared/data] [--steps 80] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import ydrop
from ydrop.data import BatchLoader, PadCropFlip, load_dataset, train_val_split

CELLS = {
    "none": ("none", {}, {}),
    "dropout": ("dropout", {}, {}),
    "ydrop": ("ydrop", {"elasticity": 0.01, "warmup_epochs": 0}, {}),
    "dropout(first)": ("dropout", {}, {"dropout_at": "first"}),
    "excitation(first)": ("excitation", {}, {"dropout_at": "first"}),
    "activation(first)": ("activation", {}, {"dropout_at": "first"}),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="../shared/data", help="root holding cifar-10/ (default: ../shared/data)")
    parser.add_argument("--steps", type=int, default=80, help="training steps per method and round (default: 80)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the methods taking turns in each (default: 3)")
    args = parser.parse_args()
    for option, value in (("--steps", args.steps), ("--rounds", args.rounds)):
        if value < 1:
            parser.error(f"{option} must be an integer >= 1; got {value}")
    return args


def build_setups() -> dict[str, tuple[nn.Module, ydrop.Guide | None, torch.optim.Optimizer]]:
    """name -> (model, guide or None, optimizer) for every cell; each model from seed 0."""
    setups = {}
    for name, (method, kwargs, model_kwargs) in CELLS.items():
        torch.manual_seed(0)
        model = ydrop.models.create("s1", dropout=method, dropout_kwargs=kwargs, **model_kwargs)
        guide = ydrop.Guide(model) if ydrop.guided_layers(model) else None
        if guide is not None:
            guide.set_epoch(1)
        setups[name] = (model, guide, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    return setups


def first_batches(loader: BatchLoader, count: int) -> list[tuple[Tensor, Tensor]]:
    """The loader's first ``count`` batches (it is asked for one more, as the loop ends)."""
    batches = []
    for i, batch in enumerate(loader):
        if i >= count:
            break
        batches.append(batch)
    return batches


def seconds_per_step(model: nn.Module, guide: ydrop.Guide | None, optimizer: torch.optim.Optimizer,
                     batches: list[tuple[Tensor, Tensor]], steps: int) -> float:
    """Mean wall time of ``steps`` training steps, cycling through ``batches``."""
    model.train()
    started = time.perf_counter()
    for step in range(steps):
        x, y = batches[step % len(batches)]
        if guide is not None:
            guide.step(x, y)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - started) / steps


def timed_rounds(setups: dict[str, tuple], batches: list[tuple[Tensor, Tensor]], steps: int,
                 rounds: int) -> dict[str, list[float]]:
    """name -> seconds per step of each round; the cells take turns within a round, so a
    change of the machine's load hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in CELLS}
    for round_ in range(rounds):
        for name, (model, guide, optimizer) in setups.items():
            times[name].append(seconds_per_step(model, guide, optimizer, batches, steps))
            print(round_, name, f"{1000 * times[name][-1]:.1f} ms/step", flush=True)
    return times


def validation_seconds(model: nn.Module, val) -> float:
    """Wall time of one pass over ``val`` in eval mode, batch 256."""
    model.eval()
    started = time.perf_counter()
    with torch.no_grad():
        for x, _ in BatchLoader(val, 256):
            model(x)
    return time.perf_counter() - started


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    full = load_dataset("cifar10", args.data_dir, split="train", progress=False)
    train, val = train_val_split(full, val_fraction=0.25, seed=0)
    loader = BatchLoader(train, 64, shuffle=True, seed=0, augment=PadCropFlip())
    setups = build_setups()
    batches = first_batches(loader, 40)
    times = timed_rounds(setups, batches, args.steps, args.rounds)
    validation = validation_seconds(setups["dropout"][0], val)
    out = {name: dict(ms_per_step=1000 * statistics.median(v), all_ms=[1000 * t for t in v],
                      epoch_s=statistics.median(v) * len(loader) + validation) for name, v in times.items()}
    out["_"] = dict(steps_per_epoch=len(loader), validation_s=validation, torch=torch.__version__)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
