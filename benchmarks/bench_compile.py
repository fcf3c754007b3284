"""A compiled FC_1 with a Guide vs a compiled FC_1 with nn.Dropout (issue 19, reported).

Both models go through ``torch.compile`` (inductor); the Y-Drop step scores every
step (its pass runs eagerly, inside the compiled forward's hook on the stem), batch 64.
"""

from __future__ import annotations

import torch
from torch import nn

import ydrop
from benchmarks.common import Ratio, compare, guided_input_shape, paper_model, training_step

TARGET = "(reported)"


def compiled_step(dropout, batch: int = 64, **dropout_kwargs):
    model = paper_model("fc1", dropout, **dropout_kwargs)
    compiled = torch.compile(model)
    torch.manual_seed(1)
    x, y = torch.rand(batch, *guided_input_shape("fc1")), torch.randint(0, 10, (batch,))
    guide = None
    if dropout == "ydrop":
        guide = ydrop.Guide(compiled)
        guide.set_epoch(0)
    step = training_step(compiled, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), x, y, guide)
    for _ in range(3):  # compile outside the timed rounds
        step()
    return step


def run(rounds: int = 15) -> Ratio:
    guided = compiled_step("ydrop", warmup_epochs=0)
    plain = compiled_step(nn.Dropout)
    return compare("compiled Y-Drop step / compiled nn.Dropout step, FC_1, batch 64", guided, plain, rounds=rounds)


if __name__ == "__main__":
    print(run().row(TARGET))
