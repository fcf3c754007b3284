"""Guided layers under ``torch.compile`` (inductor on the CPU; issue 19, section 2).

A guided layer's training mask reads Python state set from outside (the epoch,
scores handed in, counters); while compiling it is an opaque custom op
(``ydrop/_opaque.py``), so the model compiles into one graph (``fullgraph=True``),
trains, and is not recompiled when that state changes. Kept small: compiling costs
seconds. The Guide-based compile tests live with the Guide.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ydrop import ActivationDropout, GuidedDropout, YDrop


def train_compiled(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, before_step=None) -> list[float]:
    """A few SGD steps of ``torch.compile(model)``; after the first (which compiles),
    any recompilation raises."""
    compiled = torch.compile(model, fullgraph=True)  # raises at a graph break
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for step in range(steps):
        if before_step is not None:
            before_step(step)
        # error_on_recompile: a guard on the layers' Python state would show here.
        with torch._dynamo.config.patch(error_on_recompile=step > 0):
            loss = F.cross_entropy(compiled(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        losses.append(loss.item())
    return losses


pytestmark = pytest.mark.usefixtures("fresh_compiler")


def set_epoch(model: nn.Module, epoch: int) -> None:
    for module in model.modules():
        if isinstance(module, GuidedDropout):
            module.set_epoch(epoch)


def test_activation_dropout_trains_in_a_compiled_mlp_across_the_end_of_warmup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), ActivationDropout(p=0.3, warmup_epochs=1), nn.Linear(16, 3))
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    # Epoch 0 is warm-up (plain dropout), epoch 1 guided: the switch must not recompile.
    losses = train_compiled(model, x, y, steps=4, before_step=lambda step: set_epoch(model, step // 2))
    assert all(math.isfinite(loss) for loss in losses)


def test_activation_dropout_trains_in_a_compiled_cnn():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), ActivationDropout(p=0.3),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3),
    )
    x, y = torch.randn(16, 1, 6, 6), torch.randint(0, 3, (16,))
    losses = train_compiled(model, x, y, steps=3)
    assert all(math.isfinite(loss) for loss in losses)


def test_ydrop_given_new_scores_every_step_is_not_recompiled():
    """What a Guide does between steps (new scores, a counter), by hand."""
    torch.manual_seed(2)
    layer = YDrop(warmup_epochs=0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), layer, nn.Linear(16, 3))
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    losses = train_compiled(model, x, y, steps=3, before_step=lambda step: layer.set_scores(torch.randn(4, 16)))
    assert all(math.isfinite(loss) for loss in losses)
    assert layer.drop_rate.shape == (16,) and not torch.equal(layer.drop_rate, torch.full((16,), 0.35))


@pytest.mark.parametrize("shape", [(6, 8), (6, 4, 5), (6, 8, 3, 3)], ids=["features", "sequence", "channels"])
@pytest.mark.parametrize("make", [lambda: ActivationDropout(p=0.4), lambda: YDrop(warmup_epochs=1)],
                         ids=["activation", "ydrop-warmup"])
def test_compiled_layer_draws_the_eager_mask(make, shape):
    """Same seed, same output, bit for bit, for every mask shape (the op's declared
    shape must be the one it draws)."""
    layer = make().train()
    x = torch.rand(*shape) + 0.1
    torch.manual_seed(4)
    eager = layer(x)
    torch.manual_seed(4)
    compiled = torch.compile(layer, fullgraph=True)(x)
    assert torch.equal(compiled, eager) and (eager == 0).any()
