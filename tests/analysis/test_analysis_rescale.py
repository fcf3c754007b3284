"""train_test_scale: the factor by which a layer scales its active units in training.

Checked against closed forms on inputs with a known share of active units, and
statistically (seeded, thousands of elements, stated tolerances)."""

import math

import pytest
import torch
from torch import nn

import ydrop
from ydrop.analysis.rescale import train_test_scale
from ydrop.layers.functional import retain_probability

UNITS = 1000


def half_active(batch: int = 256) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every sample: the first half of the units at 1, the rest 0 (off ReLU units)."""
    x = torch.zeros(batch, UNITS)
    x[:, : UNITS // 2] = 1.0
    return [(x, torch.zeros(batch, dtype=torch.long))]


def test_authors_rescale_shrinks_active_units_as_eq3_predicts():
    # Activation Dropout: p_Act = 2 / N on the active half, 0 on the rest. Eq. 3 keeps an
    # active unit with probability q and every inactive one; N / kept then scales a
    # kept unit by N / (N / 2 + q N / 2) = 2 / (1 + q), so an active unit gets q * 2 / (1 + q).
    torch.manual_seed(0)
    q = float(retain_probability(torch.full((UNITS,), 2.0 / UNITS), 0.5)[0])
    model = nn.Sequential(ydrop.ActivationDropout(p=0.5), nn.Linear(UNITS, 3))
    result = train_test_scale(model, half_active(), repeats=2)["0"]
    assert result.active_share == 0.5
    assert result.kept_share == pytest.approx(q, abs=0.01)  # 256 000 Bernoulli draws: sd 0.001
    assert result.kept_scale == pytest.approx(2 / (1 + q), rel=0.01)
    assert result.train_scale == pytest.approx(2 * q / (1 + q), rel=0.02)
    assert result.train_scale == pytest.approx(result.kept_share * result.kept_scale, rel=1e-9)


@pytest.mark.parametrize("make", [
    lambda: ydrop.ActivationDropout(p=0.5, rescale="inverse"),
    lambda: ydrop.Dropout(p=0.5),
])
def test_unbiased_rescales_keep_active_units_at_their_test_size_on_average(make):
    torch.manual_seed(1)
    result = train_test_scale(nn.Sequential(make(), nn.Linear(UNITS, 3)), half_active(), repeats=2)["0"]
    assert result.train_scale == pytest.approx(1.0, abs=0.02)


def test_guided_layers_are_scored_by_a_guide_and_the_model_is_left_alone():
    torch.manual_seed(2)
    model = ydrop.models.create("fc1", dropout="excitation", in_shape=(1, 8, 8)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = [(torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,)))]
    results = train_test_scale(model, data, repeats=2)
    assert set(results) == {name for name, m in model.named_modules() if isinstance(m, ydrop.ExcitationDropout)}
    for result in results.values():
        assert 0 < result.active_share < 1
        # N / kept counts the off units as kept: active ones shrink in training.
        assert 0 < result.train_scale < 1 and math.isfinite(result.kept_scale)
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_model_without_dropout_layers_and_bad_repeats_are_refused_by_name():
    with pytest.raises(ValueError, match="no guided dropout layer"):
        train_test_scale(nn.Linear(3, 3), half_active())
    with pytest.raises(ValueError, match="repeats"):
        train_test_scale(nn.Sequential(ydrop.Dropout(0.5)), half_active(), repeats=0)
