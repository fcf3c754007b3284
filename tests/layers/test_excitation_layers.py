"""Excitation Dropout and Activation Dropout, checked statistically.

Batches of 20000 samples: the standard error of an empirical keep rate is at most
sqrt(0.25 / 20000) ~ 3.5e-3 per unit; per-unit tolerances are 0.02 (> 5 SE) and
tolerances on means over units are 5e-3.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from ydrop import ActivationDropout, ExcitationDropout
from ydrop.layers.functional import retain_probability

BATCH = 20000


def test_eq3_special_points_and_monotone():
    n, base = 10, 0.5
    # N is the row length: the values need not sum to 1 for the formula itself.
    p_eb = torch.tensor([[0.0, 1.0 / n, 1.0] + [0.05] * (n - 3)])
    keep = retain_probability(p_eb, base)
    torch.testing.assert_close(keep[0, :3], torch.tensor([1.0, base, 0.0]))
    grid = torch.linspace(0, 1, 101)[None]
    assert torch.all(retain_probability(grid, 0.3).diff() <= 1e-7)


def test_uniform_scores_keep_at_base_rate_with_rescale():
    torch.manual_seed(0)
    layer = ExcitationDropout(p=0.3).train()
    units = 20
    layer.set_scores(torch.full((BATCH, units), 1.0 / units))
    x = torch.ones(BATCH, units)
    out = layer(x)
    kept = (out != 0).float()
    assert abs(kept.mean().item() - 0.7) < 5e-3
    assert (kept.mean(0) - 0.7).abs().max().item() < 0.02
    # Kept units of a sample are scaled by N / kept-in-that-sample.
    counts = kept.sum(1, keepdim=True)
    expected = (units / counts.clamp_min(1)).expand_as(out)
    torch.testing.assert_close(out[out != 0], expected[out != 0])


def test_empirical_keep_rates_follow_eq3():
    torch.manual_seed(1)
    units = 8
    p_eb = torch.softmax(torch.randn(units) * 1.5, 0)
    layer = ExcitationDropout(p=0.5).train()
    layer.set_scores(p_eb.expand(BATCH, units))
    out = layer(torch.ones(BATCH, units))
    empirical = (out != 0).float().mean(0)
    expected = retain_probability(p_eb[None], 0.5)[0]
    assert (empirical - expected).abs().max().item() < 0.02


def test_unit_holding_all_evidence_is_always_dropped():
    torch.manual_seed(2)
    layer = ExcitationDropout(p=0.5).train()
    scores = torch.zeros(BATCH, 6)
    scores[:, 2] = 1.0
    layer.set_scores(scores)
    out = layer(torch.ones(BATCH, 6))
    assert torch.all(out[:, 2] == 0)
    assert torch.all(out[:, [0, 1, 3, 4, 5]] != 0)  # p_EB = 0: always kept


def test_sample_with_every_unit_dropped_gives_zeros_not_nan():
    torch.manual_seed(3)
    layer = ExcitationDropout(p=0.99).train()
    layer.set_scores(torch.full((BATCH, 2), 0.5))
    out = layer(torch.ones(BATCH, 2))
    assert torch.isfinite(out).all()
    all_dropped = (out == 0).all(1)
    assert all_dropped.float().mean().item() > 0.9


def test_conv_maps_drop_whole_channels_per_sample():
    torch.manual_seed(4)
    layer = ExcitationDropout(p=0.5).train()
    layer.set_scores(torch.softmax(torch.randn(300, 6), 1))
    out = layer(torch.ones(300, 6, 3, 3)).flatten(2)
    assert torch.all((out == 0).all(2) | (out != 0).all(2))
    kept = (out != 0).all(2).float().sum(1)
    torch.testing.assert_close(out[:, :, 0][out[:, :, 0] != 0], (6 / kept[:, None]).expand(300, 6)[out[:, :, 0] != 0])


def test_scores_for_another_batch_size_raise():
    layer = ExcitationDropout().train()
    layer.set_scores(torch.full((4, 3), 1 / 3))
    with pytest.raises(ValueError, match="scores for 4 samples but the batch has 5"):
        layer(torch.ones(5, 3))


def test_eval_identity_and_repr_and_bad_rate():
    layer = ExcitationDropout(p=0.25)
    x = torch.randn(3, 4)
    assert layer.eval()(x) is x
    assert "p=0.25" in repr(layer) and "score='excitation'" in repr(layer)
    with pytest.raises(ValueError, match=r"p must be a number in \[0, 1\), got 1.0"):
        ExcitationDropout(p=1.0)
    with pytest.raises(ValueError, match=r"score='saliency' is not a registered score; registered: .*activation"):
        ActivationDropout(score="saliency")


def test_activation_dropout_needs_no_guide_and_follows_eq3():
    torch.manual_seed(5)
    layer = ActivationDropout(p=0.5).train()
    a = torch.tensor([1.0, 2.0, 0.0, 5.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = layer(a.expand(BATCH, 4).contiguous())
    empirical = (out != 0).float().mean(0)
    expected = retain_probability((a / a.sum())[None], 0.5)[0]
    active = a > 0  # a zero activation reads as dropped whatever its mask
    assert (empirical - expected)[active].abs().max().item() < 0.02


def test_activation_dropout_all_zero_activations_fall_back_to_uniform():
    torch.manual_seed(6)
    layer = ActivationDropout(p=0.4).train()
    x = torch.zeros(BATCH, 10)
    x[:, 0] = 0.0
    # All-zero input: the mask is still drawn at the base rate; measure it via a
    # hook-free route: same scores on a ones input.
    from ydrop.scores.activation import activation_score

    torch.testing.assert_close(activation_score(x), torch.full((BATCH, 10), 0.1))
    layer._current_scores = lambda _x: activation_score(x)  # the all-zero scores, applied to ones
    out = layer(torch.ones(BATCH, 10))
    assert abs((out != 0).float().mean().item() - 0.6) < 5e-3


def test_excitation_dropout_without_guide_falls_back_and_warns():
    layer = ExcitationDropout(p=0.2).train()
    with pytest.warns(RuntimeWarning, match="plain dropout with p=0.2"):
        layer(torch.ones(10, 4))


def test_inverse_rescale_is_unbiased_per_unit_and_safe_at_keep_zero():
    # rescale="inverse": each kept unit times 1 / keep, so E[out] = x per unit
    # (std of the mean of x / keep over 20000 samples <= sqrt((1 - k) / k / 20000),
    # 0.015 for k = 0.1; tolerance 0.06 on units with keep >= 0.1, i.e. 4 SE).
    torch.manual_seed(3)
    units = 8
    p_eb = torch.tensor([1.0] + [0.0] * (units - 1))  # unit 0 holds all evidence: keep 0
    spread = torch.softmax(torch.randn(units) * 1.5, 0)
    for scores in (p_eb, spread):
        layer = ExcitationDropout(p=0.5, rescale="inverse").train()
        layer.set_scores(scores.expand(BATCH, units))
        out = layer(torch.ones(BATCH, units))
        assert torch.isfinite(out).all()
        keep = retain_probability(scores[None], 0.5)[0]
        means = out.mean(0)
        assert (means[keep == 0] == 0).all()
        assert (means[keep >= 0.1] - 1).abs().max().item() < 0.06
        assert ((out != 0).float().mean(0) - keep).abs().max().item() < 0.02  # Eq. 3 unchanged
    assert "rescale='inverse'" in repr(ActivationDropout(rescale="inverse"))


def test_unknown_rescale_is_refused_with_the_allowed_values():
    with pytest.raises(ValueError, match=r"rescale must be one of 'per_sample', 'inverse'; got 'mean'"):
        ExcitationDropout(rescale="mean")
