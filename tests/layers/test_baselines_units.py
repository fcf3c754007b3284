"""The baselines' units along ``unit_dim``, the guided layers' rule (``layers/base.py``).

(B, T, D): D feature units, one draw per element at its unit's rate; conv maps: whole
channels; an explicit ``unit_dim`` for the rest. Seeded and statistical: 20000 draws
per unit give a standard error of at most sqrt(0.25 / 20000) ~ 3.5e-3 on a unit's
empirical rate, so the per-unit tolerance is 0.02 (> 5 SE); each test states its own
where it differs.
"""

from __future__ import annotations

import math

import pytest
import torch

from ydrop import CurriculumDropout, Dropout, InformationDropout, StandoutDropout

SAMPLES, TOKENS, FEATURES = 2500, 8, 16  # 20000 draws per feature
UNIT_TOL = 0.02
BASELINES = [Dropout, CurriculumDropout, StandoutDropout, InformationDropout]


def curriculum_at(keep: float, **kwargs) -> CurriculumDropout:
    """A Curriculum Dropout far along its schedule: keep(t) = keep_bar (exp(-500) = 0)."""
    layer = CurriculumDropout(keep_bar=keep, gamma=5e-4, **kwargs)
    layer.set_iteration(10**6)
    return layer


def dropped(out: torch.Tensor) -> torch.Tensor:
    return (out == 0).float()


def agreement(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per unit, how often two draws agree (over the batch)."""
    return (a == b).float().mean(dim=0)


# ------------------------------------------------------------ sequences (B, T, D)
@pytest.mark.parametrize("make", [lambda: Dropout(0.3), lambda: curriculum_at(0.7)], ids=["dropout", "curriculum"])
def test_a_sequence_drops_each_element_at_the_rate_and_keeps_the_mean(make):
    torch.manual_seed(0)
    layer = make().train()
    out = layer(torch.ones(SAMPLES, TOKENS, FEATURES))
    assert (dropped(out).mean(dim=(0, 1)) - 0.3).abs().max().item() < UNIT_TOL
    # Per element: two tokens of a sample are independent draws (a per-unit mask
    # shared by the tokens would always agree; one per token would drop whole tokens).
    agree = agreement(dropped(out[:, 0]), dropped(out[:, 1]))
    assert (agree - (0.3**2 + 0.7**2)).abs().max().item() < 0.04  # 2500 pairs per unit: SE <= 0.01
    whole_tokens = (dropped(out).amin(dim=2) == 1).float().mean().item()
    assert whole_tokens < 1e-3  # 0.3 ** 16 ~ 4e-9
    # Mean preserved by the 1 / keep rescale: 320000 values of std sqrt(0.3 / 0.7)
    # ~ 0.65, SE ~ 1.2e-3.
    assert abs(out.mean().item() - 1.0) < 0.01
    torch.testing.assert_close(out[out != 0], torch.full_like(out[out != 0], 1 / 0.7))


@pytest.mark.parametrize("alpha, beta", [(1.0, 0.0), (2.0, -1.0)])
def test_standout_on_a_sequence_keeps_each_element_by_its_own_signal(alpha, beta):
    """Feature j of token t carries the value v[t, j]; each (t, j) cell gets 5000
    draws (SE <= 7.1e-3), tolerance 0.035."""
    torch.manual_seed(1)
    tokens, features = 4, 8
    values = torch.linspace(-2, 2, tokens * features).reshape(tokens, features)
    values = values[:, torch.randperm(features)]  # a feature's value differs between tokens
    x = values.expand(5000, tokens, features).contiguous()
    layer = StandoutDropout(alpha, beta).train()
    out = layer(x)
    expected = torch.sigmoid(alpha * values + beta)
    kept = (out != 0).float().mean(dim=0)
    assert (kept - expected).abs().max().item() < 0.035
    assert (expected.amax(dim=0) - expected.amin(dim=0)).min().item() > 0.1  # so per element, not per unit
    assert torch.equal(out[out != 0], x[out != 0])  # no rescale in training
    # Eval is the expectation x * keep, element by element, and the training mean
    # matches it (std of a cell's mean <= 2 / sqrt(5000) * 0.5 ~ 0.014).
    evaluated = layer.eval()(x[:1])[0]
    torch.testing.assert_close(evaluated, values * expected)
    assert (out.mean(dim=0) - evaluated).abs().max().item() < 0.07


def test_standout_draws_each_element_of_a_sequence_independently():
    torch.manual_seed(2)
    out = StandoutDropout(beta=0.5).train()(torch.zeros(SAMPLES, TOKENS, FEATURES) + 1e-6)
    keep = torch.sigmoid(torch.tensor(0.5)).item()  # s ~ 0: keep = sigmoid(beta)
    kept = (out != 0).float()
    assert (kept.mean(dim=(0, 1)) - keep).abs().max().item() < UNIT_TOL
    expected = keep**2 + (1 - keep) ** 2
    across_tokens = agreement(kept[:, 0], kept[:, 1])  # per feature: 2500 pairs, SE <= 0.01
    assert (across_tokens - expected).abs().max().item() < 0.04
    across_features = agreement(kept[:, :, 0], kept[:, :, 1])  # per token: the same
    assert (across_features - expected).abs().max().item() < 0.04


def information_layer(bias: torch.Tensor, **kwargs) -> InformationDropout:
    layer = InformationDropout(num_units=len(bias), **kwargs)
    with torch.no_grad():
        layer.alpha_layer.bias.copy_(bias)
    return layer


def test_information_dropout_on_a_sequence_draws_noise_per_element_at_its_units_scale():
    torch.manual_seed(3)
    bias = torch.linspace(-3, 3, FEATURES)
    layer = information_layer(bias).train()
    x = torch.rand(SAMPLES, TOKENS, FEATURES) + 0.5
    log_noise = torch.log(layer(x) / x)
    alpha = InformationDropout.ALPHA_MIN + 0.7 * torch.sigmoid(bias)
    # 20000 draws per feature: the std's relative SE is 1 / sqrt(2 * 20000) ~ 0.5 %.
    assert (log_noise.std(dim=(0, 1)) / alpha - 1).abs().max().item() < 0.03
    assert log_noise.mean(dim=(0, 1)).abs().max().item() < 0.03  # the median x is kept
    # Per element: two tokens of a sample carry independent noise (correlation SE
    # 1 / sqrt(2500) = 0.02 per feature; over all 40000 pairs 5e-3).
    first, second = log_noise[:, 0] / alpha, log_noise[:, 1] / alpha
    assert abs((first * second).mean().item()) < 0.03
    assert layer.alpha(x).shape == (SAMPLES, TOKENS, FEATURES)


def test_information_dropout_learns_a_per_token_scale_and_takes_another_length():
    torch.manual_seed(4)
    layer = InformationDropout().train()  # lazy: built for the D features
    x = torch.rand(64, 5, FEATURES) + 0.5
    y = layer(x)
    assert layer.num_units == FEATURES and y.shape == x.shape
    with torch.no_grad():
        layer.alpha_layer.weight.copy_(torch.eye(FEATURES) * 4)
    alpha = layer.alpha(x)
    assert (alpha[:, 0] - alpha[:, 1]).abs().max().item() > 1e-3  # each token's own scale
    layer.zero_grad()
    loss = layer(torch.rand(64, 11, FEATURES)).square().sum() + layer.kl  # another sequence length
    loss.backward()
    assert torch.isfinite(layer.alpha_layer.weight.grad).all() and layer.alpha_layer.weight.grad.abs().sum() > 0
    # kl is averaged over tokens: with zero weights (one alpha for all) it does not
    # depend on T, and "sum" sums the D units of each token.
    fresh = InformationDropout(num_units=FEATURES).train()
    fresh(torch.rand(4, 3, FEATURES))
    short = fresh.kl.item()
    fresh(torch.rand(4, 30, FEATURES))
    assert fresh.kl.item() == pytest.approx(short) and short == pytest.approx(-math.log(0.351 / 0.701), rel=1e-5)
    summed = InformationDropout(num_units=FEATURES, kl_reduction="sum").train()
    summed(torch.rand(4, 7, FEATURES))
    assert summed.kl.item() == pytest.approx(FEATURES * short, rel=1e-5)


def test_information_dropout_eval_mean_on_a_sequence():
    layer = InformationDropout(num_units=4, eval_output="mean").eval()
    x = torch.rand(3, 6, 4)
    torch.testing.assert_close(layer(x), x * math.exp((1e-3 + 0.35) ** 2 / 2))
    assert layer.kl is None


@pytest.mark.parametrize("make", [lambda: Dropout(0.3), lambda: curriculum_at(0.7), StandoutDropout,
                                  InformationDropout], ids=["dropout", "curriculum", "standout", "information"])
def test_every_baseline_takes_batches_of_other_sequence_lengths(make):
    torch.manual_seed(5)
    layer = make().train()
    for tokens in (5, 9, 3):
        x = torch.rand(4, tokens, FEATURES) + 0.5
        assert layer(x).shape == x.shape
        assert layer.eval()(x).shape == x.shape
        layer.train()


# ----------------------------------------------------------------- conv maps
def ratio_per_position(make, shape):
    """out / x of one training forward, flattened over each channel's positions."""
    torch.manual_seed(6)
    x = torch.rand(shape) + 0.5
    return (make().train()(x) / x).flatten(2)


@pytest.mark.parametrize("shape", [(2000, 6, 3, 3), (1000, 4, 2, 2, 2)], ids=["2d", "3d"])
@pytest.mark.parametrize("make", [lambda: Dropout(0.5), lambda: curriculum_at(0.5), StandoutDropout,
                                  InformationDropout], ids=["dropout", "curriculum", "standout", "information"])
def test_conv_maps_get_one_draw_per_sample_and_channel(make, shape):
    ratio = ratio_per_position(make, shape)
    torch.testing.assert_close(ratio, ratio[:, :, :1].expand_as(ratio))  # whole channels
    assert ratio[:, :, 0].unique().numel() > 1  # and not one draw for all


@pytest.mark.parametrize("make", [
    lambda **kw: Dropout(0.5, **kw), lambda **kw: curriculum_at(0.5, **kw),
    StandoutDropout, InformationDropout,
], ids=["dropout", "curriculum", "standout", "information"])
def test_an_explicit_unit_dim_makes_a_conv1d_map_drop_whole_channels(make):
    torch.manual_seed(7)
    channels, length = 6, 10
    x = torch.rand(2000, channels, length) + 0.5  # (B, C, L): by default L would be the units
    layer = make(unit_dim=1).train()
    ratio = layer(x) / x
    torch.testing.assert_close(ratio, ratio[:, :, :1].expand_as(ratio))
    by_default = make().train()(x) / x
    assert (by_default[:, :, 0] != by_default[:, :, 1]).any()  # per element without unit_dim
    if isinstance(layer, InformationDropout):
        assert layer.num_units == channels
        assert layer(torch.rand(8, channels, 3)).shape == (8, channels, 3)  # another length


def test_a_negative_unit_dim_counts_from_the_end():
    torch.manual_seed(8)
    x = torch.rand(500, 3, 4, 5) + 0.5
    layer = InformationDropout(unit_dim=-1).train()
    ratio = layer(x) / x
    assert layer.num_units == 5 and "unit_dim=-1" in repr(layer)
    assert (ratio[:, :, :, 0] != ratio[:, :, :, 1]).all()  # per element: units are last


# ------------------------------------------------------------ unit_dim checks
# Stored, shown in repr and checked like the guided layers': test_units.py
# (test_unit_dim_is_stored_shown_and_checked) covers every layer.
@pytest.mark.parametrize("layer_class", BASELINES)
def test_a_unit_dim_the_input_lacks_is_refused_naming_it(layer_class):
    layer = layer_class(unit_dim=3).train()
    with pytest.raises(ValueError, match=r"unit_dim=3 does not name a non-batch dimension of a 2-dimensional"):
        layer(torch.ones(4, 5))


def test_information_dropout_built_for_another_width_names_the_unit_dimension():
    layer = InformationDropout(num_units=16).train()
    with pytest.raises(ValueError, match=r"InformationDropout was built for 16 units but its input has 12 along "
                                         r"its unit dimension 2 \(input shape \(4, 7, 12\), unit_dim=None\); "
                                         r"pass unit_dim="):
        layer(torch.ones(4, 7, 12))
