"""Scores on models that are not chains: a residual network and a transformer block
(LayerNorm, GELU, attention) with (B, T, D) activations; gradient x activation
against a per-sample loop; the registry; and which model takes which pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerConductance
from torch import nn

import ydrop
from ydrop.scores import gradxact, register_score, registered_scores, score_kind


class Block(nn.Module):
    """A pre-norm transformer block on (B, T, D) tokens with a pooled classifier."""

    def __init__(self, dropout=nn.Dropout, d: int = 8, classes: int = 4):
        super().__init__()
        self.embed = nn.Linear(6, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.drop1, self.drop2 = dropout(), dropout()
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), dropout(), nn.Linear(2 * d, d))
        self.head = nn.Sequential(dropout(), nn.Linear(d, classes))

    def forward(self, x):
        h = self.embed(x)
        a = self.norm1(h)
        h = h + self.drop1(self.attn(a, a, a, need_weights=False)[0])
        h = h + self.drop2(self.mlp(self.norm2(h)))
        return self.head(h.mean(dim=1))

    def dropouts(self):
        return [self.drop1, self.mlp[2], self.drop2, self.head[0]]


class Residual(nn.Module):
    def __init__(self, dropout=nn.Dropout):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.block = nn.Sequential(nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(), dropout())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), dropout(), nn.Linear(6, 4))

    def forward(self, x):
        h = self.stem(x)
        return self.head(h + self.block(h))

    def dropouts(self):
        return [self.block[3], self.head[2]]


CASES = {"transformer": (Block, (5, 6)), "residual": (Residual, (3, 6, 6))}


def case(name, dropout=nn.Dropout):
    make, shape = CASES[name]
    torch.manual_seed(0)
    model = make(dropout).double().eval()
    return model, torch.randn(3, *shape, dtype=torch.double), torch.tensor([0, 3, 1])


def per_unit(values):
    """Captum-side reduction: (B, T, D) -> (B, D), (B, C, H, W) -> (B, C)."""
    if values.dim() == 3:
        return values.sum(1)
    return values.flatten(2).sum(2) if values.dim() > 2 else values


@pytest.mark.parametrize("name", list(CASES))
def test_conductance_matches_captum(name):
    model, x, y = case(name)
    ours = ydrop.conductance(model, x, y, model.dropouts(), steps=4)
    for layer in model.dropouts():
        captum = LayerConductance(model, layer).attribute(x, baselines=x * 0, target=y, n_steps=4,
                                                          method="riemann_trapezoid")
        torch.testing.assert_close(ours[layer], per_unit(captum), rtol=1e-5, atol=1e-9)


def gradxact_loop(model, x, y, layer):
    """Activation times gradient, one sample at a time, with autograd."""
    rows = []
    for sample, target in zip(x, y):
        seen = []
        handle = layer.register_forward_hook(lambda _m, _a, out: seen.append(out) or out)
        with torch.enable_grad():
            logits = model(sample.unsqueeze(0))
            (grad,) = torch.autograd.grad(logits[0, target], seen[0])
        handle.remove()
        rows.append(per_unit(seen[0] * grad)[0])
    return torch.stack(rows)


def fc():
    torch.manual_seed(2)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Dropout(), nn.Linear(16, 16), nn.ReLU(),
                         nn.Dropout(), nn.Linear(16, 4)).double().eval()


@pytest.mark.parametrize("name", ["fc", *CASES])
def test_gradxact_matches_a_loop_over_samples(name):
    if name == "fc":
        model, x, y = fc(), torch.randn(3, 3, 4, dtype=torch.double), torch.tensor([0, 3, 1])
        layers = [model[3], model[6]]
    else:
        model, x, y = case(name)
        layers = model.dropouts()
    ours = gradxact(model, x, y, layers)
    for layer in layers:
        torch.testing.assert_close(ours[layer], gradxact_loop(model, x, y, layer), rtol=1e-9, atol=1e-12)


def test_guided_layers_in_a_transformer_take_the_features_as_units_for_any_length():
    torch.manual_seed(0)
    model = Block(lambda: ydrop.YDrop(warmup_epochs=0)).train()
    guide = ydrop.Guide(model)
    guide.set_epoch(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for length in (5, 9, 3):
        x, y = torch.randn(10, length, 6), torch.randint(0, 4, (10,))
        guide.step(x, y)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert [layer.drop_rate.shape for layer in model.dropouts()] == [(8,), (16,), (8,), (8,)]
    assert torch.isfinite(loss)


def magnitude(model, inputs, target, layers):
    """A user's score: mean absolute activation per unit."""
    seen = {}
    handles = [layer.register_forward_hook(lambda m, _a, out: seen.__setitem__(m, out)) for layer in layers]
    with torch.no_grad():
        model(inputs)
    for handle in handles:
        handle.remove()
    return {layer: seen[layer].abs() for layer in layers}


def test_a_user_defined_score_runs_end_to_end():
    register_score("magnitude", magnitude)
    assert "magnitude" in registered_scores()
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), ydrop.YDrop(score="magnitude", warmup_epochs=0),
                          nn.Linear(16, 4)).train()
    guide = ydrop.Guide(model)
    guide.set_epoch(0)
    x, y = torch.randn(8, 12), torch.randint(0, 4, (8,))
    given = guide.step(x, y)
    expected = torch.relu(model[0](x)).abs().mean(0)
    torch.testing.assert_close(model[2].mean_score, expected)
    assert given["2"].shape == (8, 16)  # whole_batch by default
    F.cross_entropy(model(x), y).backward()


def test_an_unknown_score_lists_the_registered_ones():
    with pytest.raises(ValueError, match=r"score='nope' is not a registered score; registered: .*conductance.*"
                                         r"gradxact"):
        score_kind("nope")
    with pytest.raises(ValueError, match="nope"):
        ydrop.YDrop(score="nope")
    with pytest.raises(TypeError, match="fn must be callable"):
        register_score("broken", 3)


@pytest.mark.parametrize(
    "name, shape, written",
    [("fc1", (1, 28, 28), True), ("s2", (3, 32, 32), True), ("wrn-10-1", (3, 32, 32), False),
     ("transformer", None, False), ("residual", None, False)],
)
def test_which_models_take_the_written_chain_pass(name, shape, written, monkeypatch):
    """The one test of routes: chains of Linear / ReLU above the lowest scored layer
    take the written backward (no autograd), other models autograd's."""
    calls = []
    grad = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: calls.append(1) or grad(*a, **k))
    if shape is None:
        model, x, y = case(name)
        layers = model.dropouts()
    else:
        model = ydrop.models.create(name, in_shape=shape, dropout=nn.Dropout, width_multiplier=0.125).eval()
        x, y, layers = torch.rand(2, *shape), torch.tensor([0, 1]), model.dropout_modules()
    ydrop.conductance(model, x, y, layers, steps=3)
    assert (not calls) is written
