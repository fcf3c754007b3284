"""Conductance of every hidden layer at once (ydrop) vs Captum called once per layer.

Workload (issue 2): FC_2 = 784-2048-2048-2048-10, 12 samples, 5 steps, the three
layers being the dropout slots after each hidden ReLU.
"""

from __future__ import annotations

import torch
from captum.attr import LayerConductance
from torch import nn

import ydrop
from benchmarks.common import Ratio, compare, fc_net


def run(rounds: int = 10) -> tuple[Ratio, float]:
    torch.manual_seed(0)
    model = fc_net([2048, 2048, 2048], lambda: nn.Dropout(0.5)).eval()
    layers = [m for m in model if isinstance(m, nn.Dropout)]
    x = torch.rand(12, 1, 28, 28)
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
    ratio = compare("conductance, 3 layers of FC_2, ydrop / Captum per layer", ours, captum, rounds=rounds, repeats=2)
    return ratio, worst


if __name__ == "__main__":
    ratio, worst = run()
    print(f"speed-up {1 / ratio.median:.2f}x (median), largest relative difference {worst:.2e}")
