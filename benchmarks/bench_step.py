"""A Y-Drop training step (Guide scoring + forward + backward + SGD) vs an nn.Dropout step.

Targets (issue 19): FC_1 (784-1024-1024-10), batch 64, scoring every step: <= 1.30
with conductance (the paper's score), <= 1.10 with ``score="gradxact"``.
"""

from __future__ import annotations

from benchmarks.common import Ratio, compare, display, step_pair

TARGET = "<= 1.30"
GRADXACT_TARGET = "<= 1.10"


def run(rounds: int = 25, score_every: int = 1, batch: int = 64, model: str = "fc1",
        score: str = "conductance") -> Ratio:
    guided, plain = step_pair(model, "ydrop", batch, warmup_epochs=0, score_every=score_every, score=score)
    label = f"Y-Drop step / nn.Dropout step, {display(model)}, batch {batch}, score_every={score_every}"
    if score != "conductance":
        label += f", score={score!r}"
    return compare(label, guided, plain, rounds=rounds)


if __name__ == "__main__":
    print(run().row(TARGET))
    print(run(score="gradxact").row(GRADXACT_TARGET))
