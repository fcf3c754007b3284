"""Timing helpers for the benchmarks: side-by-side, interleaved, reported as ratios.

Timings on a shared 2-core machine drift; measuring the candidate and the
reference alternately in one process and reporting the ratio of each round
(min / median / max over rounds) keeps the drift out of the comparison.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Ratio:
    name: str
    ratios: list[float]
    candidate_ms: float
    reference_ms: float

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    def summary(self) -> str:
        """"min / median / max" of the per-round ratios."""
        return f"{min(self.ratios):.3f} / {self.median:.3f} / {max(self.ratios):.3f}"

    def row(self, target: str) -> str:
        return (
            f"| {self.name} | {self.candidate_ms:.2f} | {self.reference_ms:.2f} | "
            f"{self.summary()} | {target} |"
        )


TABLE_HEADER = (
    "| workload | candidate (ms, median) | reference (ms, median) | ratio min / median / max | target |\n"
    "|---|---|---|---|---|"
)


def seconds_per_call(fn: Callable[[], object], repeats: int) -> float:
    """Mean wall time of ``repeats`` calls of ``fn``."""
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def compare(
    name: str,
    candidate: Callable[[], object],
    reference: Callable[[], object],
    rounds: int = 15,
    repeats: int = 5,
    warmup: int = 3,
) -> Ratio:
    """candidate time / reference time, measured alternately ``rounds`` times."""
    times = interleaved({"candidate": candidate, "reference": reference}, rounds, repeats, warmup)
    cand, ref = times["candidate"], times["reference"]
    ratios = [c / r for c, r in zip(cand, ref)]
    return Ratio(name, ratios, statistics.median(cand) * 1e3, statistics.median(ref) * 1e3)


def interleaved(steps: dict[str, Callable[[], object]], rounds: int, repeats: int,
                warmup: int = 3) -> dict[str, list[float]]:
    """Seconds per call of each of ``steps``, ``rounds`` times; the order is reversed
    every other round, so that none always runs on a warm cache."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps)
    for round_index in range(rounds):
        for name in order[::-1] if round_index % 2 else order:
            times[name].append(seconds_per_call(steps[name], repeats))
    return times


def paper_model(name: str, dropout, in_shape=None, model_kwargs=None, package=None, **dropout_kwargs) -> nn.Module:
    """A ``ydrop.models`` network in training mode with ``dropout`` in every slot
    (``nn.Dropout`` for the reference: p = 0.5); ``model_kwargs`` change its layout
    (``{"hidden": (32, 32)}``); ``package``: another copy of ydrop to build it with
    (``benchmarks.ab_revision``), None: ydrop."""
    import ydrop

    torch.manual_seed(0)
    return (package or ydrop).models.create(name, in_shape=in_shape, dropout=dropout, dropout_kwargs=dropout_kwargs,
                               **(model_kwargs or {})).train()


def model_step(name: str, dropout, batch: int, in_shape=None, guide_kwargs=None, model_kwargs=None,
               package=None, **dropout_kwargs) -> Callable[[], None]:
    """One SGD training step of a ``ydrop.models`` network on a fixed random batch.

    A guided model is past its warm-up (epoch 0; pass ``warmup_epochs=0`` for
    Y-Drop), so its Guide scores as it would for the rest of training. Activation
    Dropout and plain dropout need no Guide. ``package``: as for :func:`paper_model`.
    """
    import ydrop

    model = paper_model(name, dropout, in_shape, model_kwargs, package, **dropout_kwargs)
    torch.manual_seed(1)
    x, y = torch.rand(batch, *(in_shape or guided_input_shape(name))), torch.randint(0, 10, (batch,))
    guide = None
    if dropout in ("ydrop", "excitation"):
        guide = (package or ydrop).Guide(model, **(guide_kwargs or {}))
        guide.set_epoch(0)
    return training_step(model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), x, y, guide)


def step_pair(name: str, dropout: str, batch: int, in_shape=None, guide_kwargs=None,
              **dropout_kwargs) -> tuple[Callable[[], None], Callable[[], None]]:
    """(guided training step, ``nn.Dropout`` training step) on the same model and batch."""
    return (model_step(name, dropout, batch, in_shape, guide_kwargs, **dropout_kwargs),
            model_step(name, nn.Dropout, batch, in_shape))


def display(name: str) -> str:
    """The papers' spelling of a model name: fc1 -> FC_1, s2 -> S_2, cnn2 -> CNN-2."""
    if name == "cnn2":
        return "CNN-2"
    return f"{name[:-1].upper()}_{name[-1]}"


def guided_input_shape(name: str) -> tuple[int, ...]:
    """The papers' input of a model: MNIST for FC_k, 3x32x32 for the CIFAR nets."""
    return (1, 28, 28) if name.startswith("fc") else (3, 32, 32)


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, x, y, guide=None) -> Callable[[], None]:
    """One SGD step, scoring first when a Guide is given."""
    def step() -> None:
        if guide is not None:
            guide.step(x, y)
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step
