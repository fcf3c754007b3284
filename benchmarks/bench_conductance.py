"""Conductance of every guided layer at once (ydrop) vs Captum called once per layer.

Reported on FC_1, FC_2 and S_2 (12 samples, 5 steps, the dropout slots after each
hidden ReLU), with the same numbers (relative difference <= 1e-5). Target (issue 19):
a speed-up of at least 2.3x on FC_2, with public torch APIs only.
"""

from __future__ import annotations

import torch
from captum.attr import LayerConductance
from torch import nn

import ydrop
from benchmarks.common import Ratio, compare, display, guided_input_shape, paper_model

MODELS = ("fc1", "fc2", "s2")


def run_one(name: str, rounds: int = 16) -> tuple[Ratio, float, int]:
    """(ydrop time / Captum time, largest relative difference, number of layers)."""
    model = paper_model(name, nn.Dropout).eval()
    layers = model.dropout_modules()
    torch.manual_seed(0)
    x = torch.rand(12, *guided_input_shape(name))
    y = torch.randint(0, 10, (12,))

    def ours():
        return ydrop.conductance(model, x, y, layers, steps=5)

    def captum():
        return {
            layer: LayerConductance(model, layer).attribute(
                x, baselines=torch.zeros_like(x), target=y, n_steps=5, method="riemann_trapezoid"
            )
            for layer in layers
        }

    a, b = ours(), captum()
    worst = max(((a[l] - b[l]).abs().max() / b[l].abs().max()).item() for l in layers)
    label = f"conductance, {len(layers)} layers of {display(name)}, ydrop / Captum per layer"
    return compare(label, ours, captum, rounds=rounds, repeats=2, warmup=1), worst, len(layers)


def run() -> list[tuple[Ratio, float, int]]:
    return [run_one(name) for name in MODELS]


def report(results: list[tuple[Ratio, float, int]]) -> list[str]:
    """Table rows and one line of detail per model."""
    lines = []
    for ratio, worst, layers in results:
        target = "speed-up >= 2.3, i.e. ratio <= 0.435" if "FC_2" in ratio.name else "(reported)"
        lines.append(ratio.row(target))
    for ratio, worst, layers in results:
        lines.append(f"  {ratio.name}: speed-up {1 / ratio.median:.2f}x median "
                     f"({1 / max(ratio.ratios):.2f} to {1 / min(ratio.ratios):.2f}), "
                     f"largest relative difference to Captum {worst:.1e}")
    return lines


if __name__ == "__main__":
    print("\n".join(report(run())))
