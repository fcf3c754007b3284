"""Units along ``unit_dim`` and the masks of the guided layers, checked statistically.

The rule (``layers/base.py``): one draw per (sample, unit) shared by every position
after the unit dim (whole channels of a conv map), one draw per element before it
(every token of a (B, T, D) sequence). Seeded; 20000 draws per unit give a standard
error of at most sqrt(0.25 / 20000) ~ 3.5e-3 on a unit's empirical rate, so the
per-unit tolerance is 0.02 (> 5 SE); means over 16 units (320000 draws, SE <= 9e-4)
use 5e-3.
"""

from __future__ import annotations

import pytest
import torch

import ydrop.scores.registry as registry
from ydrop import (
    ActivationDropout,
    CurriculumDropout,
    Dropout,
    ExcitationDropout,
    InformationDropout,
    StandoutDropout,
    YDrop,
    register_score,
)
from ydrop.layers.functional import retain_probability

SAMPLES, TOKENS, FEATURES = 2500, 8, 32  # 20000 rows of 32 units
UNIT_TOL, MEAN_TOL = 0.02, 5e-3


def started(layer):
    layer.set_epoch(layer.warmup_epochs)
    return layer.train()


def ranked(units=FEATURES, samples=12):
    """Scores whose mean ranks unit k at place k (the top half is the strong bucket)."""
    return torch.arange(units, dtype=torch.float32).expand(samples, units).contiguous()


def dropped(out):
    return (out == 0).float()


# ------------------------------------------------------------------- sequences
def test_ydrop_on_a_sequence_drops_each_element_at_its_units_rate():
    torch.manual_seed(0)
    layer = started(YDrop(elasticity=1.0))  # EMA = this step's bucket rates g_B
    layer.set_scores(ranked())
    out = layer(torch.ones(SAMPLES, TOKENS, FEATURES))
    assert layer.drop_rate.shape == (FEATURES,)  # units: the D features, not the T tokens
    rates = layer.drop_rate
    per_unit = dropped(out).mean(dim=(0, 1))
    assert (per_unit - rates).abs().max().item() < UNIT_TOL
    strong = torch.arange(FEATURES) >= FEATURES // 2
    for bucket in (strong, ~strong):
        assert abs(per_unit[bucket].mean().item() - rates[bucket].mean().item()) < MEAN_TOL
    # Per element: two tokens of a sample are independent draws, so they agree with
    # probability q^2 + (1 - q)^2 (a shared per-sample draw would always agree).
    first, second = dropped(out[:, 0]), dropped(out[:, 1])
    agree = (first == second).float().mean(dim=0)
    expected = rates.square() + (1 - rates).square()
    assert (agree - expected).abs().max().item() < 0.04  # 2500 pairs per unit: SE <= 0.01


def test_ydrop_takes_any_sequence_length_but_refuses_another_width():
    layer = started(YDrop())
    layer.set_scores(ranked(16))
    for tokens in (7, 11, 3):
        assert layer(torch.ones(4, tokens, 16)).shape == (4, tokens, 16)
    assert layer.drop_rate.shape == (16,)
    with pytest.raises(ValueError, match=r"YDrop was built for 16 units but its input has 12 along its unit "
                                         r"dimension 2 \(input shape \(4, 7, 12\), unit_dim=None\).*pass unit_dim="):
        layer(torch.ones(4, 7, 12))  # the EMA's width, checked first
    reading = started(YDrop(score="activation"))  # scores always fit: the EMA's width is checked
    reading(torch.ones(4, 7, 16))
    with pytest.raises(ValueError, match=r"built for 16 units but its input has 12 along its unit dimension 2 "
                                         r"\(input shape \(4, 7, 12\), unit_dim=None\); pass unit_dim="):
        reading(torch.ones(4, 7, 12))


def test_excitation_on_a_sequence_keeps_per_eq3_and_rescales_each_token_on_its_own():
    torch.manual_seed(1)
    units = 16
    p_eb = torch.softmax(torch.randn(units) * 1.5, 0)
    layer = ExcitationDropout(p=0.5).train()
    layer.set_scores(p_eb.expand(SAMPLES, units))  # one row per sample, shared by its tokens
    out = layer(torch.ones(SAMPLES, TOKENS, units))
    kept = (out != 0).float()
    expected = retain_probability(p_eb[None], 0.5)[0]
    assert (kept.mean(dim=(0, 1)) - expected).abs().max().item() < UNIT_TOL
    # Each (sample, token) row: kept units times units / (kept in that row), so every
    # non-empty row sums to `units` exactly.
    counts = kept.sum(dim=2)
    rows = counts > 0
    torch.testing.assert_close(out.sum(dim=2)[rows], torch.full_like(counts[rows], float(units)))
    scale = out.amax(dim=2)
    torch.testing.assert_close(scale[rows], units / counts[rows])
    # ... and the scale is the token's own: tokens of one sample keep different counts.
    assert (counts.amax(dim=1) != counts.amin(dim=1)).float().mean().item() > 0.9


def test_excitation_row_rescale_on_a_sequence_has_mean_one_for_uniform_scores():
    """Uniform scores: by symmetry E[out] = P(a row keeps something) ~ 1 - 0.5^16 per
    element. out is 0 or units / kept (~2): std <= 1.1, so over 20000 rows a unit's
    mean has SE <= 8e-3; tolerance 0.04."""
    torch.manual_seed(2)
    units = 16
    layer = ExcitationDropout(p=0.5).train()
    layer.set_scores(torch.full((SAMPLES, units), 1.0 / units))
    out = layer(torch.ones(SAMPLES, TOKENS, units))
    assert (out.mean(dim=(0, 1)) - 1.0).abs().max().item() < 0.04
    assert abs(out.mean().item() - 1.0) < 0.01


def test_activation_dropout_on_a_sequence_scores_each_feature_over_its_tokens():
    torch.manual_seed(3)
    units = 6
    # Token values differ, but each feature's sum over tokens is proportional to a.
    a = torch.tensor([1.0, 2.0, 0.5, 4.0, 1.5, 3.0])
    tokens = torch.tensor([0.5, 1.5, 1.0, 1.0])[:, None] * a
    x = tokens.expand(SAMPLES * 2, 4, units).contiguous()
    out = ActivationDropout(p=0.5).train()(x)
    kept = (out != 0).float().mean(dim=(0, 1))  # 20000 draws per unit
    expected = retain_probability((a / a.sum())[None], 0.5)[0]
    assert (kept - expected).abs().max().item() < UNIT_TOL


def test_warmup_plain_dropout_on_a_sequence_is_per_element():
    torch.manual_seed(4)
    layer = YDrop(warmup_epochs=1, warmup_p=0.3).train()
    out = layer(torch.ones(SAMPLES, TOKENS, FEATURES))
    assert abs(dropped(out).mean().item() - 0.3) < MEAN_TOL
    assert (dropped(out).mean(dim=(0, 1)) - 0.3).abs().max().item() < UNIT_TOL
    agree = (dropped(out[:, 0]) == dropped(out[:, 1])).float().mean().item()
    assert abs(agree - (0.3**2 + 0.7**2)) < 0.01  # independent tokens (80000 pairs)
    torch.testing.assert_close(out[out != 0], torch.full_like(out[out != 0], 1 / 0.7))


# -------------------------------------------------------------------- conv maps
@pytest.mark.parametrize("make", [
    lambda: started(YDrop(elasticity=1.0)),
    lambda: ExcitationDropout(p=0.5).train(),
    lambda: ActivationDropout(p=0.5).train(),
    lambda: YDrop(warmup_epochs=1).train(),  # warm-up: plain dropout
], ids=["ydrop", "excitation", "activation", "warmup"])
def test_conv_maps_drop_whole_channels(make):
    torch.manual_seed(5)
    layer = make()
    channels = 8
    if not isinstance(layer, ActivationDropout):
        layer.set_scores(torch.softmax(torch.randn(20000, channels), 1))
    out = layer(torch.rand(20000, channels, 3, 3) + 0.5).flatten(2)
    zero = (out == 0).all(dim=2)
    assert torch.all(zero | (out != 0).all(dim=2))  # a channel is dropped whole or kept whole
    assert 0.05 < zero.float().mean().item() < 0.95


def test_ydrop_channel_rates_match_the_ema():
    torch.manual_seed(6)
    layer = started(YDrop(elasticity=1.0))
    layer.set_scores(ranked(8))
    out = layer(torch.ones(20000, 8, 2, 2))
    per_channel = dropped(out[:, :, 0, 0]).mean(dim=0)
    assert layer.drop_rate.shape == (8,)
    assert (per_channel - layer.drop_rate).abs().max().item() < UNIT_TOL


def test_an_explicit_unit_dim_makes_a_conv1d_map_drop_whole_channels():
    torch.manual_seed(7)
    layer = started(YDrop(unit_dim=1, elasticity=1.0))
    layer.set_scores(ranked(6))
    out = layer(torch.ones(4000, 6, 10))  # (B, C, L): by default D = 10 would be the units
    assert layer.drop_rate.shape == (6,)
    assert torch.all((out == 0).all(dim=2) | (out != 0).all(dim=2))
    per_channel = dropped(out[:, :, 0]).mean(dim=0)  # 4000 draws: SE <= 8e-3
    assert (per_channel - layer.drop_rate).abs().max().item() < 0.04


def test_a_negative_unit_dim_counts_from_the_end():
    layer = started(YDrop(unit_dim=-1))
    layer.set_scores(ranked(5))
    assert layer(torch.ones(3, 4, 2, 5)).shape == (3, 4, 2, 5)
    assert layer.drop_rate.shape == (5,)
    assert "unit_dim=-1" in repr(layer)


# ------------------------------------------------------------ unit_dim checks
@pytest.mark.parametrize("layer_class", [YDrop, ExcitationDropout, ActivationDropout, Dropout, CurriculumDropout,
                                         StandoutDropout, InformationDropout])
def test_unit_dim_is_stored_shown_and_checked(layer_class):
    assert layer_class().unit_dim is None and "unit_dim" not in repr(layer_class())
    layer = layer_class(unit_dim=2)
    assert layer.unit_dim == 2 and "unit_dim=2" in repr(layer)
    for bad in (0, 1.0, True, "1"):
        with pytest.raises(ValueError, match=rf"unit_dim must be None .* non-zero integer .*got {bad!r}"):
            layer_class(unit_dim=bad)


def test_a_unit_dim_the_input_lacks_is_refused_naming_it():
    layer = ActivationDropout(unit_dim=3).train()
    with pytest.raises(ValueError, match=r"unit_dim=3 does not name a non-batch dimension of a 2-dimensional"):
        layer(torch.ones(4, 5))


def test_scores_for_another_width_name_the_unit_dimension():
    layer = ExcitationDropout().train()
    layer.set_scores(torch.full((4, 5), 0.2))
    with pytest.raises(ValueError, match=r"scores have 5 units but the input of ExcitationDropout has 7 along its "
                                         r"unit dimension 2 \(input shape \(4, 3, 7\), unit_dim=None\)"):
        layer(torch.ones(4, 3, 7))


# --------------------------------------------------------------- registry
@pytest.fixture
def scratch_registry(monkeypatch):
    """Scores registered in a test vanish after it."""
    monkeypatch.setattr(registry, "_SCORES", dict(registry._SCORES))


def test_a_registered_score_from_the_input_needs_no_guide(scratch_registry):
    def not_used(model, inputs, target, layers):
        raise AssertionError("a score read off the input needs no pass")

    # Importance = the square of the unit's summed input: unit 0 holds nearly all.
    register_score("squares", not_used, from_input=lambda x, unit_dim: x.square())
    torch.manual_seed(8)
    layer = ExcitationDropout(p=0.5, score="squares").train()
    assert not layer.needs_guide
    x = torch.ones(20000, 4)
    x[:, 0] = 10.0
    out = layer(x)
    share = torch.tensor([100.0, 1, 1, 1]) / 103
    expected = retain_probability(share[None], 0.5)[0]
    assert ((out != 0).float().mean(0) - expected).abs().max().item() < UNIT_TOL


def test_a_registered_score_without_from_input_asks_the_guide(scratch_registry):
    register_score("zeros", lambda model, inputs, target, layers: {layer: None for layer in layers})
    layer = started(YDrop(score="zeros"))
    assert layer.needs_guide and layer.score_request().kind == "zeros"
    assert not YDrop(score="zeros", warmup_epochs=3).needs_guide  # warm-up: no pass


def test_an_unknown_score_lists_the_registered_ones():
    with pytest.raises(ValueError, match=r"score='saliency' is not a registered score; registered: "
                                         r".*activation.*conductance.*excitation.*gradxact"):
        YDrop(score="saliency")


def test_scores_of_the_wrong_rank_from_a_registered_score_are_refused(scratch_registry):
    register_score("flat", lambda *args: {}, from_input=lambda x, unit_dim: x.sum(dim=1))
    with pytest.raises(ValueError, match=r"scores have shape \(4,\), not \(samples, units\)"):
        ActivationDropout(score="flat").train()(torch.ones(4, 5))
