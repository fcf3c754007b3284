"""Interleaved A/B of the two fast paths of the Y-Drop step, FC_1, batch 64, every step scored.

The project keeps a fast path only when an A/B of a real training step shows that it
pays (README, docs/performance.md). Each row times the full Y-Drop step against the
same step without one mechanism, alternating round by round:

* scoring inside the training forward from the affine stem's output
  (``Guide(reuse_forward=False)`` runs the separate pass instead);
* the written backward of the chain pass (without it, the same forward's chain goes
  to autograd: ``chain_leaves`` reports no supported chain).

A ratio below 1 is what the mechanism saves.
"""

from __future__ import annotations

from contextlib import contextmanager

from benchmarks.common import Ratio, compare, model_step

import ydrop.scores._gradients as gradients


@contextmanager
def _without_written_backward():
    """Benchmark-only switch: every chain looks unsupported, so autograd runs it."""
    original = gradients.chain_leaves
    gradients.chain_leaves = lambda *_args: None
    try:
        yield
    finally:
        gradients.chain_leaves = original


def _step(**guide_kwargs):
    return model_step("fc1", "ydrop", 64, guide_kwargs=guide_kwargs, warmup_epochs=0)


def run(rounds: int = 25) -> list[Ratio]:
    full = _step()
    separate = _step(reuse_forward=False)
    autograd = _step()

    def autograd_step():
        with _without_written_backward():
            autograd()

    return [
        compare("Y-Drop step, in the forward / separate pass, FC_1, batch 64", full, separate, rounds=rounds),
        compare("Y-Drop step, written backward / autograd's, FC_1, batch 64", full, autograd_step, rounds=rounds),
    ]


if __name__ == "__main__":
    for ratio in run():
        print(ratio.row("(< 1: the mechanism pays)"))
