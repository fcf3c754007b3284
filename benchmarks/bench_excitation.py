"""An Excitation Dropout training step vs an nn.Dropout step.

Target (issue 5): CNN-2 (Excitation Dropout Table 1), batch 100, 3x32x32 input, 10
classes, Excitation Dropout in both FC dropout slots: <= 1.15. CNN-2's head is an
``nn.Sequential`` chain, so the Guide scores Excitation Backprop inside the training
forward; the separate pass is timed too, for the record.
"""

from __future__ import annotations

from benchmarks.common import Ratio, compare, step_pair

TARGET = "<= 1.15"


def run(rounds: int = 6, reuse_forward: bool = True) -> Ratio:
    guided, plain = step_pair("cnn2", "excitation", 100, guide_kwargs={"reuse_forward": reuse_forward})
    path = "in the forward" if reuse_forward else "separate pass"
    return compare(f"Excitation Dropout step / nn.Dropout step, CNN-2, batch 100 ({path})", guided, plain,
                   rounds=rounds, repeats=1, warmup=2)


if __name__ == "__main__":
    print(run().row(TARGET))
    print(run(rounds=3, reuse_forward=False).row("(reference: no target)"))
