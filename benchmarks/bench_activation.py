"""An Activation Dropout training step vs an nn.Dropout step.

Target (issue 5): FC_1 (batch 64) and CNN-2 (batch 100, 3x32x32): <= 1.05. The
layer scores from its own input inside the forward: no Guide, no extra pass.
"""

from __future__ import annotations

from benchmarks.common import Ratio, compare, step_pair

TARGET = "<= 1.05"


def run() -> list[Ratio]:
    fc_guided, fc_plain = step_pair("fc1", "activation", 64)
    cnn_guided, cnn_plain = step_pair("cnn2", "activation", 100)
    return [
        compare("Activation Dropout step / nn.Dropout step, FC_1, batch 64", fc_guided, fc_plain, rounds=25),
        compare("Activation Dropout step / nn.Dropout step, CNN-2, batch 100", cnn_guided, cnn_plain,
                rounds=6, repeats=1, warmup=2),
    ]


if __name__ == "__main__":
    for ratio in run():
        print(ratio.row(TARGET))
