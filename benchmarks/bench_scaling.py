"""How the Y-Drop step ratio grows with the number of guided layers and the batch.

Y-Drop step / nn.Dropout step (medians over interleaved rounds) for FC_1, FC_2,
FC_3 (2, 3, 4 guided layers; batch 64) and for FC_1 at batches 16 to 256, with
``score_every`` 1 and 4. Writes ``docs/performance_scaling.png``.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import Ratio, compare, display, step_pair

PLOT = Path(__file__).resolve().parent.parent / "docs" / "performance_scaling.png"
LAYERS = {"fc1": 2, "fc2": 3, "fc3": 4}
BATCHES = (16, 32, 64, 128, 256)
EVERY = (1, 4)


def _ratio(model: str, batch: int, every: int) -> Ratio:
    guided, plain = step_pair(model, "ydrop", batch, warmup_epochs=0, score_every=every)
    label = f"Y-Drop / nn.Dropout step, {display(model)}, batch {batch}, score_every={every}"
    # Rounds of 8 steps, so that each holds exactly two passes when every = 4 (rounds
    # of 4 scattered too much to compare depths: FC_2 1.32 to 1.85 in one run).
    return compare(label, guided, plain, rounds=7, repeats=8, warmup=4)


def run() -> dict[str, dict[int, list[tuple[int, Ratio]]]]:
    return {
        "layers": {every: [(n, _ratio(model, 64, every)) for model, n in LAYERS.items()] for every in EVERY},
        "batch": {every: [(batch, _ratio("fc1", batch, every)) for batch in BATCHES] for every in EVERY},
    }


def plot(results: dict[str, dict[int, list[tuple[int, Ratio]]]], path: Path = PLOT) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for axis, key, xlabel in ((axes[0], "layers", "guided layers (FC_1, FC_2, FC_3; batch 64)"),
                              (axes[1], "batch", "batch size (FC_1)")):
        for every, points in results[key].items():
            xs = [x for x, _ in points]
            medians = [r.median for _, r in points]
            low = [r.median - min(r.ratios) for _, r in points]
            high = [max(r.ratios) - r.median for _, r in points]
            axis.errorbar(xs, medians, yerr=[low, high], marker="o", capsize=3, label=f"score_every={every}")
        axis.axhline(1.30, color="grey", linestyle="--", linewidth=0.8)
        axis.axhline(1.10, color="grey", linestyle=":", linewidth=0.8)
        axis.set_xlabel(xlabel)
        axis.grid(alpha=0.3)
        if key == "batch":
            axis.set_xscale("log", base=2)
        axis.set_xticks(xs, [str(x) for x in xs])
    axes[0].set_ylabel("Y-Drop step / nn.Dropout step (median, min-max bars)")
    axes[0].legend()
    fig.suptitle("Step-time ratio; dashed: target 1.30 (every step), dotted: 1.10 (score_every=4)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report(results) -> list[str]:
    lines = []
    for key in ("layers", "batch"):
        for every, points in results[key].items():
            cells = ", ".join(f"{x}: {r.summary()}" for x, r in points)
            lines.append(f"  by {key}, score_every={every}: {cells}")
    return lines


if __name__ == "__main__":
    results = run()
    print("\n".join(report(results)))
    print(f"plot: {plot(results)}")
