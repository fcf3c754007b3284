"""A researcher's own models: scoring under torch.no_grad."""

import pytest
import torch
from torch import nn

import ydrop

B, CLASSES = 6, 3


def tanh_above():
    torch.manual_seed(0)  # Tanh above the scored layers: not the written chain pass, autograd
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 16), nn.Tanh(),
                         nn.Dropout(0.5), nn.Linear(16, CLASSES))


@pytest.mark.parametrize("score", ["conductance", "gradxact"])
def test_scores_under_no_grad(score):
    model = ydrop.convert(tanh_above(), "ydrop")
    x, y = torch.randn(B, 6), torch.randint(0, CLASSES, (B,))
    expected = getattr(ydrop, score)(model, x, y, ["2", "5"])
    with torch.no_grad():
        got = getattr(ydrop, score)(model, x, y, ["2", "5"])
    for a, b in zip(got.values(), expected.values()):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("reuse_forward", [True, False])
def test_guide_scoring_under_no_grad(reuse_forward):
    """A training-mode forward under torch.no_grad (or guide.step there) still scores."""
    model = ydrop.convert(tanh_above(), "ydrop", warmup_epochs=0)
    guide = ydrop.Guide(model, reuse_forward=reuse_forward)
    x, y = torch.randn(B, 6), torch.randint(0, CLASSES, (B,))
    with torch.no_grad():
        guide.step(x, y)
        model(x)
    assert guide.scored_layers == ["2", "5"]
    assert model[2].mean_score.abs().sum() > 0
