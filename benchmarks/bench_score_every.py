"""A Y-Drop training step with ``score_every=4`` vs an nn.Dropout step.

Target (issue 5): FC_1, batch 64: <= 1.10. Rounds time 16 steps each (repeats=16),
so every round holds exactly four scoring passes: a round of 4 steps (one pass)
scattered from 0.8 to 1.3 on the idle machine.
"""

from __future__ import annotations

from benchmarks.common import Ratio, compare, step_pair

TARGET = "<= 1.10"


def run(rounds: int = 15) -> Ratio:
    guided, plain = step_pair("fc1", "ydrop", 64, warmup_epochs=0, score_every=4)
    return compare("Y-Drop step / nn.Dropout step, FC_1, batch 64, score_every=4", guided, plain,
                   rounds=rounds, repeats=16, warmup=4)


if __name__ == "__main__":
    print(run().row(TARGET))
