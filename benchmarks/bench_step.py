"""A Y-Drop training step (Guide scoring + forward + backward + SGD) vs an nn.Dropout step.

Target (issue 5): FC_1 (784-1024-1024-10), batch 64, scoring every step: <= 1.30.
"""

from __future__ import annotations

from benchmarks.common import Ratio, compare, display, step_pair

TARGET = "<= 1.30"


def run(rounds: int = 25, score_every: int = 1, batch: int = 64, model: str = "fc1") -> Ratio:
    guided, plain = step_pair(model, "ydrop", batch, warmup_epochs=0, score_every=score_every)
    label = f"Y-Drop step / nn.Dropout step, {display(model)}, batch {batch}, score_every={score_every}"
    return compare(label, guided, plain, rounds=rounds)


if __name__ == "__main__":
    print(run().row(TARGET))
