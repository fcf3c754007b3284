"""Guided layers and the Guide under ``torch.compile`` (inductor, on the CPU).

The layers' masks are an opaque custom op while compiling (``ydrop/_opaque.py``). With
a Guide that scores in a separate pass (``reuse_forward=False``) the whole training
forward compiles into one graph (``fullgraph=True`` raises at any graph break), is
not recompiled from step to step, and trains as the eager model does. A Guide that
scores inside the forward (the default) adds a graph break at its hook."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

import ydrop


def mlp(layer):
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 32), nn.ReLU(), layer(), nn.Linear(32, 32), nn.ReLU(),
                         layer(), nn.Linear(32, 5))


def cnn(layer):
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), layer(), nn.Flatten(), nn.Linear(4 * 36, 16),
                         nn.ReLU(), layer(), nn.Linear(16, 5))


pytestmark = pytest.mark.usefixtures("fresh_compiler")


METHODS = {
    "ydrop": lambda: ydrop.YDrop(warmup_epochs=0),
    "excitation": ydrop.ExcitationDropout,
    "activation": ydrop.ActivationDropout,
}


GUIDES = {  # whom the Guide is given, and whether it scores inside the forward
    "compiled-separate-pass": ("compiled", False),
    "compiled-in-forward": ("compiled", True),
    "original-in-forward": ("original", True),
}


@pytest.mark.parametrize("make, shape", [(mlp, (12,)), (cnn, (2, 6, 6))], ids=["mlp", "cnn"])
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("guide_kind", list(GUIDES))
def test_compiled_model_trains_with_a_guide(make, shape, method, guide_kind):
    guide_sees, reuse_forward = GUIDES[guide_kind]
    torch.manual_seed(0)
    model = make(METHODS[method])
    compiled = torch.compile(model, fullgraph=not reuse_forward)
    guide = ydrop.Guide(compiled if guide_sees == "compiled" else model, reuse_forward=reuse_forward)
    assert len(guide.layers) == 2 and all(not name.startswith("_") for name in guide.layers)
    guide.set_epoch(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, *shape), torch.randint(0, 5, (16,))
    before = [p.detach().clone() for p in model.parameters()]
    losses = []
    for step in range(4):
        with torch._dynamo.config.patch(error_on_recompile=step > 0):
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


def train(model: nn.Module, forward, x: torch.Tensor, y: torch.Tensor, steps: int = 4,
          reuse_forward: bool = True) -> list[float]:
    """``steps`` SGD steps of ``model`` run by ``forward``, a Guide given ``forward``
    scoring each, from seed 3."""
    guide = ydrop.Guide(forward, reuse_forward=reuse_forward)
    guide.set_epoch(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(3)
    losses = []
    for _ in range(steps):
        guide.step(x, y)
        loss = F.cross_entropy(forward(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("method", list(METHODS))
def test_compiled_training_takes_the_eager_steps(method):
    """Same seed, same masks: the compiled model's losses are the eager model's
    (inductor may round differently, and the eager Guide scores inside the forward,
    the compiled one, for one graph, in a separate pass: rtol 1e-4)."""
    torch.manual_seed(0)
    eager_model = mlp(METHODS[method])
    compiled_model = copy.deepcopy(eager_model)
    x, y = torch.randn(20, 12), torch.randint(0, 5, (20,))
    eager = train(eager_model, eager_model, x, y)
    compiled = train(compiled_model, torch.compile(compiled_model, fullgraph=True), x, y, reuse_forward=False)
    assert compiled == pytest.approx(eager, rel=1e-4)
    if method == "ydrop":  # the copy's EMA moved as the eager one's did (the copy's op drew with the copy)
        for eager_layer, compiled_layer in zip(eager_model[3::3], compiled_model[3::3]):
            assert torch.allclose(compiled_layer.drop_rate, eager_layer.drop_rate)
            assert not torch.equal(eager_layer.drop_rate, torch.full((32,), 0.35))


class CheckpointedMLP(nn.Module):
    """stem -> [ReLU, guided, Linear, ReLU, guided] -> head, the bracket checkpointed
    (non-reentrant) in training when ``checkpointed``."""

    def __init__(self, layer) -> None:
        super().__init__()
        self.stem, self.head = nn.Linear(12, 32), nn.Linear(32, 5)
        self.block = nn.Sequential(nn.ReLU(), layer(), nn.Linear(32, 32), nn.ReLU(), layer())
        self.checkpointed = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        if self.checkpointed and self.training:
            return self.head(checkpoint(self.block, h, use_reentrant=False))
        return self.head(self.block(h))


@pytest.mark.parametrize("reuse_forward", [True, False], ids=["reuse_forward", "separate-pass"])
@pytest.mark.parametrize("score", ["conductance", "activation"])
def test_a_compiled_checkpointed_model_trains_as_the_eager_one_without_checkpointing(score, reuse_forward):
    """Y-Drop's EMA (alpha 0.1: a second move a step would show) and the weights
    after 4 steps equal the eager, unchecked model's (inductor's rounding: atol 1e-6)."""
    torch.manual_seed(0)
    eager_model = CheckpointedMLP(lambda: ydrop.YDrop(warmup_epochs=0, elasticity=0.1, score=score))
    compiled_model = copy.deepcopy(eager_model)
    compiled_model.checkpointed = True
    x, y = torch.randn(20, 12), torch.randint(0, 5, (20,))
    eager = train(eager_model, eager_model, x, y, reuse_forward=reuse_forward)
    compiled = train(compiled_model, torch.compile(compiled_model), x, y, reuse_forward=reuse_forward)
    assert compiled == pytest.approx(eager, rel=1e-4)
    for (name, expected), got in zip(eager_model.state_dict().items(), compiled_model.state_dict().values()):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6, msg=name)
    assert not torch.equal(eager_model.block[1].drop_rate, torch.full((32,), 0.35))
