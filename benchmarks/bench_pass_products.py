"""The conductance pass's two products on FC_1 with kernels ydrop does not use.

    .venv/bin/python -m benchmarks.bench_pass_products [--rounds 60]

The pass's unavoidable products on FC_1 (``bench_step.floor``): 61 rows forward and
60 rows back through the 1024 x 1024 hidden weight. Each is timed right after an
``nn.Dropout`` training step (so the weight comes from memory cold, as inside a
Y-Drop step), with torch's default kernels (``F.linear``, ``@``, what ydrop runs) and
two alternatives that the code before issue 19 had:

- ``torch.ops.mkldnn._linear_pointwise``, a private oneDNN op (issue 19: public
  torch only; "unavailable" where this torch has none);
- for the backward, the sparse route: the first point's rows densely, then each
  point's product as the previous one's plus the product of the cotangent's change
  (``F.embedding_bag`` over the changed entries), on the cotangents of a real pass
  (the target's head row masked by ReLU's pattern at each point of the path).

Prints each median and what each alternative would save, as a share of the
``nn.Dropout`` step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.common import model_step, paper_model
from ydrop.scores.conductance import path_points

SAMPLES, STEPS = 64 // 5, 5  # B_c = B // n_c samples of a batch of 64, n_c points
FORWARD_ROWS, BACKWARD_ROWS = SAMPLES * STEPS + 1, SAMPLES * STEPS  # the baseline point is shared


def private_linear() -> Callable | None:
    """The private oneDNN linear op, or None where this torch has none."""
    try:
        return torch.ops.mkldnn._linear_pointwise if torch.backends.mkldnn.is_available() else None
    except (AttributeError, RuntimeError):
        return None


def pass_rows(model: nn.Sequential) -> tuple[Tensor, Tensor]:
    """FC_1's pass for SAMPLES random inputs at the zero baseline: the hidden layer's
    inputs (FORWARD_ROWS, 1024) and the cotangents at its output (STEPS, SAMPLES, 1024)."""
    stem, hidden, head = [m for m in model.modules() if isinstance(m, nn.Linear)]
    generator = torch.Generator().manual_seed(0)
    inputs = torch.rand(SAMPLES, stem.in_features, generator=generator)
    target = torch.randint(0, head.out_features, (SAMPLES,), generator=generator)
    with torch.no_grad():
        # Point-major rows ((STEPS + 1) SAMPLES, 1024), the first SAMPLES all at the stem's bias.
        hidden_in = path_points(stem.bias.expand(SAMPLES, -1), stem(inputs), STEPS).relu()
        positive = hidden(hidden_in[: STEPS * SAMPLES]).sign().clamp_min(0).unflatten(0, (STEPS, SAMPLES))
        cotangents = head.weight.index_select(0, target) * positive
    return hidden_in[SAMPLES - 1:], cotangents


def sparse_backward(cotangents: Tensor, weight: Tensor) -> Tensor:
    """``cotangents @ weight`` (STEPS, SAMPLES, in) through the changes between points."""
    first = cotangents[0] @ weight
    changes = (cotangents[1:] - cotangents[:-1]).flatten(0, 1)
    row, column = changes.nonzero(as_tuple=True)
    offsets = torch.searchsorted(row, torch.arange(changes.shape[0]))
    steps = F.embedding_bag(column, weight, offsets, mode="sum", per_sample_weights=changes[row, column])
    return torch.cat([first[None], steps.unflatten(0, (-1, cotangents.shape[1]))]).cumsum(0)


def products(model: nn.Sequential, onednn: Callable | None) -> dict[str, Callable[[], Tensor]]:
    """Each way of computing the two products, on a real pass's rows."""
    hidden = [m for m in model.modules() if isinstance(m, nn.Linear)][1]
    weight, bias = hidden.weight.detach(), hidden.bias.detach()
    rows_in, cotangents = pass_rows(model)
    rows_out = cotangents.flatten(0, 1)
    found = {
        "forward, torch": lambda: F.linear(rows_in, weight, bias),
        "backward, torch": lambda: rows_out @ weight,
        "backward, sparse route": lambda: sparse_backward(cotangents, weight),
    }
    if onednn is not None:
        found["forward, oneDNN"] = lambda: onednn(rows_in, weight, bias, "none", [], "")
        found["backward, oneDNN"] = lambda: onednn(rows_out, weight.t(), None, "none", [], "")
    return found


def run(rounds: int = 60) -> dict[str, float]:
    """Median seconds of each product right after an ``nn.Dropout`` step, and of the
    step itself (``"nn.Dropout step"``)."""
    timed = products(paper_model("fc1", nn.Dropout).eval(), private_linear())
    plain = model_step("fc1", nn.Dropout, 64)
    times: dict[str, list[float]] = {name: [] for name in [*timed, "nn.Dropout step"]}
    for _ in range(rounds):
        for name, product in timed.items():
            start = time.perf_counter()
            plain()
            between = time.perf_counter()
            product()
            times[name].append(time.perf_counter() - between)
            times["nn.Dropout step"].append(between - start)
    return {name: statistics.median(values) for name, values in times.items()}


def report(medians: dict[str, float]) -> str:
    step = medians["nn.Dropout step"]
    lines = [f"{name}: {seconds * 1e6:.0f} us" for name, seconds in medians.items() if name != "nn.Dropout step"]
    lines.append(f"nn.Dropout step: {step * 1e3:.2f} ms ({torch.get_num_threads()} thread(s))")
    if "forward, oneDNN" not in medians:
        lines.append("torch.ops.mkldnn._linear_pointwise: unavailable in this torch build")
    savings = {"the private oneDNN kernel": [("forward", "oneDNN"), ("backward", "oneDNN")],
               "the sparse route": [("backward", "sparse route")]}
    for what, pairs in savings.items():
        if all(f"{way}, {kernel}" in medians for way, kernel in pairs):
            saved = sum(medians[f"{way}, torch"] - medians[f"{way}, {kernel}"] for way, kernel in pairs)
            lines.append(f"{what} would save {saved * 1e6:.0f} us a step, {saved / step:.3f} of an nn.Dropout step")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    print(report(run(parser.parse_args().rounds)))
