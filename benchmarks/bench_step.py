"""A Y-Drop training step (Guide scoring + forward + backward + SGD) vs an nn.Dropout step.

Workload (issue 2): FC_1 = 784-1024-1024-10, batch 64, Y-Drop past its warm-up so
the conductance pass runs every step.
"""

from __future__ import annotations

import torch
from torch import nn

import ydrop
from benchmarks.common import Ratio, compare, fc_net, training_step


def run(rounds: int = 15) -> Ratio:
    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28)
    y = torch.randint(0, 10, (64,))
    plain = fc_net([1024, 1024], lambda: nn.Dropout(0.5)).train()
    guided = fc_net([1024, 1024], lambda: ydrop.YDrop(warmup_epochs=0)).train()
    guide = ydrop.Guide(guided)
    guide.set_epoch(0)
    plain_step = training_step(plain, torch.optim.SGD(plain.parameters(), lr=0.01, momentum=0.9), x, y)
    guided_step = training_step(guided, torch.optim.SGD(guided.parameters(), lr=0.01, momentum=0.9), x, y, guide)
    return compare("Y-Drop step / nn.Dropout step, FC_1, batch 64", guided_step, plain_step, rounds=rounds)


if __name__ == "__main__":
    print(f"ratio {run().median:.3f} (median)")
