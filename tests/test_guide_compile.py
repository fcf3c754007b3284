"""Guided layers and the Guide under ``torch.compile`` (inductor, on the CPU).

The scoring passes run eagerly (``torch.compiler.disable`` on the Guide's hooks, and
the Guide scores the module inside the compile wrapper); the model's own forward is
compiled. Nothing may raise, and a few steps must train."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ydrop


def mlp(layer):
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 32), nn.ReLU(), layer(), nn.Linear(32, 32), nn.ReLU(),
                         layer(), nn.Linear(32, 5))


def cnn(layer):
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), layer(), nn.Flatten(), nn.Linear(4 * 36, 16),
                         nn.ReLU(), layer(), nn.Linear(16, 5))


METHODS = {
    "ydrop": lambda: ydrop.YDrop(warmup_epochs=0),
    "excitation": ydrop.ExcitationDropout,
    "activation": ydrop.ActivationDropout,
}


@pytest.mark.parametrize("make, shape", [(mlp, (12,)), (cnn, (2, 6, 6))], ids=["mlp", "cnn"])
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("guide_sees", ["compiled", "original"])
def test_compiled_model_trains_with_a_guide(make, shape, method, guide_sees):
    torch.manual_seed(0)
    model = make(METHODS[method])
    compiled = torch.compile(model)
    guide = ydrop.Guide(compiled if guide_sees == "compiled" else model)
    assert len(guide.layers) == 2 and all(not name.startswith("_") for name in guide.layers)
    guide.set_epoch(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, *shape), torch.randint(0, 5, (16,))
    before = [p.detach().clone() for p in model.parameters()]
    losses = []
    for _ in range(4):
        guide.step(x, y)
        loss = F.cross_entropy(compiled(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    if method != "activation":  # scored by the Guide: every layer got scores
        assert guide.scored_layers == list(guide.layers)
    assert all(not torch.equal(old, new) for old, new in zip(before, model.parameters()))
