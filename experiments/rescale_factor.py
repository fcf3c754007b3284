#!/usr/bin/env python3
"""Issue 20: by how much the dropout layers of finished runs scale their active units in
training against test, and whether that explains their test accuracy.

For each run (a folder with checkpoint.pt, as `ydrop compare` leaves it in its runs
folder; docs/results holds no checkpoints), the best weights are rebuilt and
`ydrop.analysis.train_test_scale` runs each dropout layer's training forward on
validation batches: ``train_scale`` is the mean factor an active unit is multiplied by
in training (1 at test). If that mismatch is what costs accuracy, the prediction is
that multiplying each layer's test-time output by its ``train_scale`` (what the layer
above saw in training) recovers some of it; the last four columns test it, on the test
accuracy and on the test loss (mean cross-entropy: logits too large at test time, from
units larger than in training, raise the loss more than they lower the accuracy).

    python experiments/rescale_factor.py runs/cifar10-s1 [--data-dir ../shared/data] [--batches 8]
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack

import torch

from ydrop.analysis import find_runs, load_run, train_test_scale
from ydrop.train import loss_and_accuracy
from ydrop.train.table import method_label, model_label


def scaled_at_test(stack: ExitStack, model, scales: dict[str, float]) -> None:
    """Multiply each named layer's output by its scale (hooks removed when ``stack`` closes)."""
    modules = dict(model.named_modules())
    for name, scale in scales.items():
        handle = modules[name].register_forward_hook(lambda _m, _a, out, s=scale: out * s)
        stack.callback(handle.remove)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders or roots holding finished runs")
    parser.add_argument("--data-dir", default=None, help="dataset root (default: the one stored with each run)")
    parser.add_argument("--batches", type=int, default=8, help="validation batches to measure on (default: 8)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the training forwards' masks, so that a re-run gives the same table (default: 0)")
    args = parser.parse_args()
    if args.batches < 1:
        parser.error(f"--batches must be an integer >= 1; got {args.batches}")
    torch.manual_seed(args.seed)
    print("| model | method | seed | layer | active | kept of active | kept scale | train scale "
          "| test acc. | test acc., outputs x train scale | test loss | test loss, outputs x train scale |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    cache: dict = {}
    for folder in find_runs(args.runs, "runs"):
        if not (folder / "checkpoint.pt").is_file():
            continue  # a result copied from docs/results: no weights to measure
        run = load_run(folder, device="cpu", data_dir=args.data_dir, cache=cache)
        try:
            scales = train_test_scale(run.model, run.val[: args.batches])
        except ValueError:
            continue  # no dropout layer (the "none" runs)
        loss, accuracy = loss_and_accuracy(run.model, run.test)
        with ExitStack() as stack:
            scaled_at_test(stack, run.model, {name: s.train_scale for name, s in scales.items()})
            corrected_loss, corrected = loss_and_accuracy(run.model, run.test)
        label = (model_label(run.config.to_dict()), method_label(run.config.to_dict()), run.config.seed)
        for name, s in scales.items():
            print(f"| {label[0]} | {label[1]} | {label[2]} | {name} | {s.active_share:.3f} | {s.kept_share:.3f} "
                  f"| {s.kept_scale:.3f} | {s.train_scale:.3f} | {accuracy:.2f} | {corrected:.2f} "
                  f"| {loss:.3f} | {corrected_loss:.3f} |")


if __name__ == "__main__":
    main()
