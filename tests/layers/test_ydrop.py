"""Y-Drop layer, checked statistically (seeded, large batch, stated tolerances).

With B x N = 20000 x 32 Bernoulli draws per bucket (16 units each), the standard
error of an empirical drop rate is at most sqrt(0.25 / 320000) ~ 9e-4: a
tolerance of 5e-3 is more than five standard errors.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

from ydrop import Guide, YDrop
from ydrop._validation import check_all_finite

BATCH, UNITS, TOL = 20000, 32, 5e-3


def started(layer: YDrop) -> YDrop:
    layer.set_epoch(layer.warmup_epochs)
    return layer.train()


def ranked_scores(units=UNITS, samples=12):
    """Scores whose mean ranks unit k at position k (unit UNITS-1 most important)."""
    torch.manual_seed(3)
    return torch.arange(units, dtype=torch.float32).expand(samples, units) + 0.1 * torch.randn(samples, units)


def dropped_fraction(output):
    return (output == 0).float().mean(dim=0)


def test_bucket_drop_rates_match_their_sampled_rates_and_strong_bucket_is_top():
    torch.manual_seed(0)
    # elasticity 1 makes the EMA equal to this step's g_B, i.e. exposes the draws.
    layer = started(YDrop(elasticity=1.0))
    scores = ranked_scores()
    layer.set_scores(scores)
    out = layer(torch.ones(BATCH, UNITS))
    rates = layer.drop_rate.clone()
    strong = rates > rates.min() + 1e-6
    top = scores.mean(0).topk(UNITS // 2).indices
    assert set(torch.nonzero(strong).flatten().tolist()) == set(top.tolist())
    p_low, p_high = rates[~strong].unique(), rates[strong].unique()
    assert p_low.numel() == 1 and p_high.numel() == 1
    assert 0.1 <= p_low.item() <= 0.5 and 0.6 <= p_high.item() <= 0.9
    empirical = dropped_fraction(out)
    assert abs(empirical[~strong].mean().item() - p_low.item()) < TOL
    assert abs(empirical[strong].mean().item() - p_high.item()) < TOL


def test_draws_follow_the_capped_half_normal():
    torch.manual_seed(1)
    layer = started(YDrop(elasticity=1.0, mu_low=0.45, sigma_low=0.1, p_low_max=0.5))
    scores = ranked_scores()
    lows, highs = [], []
    for _ in range(4000):
        layer.set_scores(scores)
        layer(torch.ones(1, UNITS))
        lows.append(layer.drop_rate[0].item())
        highs.append(layer.drop_rate[-1].item())
    lows, highs = torch.tensor(lows), torch.tensor(highs)
    # P(0.45 + |N(0, 0.1)| > 0.5) = 2 * (1 - Phi(0.5)) = 0.617: that share sits on the cap.
    assert lows.max().item() == pytest.approx(0.5) and lows.min().item() >= 0.45
    assert abs((lows >= 0.5 - 1e-7).float().mean().item() - 0.617) < 0.03
    # Uncapped strong bucket: mean of mu + |N(0, s)| is mu + s * sqrt(2 / pi).
    assert abs(highs.mean().item() - (0.6 + 0.05 * math.sqrt(2 / math.pi))) < 3e-3


def test_ema_after_n_steps_equals_closed_form():
    alpha, steps = 0.1, 7
    layer = started(YDrop(elasticity=alpha, sigma_low=0.0, sigma_high=0.0, num_units=UNITS))
    scores = ranked_scores()
    for _ in range(steps):
        layer.set_scores(scores)
        layer(torch.ones(4, UNITS))
    g = torch.where(torch.arange(UNITS) >= UNITS // 2, 0.6, 0.1)
    expected = g + (0.35 - g) * (1 - alpha) ** steps
    torch.testing.assert_close(layer.drop_rate, expected, rtol=0, atol=1e-6)


def test_kept_units_are_rescaled_by_one_over_one_minus_ema():
    torch.manual_seed(2)
    layer = started(YDrop(elasticity=0.3))
    layer.set_scores(ranked_scores())
    x = torch.rand(256, UNITS) + 0.5
    out = layer(x)
    kept = out != 0
    scale = (out / x)[kept]
    expected = (1 / (1 - layer.drop_rate)).expand_as(x)[kept]
    torch.testing.assert_close(scale, expected)


def test_warmup_is_plain_dropout_at_warmup_rate_and_leaves_ema_alone():
    torch.manual_seed(4)
    layer = YDrop(warmup_epochs=3, warmup_p=0.3, num_units=UNITS).train()
    layer.set_epoch(2)
    layer.set_scores(ranked_scores())  # ignored during warm-up
    out = layer(torch.ones(BATCH, UNITS))
    assert abs(dropped_fraction(out).mean().item() - 0.3) < TOL
    assert torch.allclose(out[out != 0], torch.tensor(1 / 0.7))
    assert torch.equal(layer.drop_rate, torch.full((UNITS,), 0.35))
    layer.set_epoch(3)
    assert not layer.in_warmup and layer.needs_guide


def test_conv_feature_maps_drop_whole_channels():
    torch.manual_seed(5)
    layer = started(YDrop(elasticity=1.0))
    layer.set_scores(torch.randn(3, 8))
    out = layer(torch.ones(500, 8, 4, 4))
    per_channel = out.flatten(2)
    assert torch.all((per_channel == 0).all(2) | (per_channel != 0).all(2))
    assert layer.drop_rate.shape == (8,)


def test_eval_mode_is_identity():
    layer = started(YDrop())
    layer.set_scores(ranked_scores())
    x = torch.randn(5, UNITS)
    assert layer.eval()(x) is x


def test_state_survives_state_dict_round_trip_into_a_fresh_layer():
    layer = started(YDrop(elasticity=0.5))
    layer.set_scores(ranked_scores())
    layer(torch.ones(8, UNITS))
    fresh = YDrop(elasticity=0.5)
    fresh.load_state_dict(layer.state_dict())
    assert torch.equal(fresh.drop_rate, layer.drop_rate)
    assert "drop_rate" in layer.state_dict()


def test_without_scores_falls_back_to_dropout_and_warns_once():
    torch.manual_seed(6)
    layer = started(YDrop(warmup_p=0.4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = layer(torch.ones(BATCH, UNITS))
        layer(torch.ones(2, UNITS))
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "guide.step" in messages[0]
    assert abs(dropped_fraction(out).mean().item() - 0.4) < TOL


def test_extra_repr_shows_settings():
    text = repr(YDrop(elasticity=0.01, warmup_epochs=2))
    assert "elasticity=0.01" in text and "warmup_epochs=2" in text and "mu=(0.1, 0.6)" in text


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"p0": 1.0}, r"p0 must be a number in \[0, 1\), got 1.0"),
        ({"warmup_p": -0.1}, r"warmup_p must be a number in \[0, 1\), got -0.1"),
        ({"p_high_max": 1.5}, r"p_high_max must be a number in \[0, 1\), got 1.5"),
        ({"strong_fraction": 1.0}, r"strong_fraction must be a number in \(0, 1\), got 1.0"),
        ({"strong_fraction": 0}, r"strong_fraction must be a number in \(0, 1\), got 0"),
        ({"mu_high": 0.95}, r"mu_high must be <= p_high_max = 0.9, got mu_high = 0.95"),
        ({"mu_low": 0.6}, r"mu_low must be <= p_low_max = 0.5, got mu_low = 0.6"),
        ({"sigma_low": -0.01}, r"sigma_low must be a finite number >= 0, got -0.01"),
        ({"steps": 0}, r"steps must be an integer >= 1, got 0"),
        ({"score": "gradient"}, r"score='gradient' is not a registered score; registered: .*conductance.*excitation"),
        ({"unit_dim": 0}, r"unit_dim must be None .* or a non-zero integer .*, got 0"),
        ({"unit_dim": 1.5}, r"unit_dim must be None .* or a non-zero integer .*, got 1.5"),
        ({"elasticity": 2.0}, r"elasticity must be a number in \[0, 1\], got 2.0"),
        ({"warmup_epochs": -1}, r"warmup_epochs must be an integer >= 0, got -1"),
    ],
)
def test_bad_arguments_name_the_argument_and_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        YDrop(**kwargs)


def test_the_finite_check_reads_no_value_of_an_empty_tensor():
    check_all_finite("scores", torch.zeros(0, 3))  # amax of nothing would raise


def test_bad_scores_are_refused():
    layer = started(YDrop())
    for bad in ("nan", "inf", "-inf"):  # each one named in the message
        with pytest.raises(ValueError, match=f"scores must be finite, got a value of {bad}"):
            layer.set_scores(torch.tensor([[1.0, 2.0], [3.0, float(bad)]]))
    with pytest.raises(ValueError, match=r"scores must be a tensor of shape \(samples, units\)"):
        layer.set_scores(torch.ones(4))
    layer.set_scores(torch.ones(2, 5))
    with pytest.raises(ValueError, match="scores have 5 units but the input of YDrop has 7"):
        layer(torch.ones(3, 7))


# ------------------------------------------------------------------ score_every
def test_score_every_reuses_the_ranking_and_redraws_the_rates():
    torch.manual_seed(7)
    layer = started(YDrop(score_every=3, elasticity=1.0))  # EMA = this step's g_B
    assert layer.needs_guide
    layer.set_scores(ranked_scores())
    rates = []
    for step in range(3):  # what a Guide does: scores on step 0, keeps them on steps 1, 2
        if step:
            assert not layer.needs_guide
            layer.keep_scores()
        layer(torch.ones(4, UNITS))
        rates.append(layer.drop_rate.clone())
    assert layer.needs_guide  # step 3 asks again
    for step_rates in rates:  # the top half (units 16..31) is strong at every step
        assert step_rates[16:].min() > step_rates[:16].max()
    assert len({round(r[-1].item(), 6) for r in rates}) == 3  # the strong rate is redrawn


def test_score_every_one_asks_for_scores_every_step():
    layer = started(YDrop())
    layer.set_scores(ranked_scores())
    assert layer.needs_guide  # k = 1: the paper's behaviour
    layer.keep_scores()
    assert layer.needs_guide


def test_ranking_and_counter_survive_state_dict_round_trip():
    layer = started(YDrop(score_every=4))
    layer.set_scores(ranked_scores())
    layer(torch.ones(8, UNITS))
    layer.keep_scores()
    state = layer.state_dict()
    assert state["mean_score"].shape == (UNITS,) and state["reuses_left"].item() == 2
    fresh = started(YDrop(score_every=4))
    fresh.load_state_dict(state)
    assert torch.equal(fresh.mean_score, layer.mean_score) and not fresh.needs_guide
    fresh.keep_scores(), fresh.keep_scores()
    assert fresh.needs_guide
    # A state saved before score_every existed loads and asks for fresh scores.
    old = {"drop_rate": state["drop_rate"]}
    older = started(YDrop(score_every=4))
    older.load_state_dict(old)
    assert older.needs_guide and torch.equal(older.drop_rate, layer.drop_rate)


def test_score_every_is_shown_and_checked():
    assert "score_every=4" in repr(YDrop(score_every=4))
    for bad in (0, 2.0, True, "4"):
        with pytest.raises(ValueError, match=rf"score_every must be an integer >= 1, got {bad!r}"):
            YDrop(score_every=bad)


def test_the_kept_ranking_is_computed_once_per_mean_and_follows_every_change(monkeypatch):
    """The ranking of the kept mean is cached for the steps that reuse it, and
    recomputed when the mean is replaced (new scores), overwritten in place
    (``load_state_dict`` into a layer that already has one) or ``strong_fraction``
    changes (from the next step on)."""
    from ydrop.layers import functional, ydrop as ydrop_module

    rankings = []
    original = functional.strong_units
    monkeypatch.setattr(ydrop_module.F_, "strong_units",
                        lambda mean, fraction: rankings.append(fraction) or original(mean, fraction))

    def strong_after_a_step(layer):
        layer(torch.ones(4, UNITS))
        return set(torch.nonzero(layer.drop_rate > layer.drop_rate.min() + 1e-6).flatten().tolist())

    torch.manual_seed(8)
    layer = started(YDrop(score_every=3, elasticity=1.0))
    layer.set_scores(ranked_scores())
    for step in range(3):
        if step:
            layer.keep_scores()
        assert strong_after_a_step(layer) == set(range(16, 32))
    assert len(rankings) == 1
    layer.set_scores(ranked_scores().flip(1))  # new scores: unit 0 is now the most important
    assert strong_after_a_step(layer) == set(range(16)) and len(rankings) == 2
    state = layer.state_dict()
    state["mean_score"] = state["mean_score"].flip(0)
    layer.load_state_dict(state)  # copied into the existing buffer, in place
    assert strong_after_a_step(layer) == set(range(16, 32)) and len(rankings) == 3
    layer.strong_fraction = 0.25
    layer.keep_scores()  # a change takes effect at the next step: the rates of a step are drawn as it begins
    assert strong_after_a_step(layer) == set(range(24, 32)) and rankings[-1] == 0.25


def test_a_score_read_off_the_input_steps_at_every_forward_alone_and_at_every_guide_step_with_a_guide():
    """``score="activation"`` ranks off the layer's own input. Without a Guide every
    training forward is a step (one EMA move each); with one, a step is a
    ``guide.step``: its first forward ranks and moves the EMA, a second one (a
    checkpoint's recomputation) reuses both."""
    alpha = 0.5
    g = torch.tensor([0.1, 0.1, 0.6, 0.6])  # sigma 0: the bucket rates are mu_L, mu_H exactly
    x = torch.arange(1.0, 5.0).expand(8, 4)  # units 2 and 3 are the strong bucket

    def ema_after(moves: int, rates: torch.Tensor = g, start: float | torch.Tensor = 0.35) -> torch.Tensor:
        return rates + (start - rates) * (1 - alpha) ** moves

    layer = YDrop(score="activation", warmup_epochs=0, elasticity=alpha, sigma_low=0.0, sigma_high=0.0).train()
    for _ in range(3):
        layer(x)
    torch.testing.assert_close(layer.drop_rate, ema_after(3), rtol=0, atol=1e-6)

    layer = YDrop(score="activation", warmup_epochs=0, elasticity=alpha, sigma_low=0.0, sigma_high=0.0)
    guide = Guide(nn.Sequential(layer).train())
    guide.set_epoch(0)
    for _ in range(2):
        guide.step(x, torch.zeros(8, dtype=torch.long))
        layer(x), layer(x)
    torch.testing.assert_close(layer.drop_rate, ema_after(2), rtol=0, atol=1e-6)
    guide.step(x, torch.zeros(8, dtype=torch.long))
    layer(x.flip(1)), layer(x)  # ranked on the step's first input: units 0 and 1 strong
    torch.testing.assert_close(layer.drop_rate, ema_after(1, g.flip(0), ema_after(2)), rtol=0, atol=1e-6)


# ------------------------------------------------------- state as tensors only
def test_state_dict_holds_tensors_only_and_loads_with_weights_only(tmp_path):
    """Issue 21: safetensors and ``weights_only`` loaders accept tensors only."""
    layer = started(YDrop(score_every=3))
    layer.set_scores(ranked_scores())
    layer(torch.ones(8, UNITS))
    state = layer.state_dict()
    assert all(isinstance(value, torch.Tensor) for value in state.values())
    assert state["reuses_left"].dtype == torch.int64 and state["reuses_left"].shape == ()
    torch.save(state, tmp_path / "ydrop.pt")
    loaded = torch.load(tmp_path / "ydrop.pt", weights_only=True)
    fresh = started(YDrop(score_every=3))
    fresh.load_state_dict(loaded)
    assert fresh._reuses_left == 2 and not fresh.needs_guide
    assert torch.equal(fresh.mean_score, layer.mean_score) and torch.equal(fresh.drop_rate, layer.drop_rate)


def test_the_counter_buffer_follows_the_live_counter():
    layer = started(YDrop(score_every=3))
    assert layer.reuses_left.item() == -1  # no scores yet
    layer.set_scores(ranked_scores())
    assert layer.reuses_left.item() == 2
    layer.keep_scores()
    assert layer.reuses_left.item() == 1
    layer.clear_scores()
    assert layer.reuses_left.item() == -1 and layer.needs_guide


def test_a_state_with_the_earlier_non_tensor_extra_state_still_loads():
    layer = started(YDrop(score_every=4))
    layer.set_scores(ranked_scores())
    layer(torch.ones(8, UNITS))
    state = dict(layer.state_dict())
    del state["reuses_left"]
    state["_extra_state"] = {"reuses_left": 3}  # what earlier versions saved
    fresh = started(YDrop(score_every=4))
    fresh.load_state_dict(state)  # strict: no unexpected or missing key
    assert fresh._reuses_left == 3 and fresh.reuses_left.item() == 3
    assert torch.equal(fresh.mean_score, layer.mean_score)
    assert "_extra_state" in state  # the caller's dict is left alone


# ------------------------------------------------------- low-precision models
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_ema_of_a_layer_cast_to_half_precision_moves_as_in_float32(dtype):
    """Steps alpha (g - p) ~ 2.5e-4 are below bf16's resolution near p0 (and coarse
    in fp16): the EMA accumulates in float32 whatever the layer was cast to. The
    only difference left is p0 rounded once by the cast (< 4e-4), shrinking by
    (1 - alpha) each step; the output keeps the input's dtype."""
    steps, layers = 20, {}
    for name, cast in (("float32", torch.float32), ("half", dtype)):
        torch.manual_seed(9)
        layer = started(YDrop(num_units=UNITS).to(cast))
        start = layer.drop_rate.float().clone()
        for _ in range(steps):
            layer.set_scores(ranked_scores())
            out = layer(torch.ones(4, UNITS, dtype=cast))
            assert out.dtype == cast
        layers[name] = (layer, start)
    (full, full_start), (half, half_start) = layers["float32"], layers["half"]
    assert half.drop_rate.dtype == torch.float32
    moved = (half.drop_rate != half_start).sum().item()
    assert moved == (full.drop_rate != full_start).sum().item() == UNITS
    torch.testing.assert_close(half.drop_rate - half_start, full.drop_rate - full_start, rtol=0, atol=1e-5)
    torch.testing.assert_close(half.drop_rate, full.drop_rate, rtol=0, atol=4e-4)


def test_a_model_cast_to_bf16_guides_its_ema_like_the_float32_model():
    """The reviewer's case: fc1 cast to bf16 and trained by the Guide."""
    import ydrop

    def ema_moves(dtype):
        torch.manual_seed(0)
        model = ydrop.models.create("fc1", 10, (1, 8, 8), dropout="ydrop", hidden=(32, 32),
                                    dropout_kwargs={"warmup_epochs": 0}).to(dtype)
        starts = [m.drop_rate.float().clone() for m in model.modules() if isinstance(m, YDrop)]
        guide = ydrop.Guide(model)
        guide.set_epoch(0)
        model.train()
        x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
        for _ in range(20):
            guide.step(x.to(dtype), y)
            assert model(x.to(dtype)).dtype == dtype
        return [m.drop_rate - s for m, s in zip((m for m in model.modules() if isinstance(m, YDrop)), starts)]

    for full, half in zip(ema_moves(torch.float32), ema_moves(torch.bfloat16)):
        assert (half != 0).sum() == (full != 0).sum() == 32
        # bf16 scores may rank a near-tie unit into the other bucket on some step;
        # otherwise every unit moves as in float32.
        assert (half - full).abs().mean() < 0.1 * full.abs().mean()


def test_a_float32_ema_round_trips_through_a_model_cast_to_bf16():
    layer = started(YDrop(num_units=UNITS, elasticity=0.01).to(torch.bfloat16))
    layer.set_scores(ranked_scores())
    layer(torch.ones(4, UNITS, dtype=torch.bfloat16))
    state = layer.state_dict()
    assert state["drop_rate"].dtype == torch.float32
    fresh = YDrop(num_units=UNITS, elasticity=0.01).to(torch.bfloat16)
    fresh.load_state_dict(state)
    assert fresh.drop_rate.dtype == torch.float32 and torch.equal(fresh.drop_rate, layer.drop_rate)


# ------------------------------------------------------- a state saved lazy
def _a_model(num_units=None):
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(),
                               YDrop(warmup_epochs=0, num_units=num_units), torch.nn.Linear(16, 3))


@pytest.mark.parametrize("num_units", [None, 16])
def test_a_state_saved_before_the_first_guided_step_loads_into_a_stepped_layer(num_units):
    """Loading it resets the layer to a fresh one: lazy, no scores, and the next
    steps draw what a fresh layer draws."""
    import copy

    torch.manual_seed(1)
    model = _a_model()
    before = copy.deepcopy(model.state_dict())
    assert before["2.drop_rate"].shape == (0,)
    x = torch.rand(6, 16)

    def steps(layer):
        torch.manual_seed(2)
        outs = []
        for _ in range(3):
            layer.set_scores(ranked_scores(16))
            outs.append(layer(x))
        return outs, layer.drop_rate.clone()

    steps(started(model[2]))  # now allocated (16,) with a kept mean
    for target in (model, _a_model(num_units)):
        target.load_state_dict(before)
        layer = target[2]
        assert layer.drop_rate.shape == (0,) and layer.mean_score.shape == (0,) and layer.reuses_left.item() == -1
        assert "units=lazy" in repr(layer)
        assert {k: v.shape for k, v in target.state_dict().items()} == {k: v.shape for k, v in before.items()}
        got, fresh = steps(started(layer)), steps(started(YDrop(warmup_epochs=0)))
        assert all(torch.equal(a, b) for a, b in zip(got[0], fresh[0])) and torch.equal(got[1], fresh[1])
    # and a stepped state still loads into a lazy layer
    lazy = _a_model()
    lazy.load_state_dict(model.state_dict())
    assert torch.equal(lazy[2].drop_rate, model[2].drop_rate)


def test_two_different_unit_counts_still_fail_to_load():
    stepped = started(YDrop(num_units=8))
    with pytest.raises(RuntimeError, match="size mismatch for drop_rate"):
        stepped.load_state_dict(YDrop(num_units=16).state_dict())


def test_a_wrong_unit_count_is_refused_already_in_warmup():
    """num_units=16 against 12 features: the error comes at the first training forward,
    not epochs later when the warm-up ends."""
    layer = YDrop(num_units=16, warmup_epochs=2).train()
    with pytest.raises(ValueError, match="built for 16 units but its input has 12"):
        layer(torch.randn(4, 12))


def test_a_drop_rate_given_as_first_argument_is_told_what_steps_is():
    with pytest.raises(ValueError, match=r"steps must be an integer >= 1 .*got 0.5: YDrop's first argument is not a "
                                         r"drop rate.*warmup_p="):
        YDrop(0.5)


@pytest.mark.parametrize("num_units", [None, UNITS])
@pytest.mark.parametrize("dtype, ema", [(torch.float64, torch.float64), (torch.bfloat16, torch.float32)])
def test_the_ema_dtype_after_a_model_cast_does_not_depend_on_num_units(num_units, dtype, ema):
    layer = started(YDrop(num_units=num_units)).to(dtype)
    layer.set_scores(ranked_scores())
    layer(torch.ones(8, UNITS, dtype=dtype))
    assert layer.drop_rate.dtype == ema


def test_a_lazy_layer_of_a_double_model_loads_the_ema_in_float64():
    trained = started(YDrop(elasticity=0.5))
    trained.set_scores(ranked_scores())
    trained(torch.ones(8, UNITS))
    lazy = YDrop(elasticity=0.5).double()
    lazy.load_state_dict(trained.state_dict())
    assert lazy.drop_rate.dtype == torch.float64 and torch.equal(lazy.drop_rate.float(), trained.drop_rate)


def test_a_layer_pickled_with_the_earlier_step_fields_loads_and_trains():
    """``torch.save(model)`` of an earlier version kept the step state in three
    attributes (``_step_draw``, ``_ema_moved``, ``_awaiting``); unpickling maps them."""
    layer = started(YDrop(score_every=2))
    layer.set_scores(ranked_scores())
    layer(torch.ones(8, UNITS))
    state = layer.__getstate__()
    step = state.pop("_step")
    state.update(_step_draw=step.draw, _ema_moved=step.ema_moved, _awaiting=step.awaiting)
    old = YDrop.__new__(YDrop)
    old.__setstate__(state)
    assert torch.equal(old._step.draw, step.draw) and old._step.ema_moved and old._step.awaiting is None
    assert not hasattr(old, "_step_draw")
    drop_rate = old.drop_rate.clone()
    old.keep_scores()  # the next step: new draws, the EMA moves at its forward
    assert old(torch.ones(8, UNITS)).shape == (8, UNITS) and not torch.equal(old.drop_rate, drop_rate)
