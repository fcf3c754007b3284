"""A compiled FC_1 with a Guide vs a compiled FC_1 with nn.Dropout (issue 19, reported).

Both models go through ``torch.compile`` (inductor), batch 64, the Y-Drop step scoring
every step, the Guide given the compiled model. Two ways it can score: inside the
forward from the stem's output (the default), an eager hook that breaks the graph (in
``nn.Sequential`` the rest of the forward then runs eagerly); or in a separate pass
before the forward (``reuse_forward=False``), which then compiles into one graph (the
masks are an opaque op). A third row: the compiled default step against the eager one.
"""

from __future__ import annotations

import torch
from torch import nn

import ydrop
from benchmarks.common import Ratio, compare, guided_input_shape, paper_model, training_step

TARGET = "(reported)"


def compiled_step(dropout, batch: int = 64, reuse_forward: bool = True, compile_model: bool = True,
                  **dropout_kwargs):
    model = paper_model("fc1", dropout, **dropout_kwargs)
    compiled = torch.compile(model) if compile_model else model
    torch.manual_seed(1)
    x, y = torch.rand(batch, *guided_input_shape("fc1")), torch.randint(0, 10, (batch,))
    guide = None
    if dropout == "ydrop":
        guide = ydrop.Guide(compiled, reuse_forward=reuse_forward)
        guide.set_epoch(0)
    step = training_step(compiled, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), x, y, guide)
    for _ in range(3):  # compile outside the timed rounds
        step()
    return step


def run(rounds: int = 15) -> list[Ratio]:
    plain = compiled_step(nn.Dropout)
    in_forward = compiled_step("ydrop", warmup_epochs=0)
    one_graph = compiled_step("ydrop", reuse_forward=False, warmup_epochs=0)
    eager = compiled_step("ydrop", compile_model=False, warmup_epochs=0)
    label = "compiled Y-Drop step / compiled nn.Dropout step, FC_1, batch 64"
    return [
        compare(f"{label}, scored in the forward (a graph break)", in_forward, plain, rounds=rounds),
        compare(f"{label}, scored in a separate pass (one graph)", one_graph, plain, rounds=rounds),
        compare("compiled Y-Drop step / eager Y-Drop step, FC_1, batch 64, scored in the forward",
                in_forward, eager, rounds=rounds),
    ]


if __name__ == "__main__":
    for ratio in run():
        print(ratio.row(TARGET))
