"""The analysis of a user's sequence model: units along unit_dim, as in the scores and layers
((B, T, D) -> the D features at every token; a layer's own unit_dim), not dim 1."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ydrop
from ydrop.analysis import conservative_units, feeding_layer, random_removal, ranked_removal, remove_units, utilisation

B, T, D = 4, 5, 8


class Tokens(nn.Module):
    """(B, T, 3) -> a Linear with T rows -> a Linear with D rows -> dropout slot (B, T, D) -> head;
    with ``attention``, a self-attention between the Linear and the slot."""

    def __init__(self, attention=False):
        super().__init__()
        torch.manual_seed(0)
        self.inp, self.lin = nn.Linear(3, T), nn.Linear(T, D)
        self.attn = nn.MultiheadAttention(D, 2, batch_first=True) if attention else None
        self.drop, self.head = nn.Dropout(0.5), nn.Linear(D, 3)

    def forward(self, x):
        h = self.lin(self.inp(x)).relu()
        if self.attn is not None:
            h = self.attn(h, h, h, need_weights=False)[0]
        return self.head(self.drop(h).mean(1))


def data():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(B, T, 3, generator=g), torch.randint(0, 3, (B,), generator=g))]


def test_removing_a_unit_of_a_sequence_removes_that_feature_at_every_token():
    model, ((x, _),) = Tokens().eval(), data()
    keep = torch.ones(D)
    keep[[0, 5]] = 0
    with remove_units(model.drop, keep):
        got = model(x)
    torch.testing.assert_close(got, model.head((model.lin(model.inp(x)).relu() * keep).mean(1)))
    curve = ranked_removal(model, data(), "drop", ranking_data=data(), fractions=(0.0, 1.0), progress=False)
    assert curve.accuracy_mean[0] == curve.unpruned_accuracy
    assert random_removal(model, data(), "drop", fractions=(0.0, 0.5), repeats=2, progress=False).grid == [0.0, 0.5]


def test_feeding_layer_of_a_sequence_layer_is_the_linear_with_d_rows():
    model, ((x, _),) = Tokens(), data()
    assert feeding_layer(model, "drop", x) == "lin"  # not "inp", whose T rows match the token count
    with pytest.raises(ValueError, match=r"'attn' \(MultiheadAttention\), whose weights are not one row per unit"):
        feeding_layer(Tokens(attention=True), "drop", x)
    with pytest.raises(ValueError, match=r"'drop' names no weight .*not the dropout slot .*feeding_layer"):
        conservative_units(model.state_dict(), model.state_dict(), "drop", 0.1)


def test_utilisation_follows_the_layers_own_unit_dim():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(), ydrop.ExcitationDropout(unit_dim=1), nn.Flatten(),
                          nn.Linear(4 * 6, 3)).eval()
    result = utilisation(model, [(torch.randn(5, 2, 8), torch.randint(0, 3, (5,)))], "2")
    assert result.units == 4 and 0 < result.neurons_on <= 4
