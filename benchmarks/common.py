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

    def row(self, target: str) -> str:
        return (
            f"| {self.name} | {self.candidate_ms:.2f} | {self.reference_ms:.2f} | "
            f"{min(self.ratios):.3f} / {self.median:.3f} / {max(self.ratios):.3f} | {target} |"
        )


TABLE_HEADER = (
    "| workload | candidate (ms, median) | reference (ms, median) | ratio min / median / max | target |\n"
    "|---|---|---|---|---|"
)


def _time(fn: Callable[[], object], repeats: int) -> float:
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
    for _ in range(warmup):
        candidate()
        reference()
    ratios, cand, ref = [], [], []
    for round_index in range(rounds):
        # Alternate which goes first so neither always runs on a warm cache.
        if round_index % 2:
            r = _time(reference, repeats)
            c = _time(candidate, repeats)
        else:
            c = _time(candidate, repeats)
            r = _time(reference, repeats)
        cand.append(c)
        ref.append(r)
        ratios.append(c / r)
    return Ratio(name, ratios, statistics.median(cand) * 1e3, statistics.median(ref) * 1e3)


def fc_net(widths: list[int], dropout: Callable[[], nn.Module], num_classes: int = 10) -> nn.Sequential:
    """784 -> widths... -> classes, ReLU and a dropout module after each hidden layer."""
    layers: list[nn.Module] = [nn.Flatten()]
    previous = 784
    for width in widths:
        layers += [nn.Linear(previous, width), nn.ReLU(), dropout()]
        previous = width
    layers.append(nn.Linear(previous, num_classes))
    return nn.Sequential(*layers)


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
