"""The main job on the embedded default: compare dropout methods on scikit-learn's digits.

``python -m ydrop.demo`` (or ``make demo``) trains a small fully connected net
(64-256-256-10) with no dropout, dropout, Y-Drop, Excitation Dropout and Activation
Dropout on the 8x8 handwritten digits bundled with scikit-learn (no download), over
a few seeds, and prints a table of test accuracy per method. A few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .guide import Guide
from .layers import ActivationDropout, ExcitationDropout, YDrop

METHODS = {
    "none": lambda: nn.Identity(),
    "dropout": lambda: nn.Dropout(0.5),
    "ydrop": lambda: YDrop(warmup_epochs=2),
    "excitation": lambda: ExcitationDropout(p=0.5),
    "activation": lambda: ActivationDropout(p=0.5),
}


@dataclass
class DemoConfig:
    epochs: int = 30  # passes over the 1437 training digits
    batch_size: int = 64  # the Y-Drop paper's batch size
    lr: float = 0.01  # SGD with momentum 0.9, as in the Y-Drop paper
    hidden: int = 256  # width of both hidden layers
    seeds: int = 3  # runs per method; the table shows mean and std


def load_digits_tensors(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Digits as (x_train, y_train, x_test, y_test); x scaled to [0, 1], shape (n, 64).

    A fixed stratified 80/20 split (1437 / 360 images).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data / 16.0, digits.target, test_size=0.2, random_state=seed, stratify=digits.target
    )
    as_x = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    as_y = lambda a: torch.tensor(a, dtype=torch.long)  # noqa: E731
    return as_x(x_train), as_y(y_train), as_x(x_test), as_y(y_test)


def make_model(method: str, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(64, hidden), nn.ReLU(), METHODS[method](),
        nn.Linear(hidden, hidden), nn.ReLU(), METHODS[method](),
        nn.Linear(hidden, 10),
    )


def train_one(method: str, seed: int, config: DemoConfig, data, progress: tqdm) -> float:
    """Train one model; returns its test accuracy (%)."""
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)
    model = make_model(method, config.hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    guide = Guide(model) if any(m.__class__ in (YDrop, ExcitationDropout) for m in model.modules()) else None
    for epoch in range(config.epochs):
        model.train()
        if guide is not None:
            guide.set_epoch(epoch)
        order = torch.randperm(len(x_train))
        for start in range(0, len(order), config.batch_size):
            index = order[start : start + config.batch_size]
            x, y = x_train[index], y_train[index]
            if guide is not None:
                guide.step(x, y)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        progress.update(1)
    model.eval()
    with torch.no_grad():
        return (model(x_test).argmax(1) == y_test).float().mean().item() * 100


def run(config: DemoConfig) -> dict[str, list[float]]:
    data = load_digits_tensors()
    results: dict[str, list[float]] = {method: [] for method in METHODS}
    total = len(METHODS) * config.seeds * config.epochs
    with tqdm(total=total, desc="training", unit="epoch") as progress:
        for method in METHODS:
            for seed in range(config.seeds):
                progress.set_postfix(method=method, seed=seed)
                results[method].append(train_one(method, seed, config, data, progress))
    return results


def format_table(results: dict[str, list[float]]) -> str:
    lines = ["| method | test accuracy (%) | seeds |", "|---|---|---|"]
    for method, accuracies in results.items():
        spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
        lines.append(f"| {method} | {statistics.mean(accuracies):.2f} ± {spread:.2f} | {len(accuracies)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=DemoConfig.epochs, help="epochs per run (default %(default)s)")
    parser.add_argument("--seeds", type=int, default=DemoConfig.seeds, help="runs per method (default %(default)s)")
    args = parser.parse_args(argv)
    config = DemoConfig(epochs=args.epochs, seeds=args.seeds)
    started = time.perf_counter()
    results = run(config)
    print("\nDigits (sklearn), FC 64-256-256-10, SGD lr 0.01 momentum 0.9, batch 64, "
          f"{config.epochs} epochs, {config.seeds} seeds:\n")
    print(format_table(results))
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
