"""A Y-Drop training step (Guide scoring + forward + backward + SGD) vs an nn.Dropout step.

Targets (issue 19): FC_1 (784-1024-1024-10), batch 64, scoring every step: <= 1.30
with conductance (the paper's score), <= 1.10 with ``score="gradxact"``. ``floor``
reports, for each score, what the pass's unavoidable dense products alone add to
the ``nn.Dropout`` step on the machine at hand. The targets and their floors take
100 alternating rounds: the median of 25 moved by up to 0.03 from run to run on a
two-core machine, as much as the step's distance to its target.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.common import Ratio, compare, display, model_step, paper_model, step_pair

TARGET = "<= 1.30"
GRADXACT_TARGET = "<= 1.10"


def run(rounds: int = 100, score_every: int = 1, batch: int = 64, model: str = "fc1",
        score: str = "conductance") -> Ratio:
    guided, plain = step_pair(model, "ydrop", batch, warmup_epochs=0, score_every=score_every, score=score)
    label = f"Y-Drop step / nn.Dropout step, {display(model)}, batch {batch}, score_every={score_every}"
    if score != "conductance":
        label += f", score={score!r}"
    return compare(label, guided, plain, rounds=rounds)


def floor(rounds: int = 100, batch: int = 64, model: str = "fc1", score: str = "conductance",
          steps: int = 5) -> Ratio:
    """The least a scoring pass can cost on this machine: an ``nn.Dropout`` step plus
    only the products with the hidden weights that the pass cannot avoid, against the
    ``nn.Dropout`` step. Conductance runs B_c * steps + 1 rows forward (the zero
    baseline's point shared) and B_c * steps rows back through each Linear above the
    stem and below the head; gradxact B_c rows each way. The stem costs nothing (its
    output comes from the training forward) and the head's products are 10 columns."""
    plain = model_step(model, nn.Dropout, batch)
    linears = [m for m in paper_model(model, nn.Dropout).modules() if isinstance(m, nn.Linear)][1:-1]
    samples = max(1, batch // steps)
    forward_rows, backward_rows = (samples * steps + 1, samples * steps) if score == "conductance" else (samples,) * 2
    torch.manual_seed(2)
    operands = [(torch.randn(forward_rows, m.in_features), torch.randn(backward_rows, m.out_features), m)
                for m in linears]

    def products_and_step() -> None:
        for rows_in, rows_out, m in operands:
            nn.functional.linear(rows_in, m.weight, m.bias)
            rows_out @ m.weight
        plain()

    label = (f"floor: nn.Dropout step + the pass's {forward_rows}- and {backward_rows}-row products only / "
             f"nn.Dropout step, {display(model)}, batch {batch}, score={score!r}")
    return compare(label, products_and_step, plain, rounds=rounds)


def fixed_cost(rounds: int = 25, batch: int = 64, score: str = "conductance") -> Ratio:
    """The per-step cost that does not grow with the model: the same two steps on FC_1's
    layout shrunk to 16-32-32-10, where the products cost next to nothing, so the
    difference of the two ms columns is the Guide's and the layers' Python and small
    operations (the pass's points, Eq. 2's sums, the ranking, the bucket draws, the masks)."""
    shrunk = dict(in_shape=(1, 4, 4), model_kwargs={"hidden": (32, 32)})
    guided = model_step("fc1", "ydrop", batch, warmup_epochs=0, score=score, **shrunk)
    plain = model_step("fc1", nn.Dropout, batch, **shrunk)
    label = f"fixed cost: Y-Drop step / nn.Dropout step, FC_1's layout at 16-32-32-10, batch {batch}, score={score!r}"
    return compare(label, guided, plain, rounds=rounds, repeats=20)


if __name__ == "__main__":
    print(run().row(TARGET))
    print(floor().row("(reported: the products alone)"))
    print(run(score="gradxact").row(GRADXACT_TARGET))
    print(floor(score="gradxact").row("(reported: the products alone)"))
    print(fixed_cost().row("(reported: the ms difference is the fixed cost)"))
