"""benchmarks/bench_pass_products.py: every way it times computes the same products."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import bench_pass_products

    return bench_pass_products


def test_every_kernel_computes_the_same_products(bench):
    import ydrop

    torch.manual_seed(0)
    model = ydrop.models.create("fc1", hidden=(48, 40)).eval()
    results = {name: product() for name, product in bench.products(model, bench.private_linear()).items()}
    assert results["forward, torch"].shape == (bench.FORWARD_ROWS, 40)
    assert results["backward, torch"].shape == (bench.BACKWARD_ROWS, 48)
    for name, result in results.items():
        way = name.split(",")[0]
        torch.testing.assert_close(result.reshape(results[f"{way}, torch"].shape), results[f"{way}, torch"],
                                   rtol=1e-5, atol=1e-6)
    # The path's cotangents change between points: the sparse route has entries to skip and to add.
    _, cotangents = bench.pass_rows(model)
    changed = (cotangents[1:] != cotangents[:-1]).float().mean()
    assert 0 < changed < 1


def test_a_short_run_reports_every_product_and_the_savings(bench):
    medians = bench.run(rounds=1)
    assert {"forward, torch", "backward, torch", "backward, sparse route", "nn.Dropout step"} <= set(medians)
    assert all(seconds > 0 for seconds in medians.values())
    text = bench.report(medians)
    assert "the sparse route would save" in text
    assert ("the private oneDNN kernel would save" in text) == ("forward, oneDNN" in medians)
