"""Baseline dropout layers: statistical checks on large seeded batches.

Each rate is measured on 20000 x 64 = 1.28M Bernoulli draws (std of an empirical
rate <= 0.0005) or per unit on 20000 draws (std <= 0.0036); the tolerances below
are about 5 standard deviations or more.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ydrop.layers.baselines import (
    CurriculumDropout,
    Dropout,
    InformationDropout,
    StandoutDropout,
    curriculum_keep_probability,
    information_kl,
    standout_keep_probability,
)

BATCH, UNITS = 20000, 64


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def ones(batch=BATCH, units=UNITS):
    return torch.ones(batch, units)


# --------------------------------------------------------------------------- Dropout
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_keep_rate_and_mean(p):
    y = Dropout(p)(ones())
    assert abs((y != 0).float().mean().item() - (1 - p)) < 0.003
    assert abs(y.mean().item() - 1.0) < 0.01  # mean preserved by the 1/(1-p) rescale
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p)))


def test_dropout_drops_whole_channels():
    x = torch.rand(500, 16, 3, 3) + 0.1
    y = Dropout(0.5)(x)
    kept = (y != 0).flatten(2)
    assert (kept.all(2) | ~kept.any(2)).all()  # each channel all kept or all dropped
    assert abs(kept[:, :, 0].float().mean().item() - 0.5) < 0.03


def test_dropout_identity_in_eval_and_at_zero():
    x = torch.randn(8, 5)
    assert Dropout(0.5).eval()(x) is x
    assert Dropout(0.0)(x) is x
    assert "p=0.3" in repr(Dropout(0.3))


def test_dropout_gradient_is_masked():
    x = torch.randn(50, 20, requires_grad=True)
    y = Dropout(0.5)(x)
    y.sum().backward()
    assert torch.equal(x.grad, (y != 0).float() * 2.0)


# ---------------------------------------------------------------- Curriculum Dropout
def test_curriculum_closed_form():
    assert curriculum_keep_probability(0, 0.5, 5e-4) == 1.0
    assert curriculum_keep_probability(2000, 0.5, 5e-4) == pytest.approx(0.5 * math.exp(-1) + 0.5)
    assert curriculum_keep_probability(10**7, 0.5, 5e-4) == pytest.approx(0.5)
    t = torch.tensor([0.0, 2000.0])
    assert torch.allclose(curriculum_keep_probability(t, 0.5, 5e-4), torch.tensor([1.0, 0.5 * math.exp(-1) + 0.5]))


@pytest.mark.parametrize("t", [0, 500, 2000, 10000, 100000])
def test_curriculum_keep_rate_and_rescale_follow_schedule(t):
    layer = CurriculumDropout(keep_bar=0.4, gamma=5e-4)
    layer.set_iteration(t)
    keep = 0.6 * math.exp(-5e-4 * t) + 0.4
    assert layer.keep_probability == pytest.approx(keep)
    y = layer(ones())
    assert abs((y != 0).float().mean().item() - keep) < 0.003
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / keep), rtol=1e-5)
    assert abs(y.mean().item() - 1.0) < 0.01
    assert int(layer.iteration) == t + 1


def test_curriculum_counts_training_forwards_only_and_saves_counter():
    layer = CurriculumDropout()
    x = torch.randn(4, 6)
    for _ in range(3):
        layer(x)
    layer.eval()
    assert layer(x) is x  # identity in eval, counter unchanged
    assert int(layer.iteration) == 3
    state = layer.state_dict()
    assert int(state["iteration"]) == 3
    fresh = CurriculumDropout()
    fresh.load_state_dict(state)
    assert int(fresh.iteration) == 3 and fresh.keep_probability == layer.keep_probability
    assert "keep_bar=0.5" in repr(layer) and "gamma=0.0005" in repr(layer) and "iteration=3" in repr(layer)


def test_curriculum_first_step_keeps_everything_and_drops_channels():
    layer = CurriculumDropout(keep_bar=0.5, gamma=1.0)
    x = torch.rand(300, 8, 2, 2) + 0.1
    assert torch.equal(layer(x), x)  # keep(0) = 1
    y = layer(x)  # keep(1) = 0.5 exp(-1) + 0.5
    kept = (y != 0).flatten(2)
    assert (kept.all(2) | ~kept.any(2)).all()


# ------------------------------------------------------------------ Standout dropout
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (2.0, -1.0)])
def test_standout_keep_rate_follows_sigmoid(alpha, beta):
    signal = torch.linspace(-3, 3, UNITS)
    x = signal.expand(BATCH, UNITS).clone()
    y = StandoutDropout(alpha, beta)(x)
    expected = torch.sigmoid(alpha * signal + beta)
    rate = (y != 0).float().mean(0)
    nonzero = signal != 0
    assert (rate[nonzero] - expected[nonzero]).abs().max().item() < 0.02
    kept = y != 0
    assert torch.equal(y[kept], x[kept])  # no rescale in training


def test_standout_eval_is_expectation_and_matches_training_mean():
    x = torch.randn(BATCH, 16)
    layer = StandoutDropout(1.5, 0.5)
    expected = x * torch.sigmoid(1.5 * x + 0.5)
    assert torch.allclose(layer.eval()(x), expected)
    layer.train()
    block = torch.linspace(-2, 2, 16).expand(BATCH, 16).clone()
    train_mean = layer(block).mean(0)
    assert torch.allclose(train_mean, layer.eval()(block[:1])[0], atol=0.04)  # std of a mean <= 0.007


def test_standout_feature_map_uses_channel_mean():
    x = torch.rand(4000, 6, 3, 3)
    keep = standout_keep_probability(x, 1.0, 0.0)
    assert torch.allclose(keep, torch.sigmoid(x.mean(dim=(2, 3))))
    layer = StandoutDropout()
    y = layer(x)
    kept = (y != 0).flatten(2)
    assert (kept.all(2) | ~kept.any(2)).all()
    assert torch.allclose(layer.eval()(x), x * keep[:, :, None, None])
    assert "alpha=1.0, beta=0.0" in repr(layer)


# --------------------------------------------------------------- Information dropout
def information_layer(bias, alpha_max=0.7):
    layer = InformationDropout(alpha_max=alpha_max, num_units=len(bias))
    with torch.no_grad():
        layer.alpha_layer.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return layer


def test_information_log_noise_has_learned_std():
    bias = torch.linspace(-3, 3, 16)
    layer = information_layer(bias)
    alpha = InformationDropout.ALPHA_MIN + 0.7 * torch.sigmoid(bias)
    x = torch.rand(BATCH, 16) + 0.5
    log_noise = torch.log(layer(x) / x)
    assert (log_noise.std(0) / alpha - 1).abs().max().item() < 0.03
    assert (log_noise.mean(0)).abs().max().item() < 0.03


def test_information_default_alpha_and_feature_maps():
    layer = InformationDropout()  # lazy, zero-initialised alpha layer
    x = torch.rand(BATCH // 4, 4, 2, 2) + 0.5
    y = layer(x)
    ratio = (y / x).flatten(2)
    assert torch.allclose(ratio, ratio[:, :, :1].expand_as(ratio))  # one noise value per channel
    assert layer.num_units == 4
    assert abs(torch.log(ratio[:, :, 0]).std().item() - (1e-3 + 0.35)) < 0.01


def test_information_kl_closed_form_finite_and_decreasing_in_alpha():
    kls = []
    for b in [-4.0, -1.0, 0.0, 1.0, 4.0]:
        layer = information_layer([b] * 8)
        layer(torch.rand(32, 8))
        alpha = 1e-3 + 0.7 * torch.sigmoid(torch.tensor(b))
        assert layer.kl.dim() == 0 and torch.isfinite(layer.kl)
        assert layer.kl.item() == pytest.approx(-math.log(alpha / 0.701), rel=1e-5)
        kls.append(layer.kl.item())
    assert all(a > b for a, b in zip(kls, kls[1:]))
    assert kls[-1] >= 0
    summed = information_layer([0.0] * 8)
    summed.kl_reduction = "sum"
    summed(torch.rand(32, 8))
    assert summed.kl.item() == pytest.approx(8 * kls[2], rel=1e-5)


def test_information_gradients_reach_alpha_layer():
    layer = information_layer([0.0] * 8)
    x = torch.rand(64, 8) + 0.1
    loss = layer(x).square().sum() + layer.kl
    loss.backward()
    for grad in (layer.alpha_layer.weight.grad, layer.alpha_layer.bias.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    # the KL alone pushes alpha up: its gradient on the bias is negative
    layer.zero_grad()
    layer(x)
    layer.kl.backward()
    assert (layer.alpha_layer.bias.grad < 0).all()


def test_information_eval_and_information_kl():
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), information_layer([0.0] * 8), nn.Linear(8, 6),
                          information_layer([1.0] * 6))
    x = torch.randn(10, 5)
    model(x)
    total = information_kl(model)
    assert total.item() == pytest.approx(model[2].kl.item() + model[4].kl.item())
    model.eval()
    out = model(x)
    assert torch.equal(out, model[4](model[3](model[1](model[0](x)))))  # identity layers in eval
    assert model[2].kl is None and information_kl(model).item() == 0.0
    assert information_kl(nn.Linear(2, 2)).item() == 0.0
    mean_layer = InformationDropout(eval_output="mean", num_units=3).eval()
    z = torch.rand(4, 3)
    assert torch.allclose(mean_layer(z), z * math.exp((1e-3 + 0.35) ** 2 / 2))


def test_information_lazy_layer_loads_state_dict():
    trained = information_layer(torch.linspace(-1, 1, 5))
    trained(torch.rand(3, 5))
    fresh = InformationDropout()
    assert fresh.alpha_layer is None and "units=lazy" in repr(fresh)
    fresh.load_state_dict(trained.state_dict())
    assert torch.equal(fresh.alpha_layer.bias, trained.alpha_layer.bias)
    with pytest.raises(ValueError, match="built for 5 units"):
        fresh(torch.rand(3, 6))


# -------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    "build,argument",
    [
        (lambda: Dropout(p=1.0), "p"),
        (lambda: Dropout(p=-0.1), "p"),
        (lambda: CurriculumDropout(keep_bar=0.0), "keep_bar"),
        (lambda: CurriculumDropout(keep_bar=1.5), "keep_bar"),
        (lambda: CurriculumDropout(gamma=-1e-3), "gamma"),
        (lambda: CurriculumDropout().set_iteration(-1), "iteration"),
        (lambda: StandoutDropout(alpha=float("nan")), "alpha"),
        (lambda: StandoutDropout(beta=None), "beta"),
        (lambda: InformationDropout(alpha_max=0.0), "alpha_max"),
        (lambda: InformationDropout(num_units=0), "num_units"),
        (lambda: InformationDropout(kl_reduction="max"), "kl_reduction"),
        (lambda: InformationDropout(eval_output="sample"), "eval_output"),
    ],
)
def test_bad_arguments_name_the_argument(build, argument):
    with pytest.raises(ValueError, match=rf"^{argument} .*got"):
        build()


@pytest.mark.parametrize("layer", [Dropout(), CurriculumDropout(), StandoutDropout(), InformationDropout()])
def test_one_dimensional_input_is_refused(layer):
    with pytest.raises(ValueError, match=r"\(B, N\).* or \(B, C, H, W\)"):
        layer(torch.ones(5))


def test_dropout_follows_the_guided_mask_rule_on_sequences():
    """(B, T, D): one draw per element, like nn.Dropout (20000 x 8 draws per feature:
    SE <= 1.8e-3, tolerance 0.01)."""
    torch.manual_seed(11)
    out = Dropout(0.3).train()(torch.ones(20000, 8, 4))
    dropped = (out == 0).float()
    assert (dropped.mean(dim=(0, 1)) - 0.3).abs().max().item() < 0.01
    agree = (dropped[:, 0] == dropped[:, 1]).float().mean().item()  # independent tokens
    assert abs(agree - (0.3**2 + 0.7**2)) < 0.01


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_plain_dropout_in_low_precision_is_unbiased(dtype):
    # 1 - p and 1 / (1 - p) rounded to bf16 (0.898, 1.109) biased the drop fraction and
    # the mean; seeded, 10^6 elements: the drop fraction's std is 3e-4.
    torch.manual_seed(0)
    x = torch.ones(1000, 1000, dtype=dtype)
    out = Dropout(p=0.1).train()(x)
    assert out.dtype == dtype
    assert abs((out == 0).float().mean().item() - 0.1) < 1.5e-3
    assert abs(out.float().mean().item() - 1.0) < 2e-3
