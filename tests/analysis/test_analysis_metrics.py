"""Analysis metrics on tiny networks whose answer is known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import ydrop
from ydrop.analysis import (
    ConductanceSpread,
    ConservativeUnits,
    Utilisation,
    conductance_spread,
    conservative_units,
    feeding_layer,
    spread_from_scores,
    utilisation,
    utilisation_from_scores,
)


def constant_layer_net(bias, classes=3, head=None):
    """x (B, 4) -> Linear with zero weights and ``bias`` -> ReLU -> Identity (the
    analysed layer) -> Linear head. Every sample gives the layer the output relu(bias)."""
    units = len(bias)
    first = nn.Linear(4, units)
    out = nn.Linear(units, classes)
    with torch.no_grad():
        first.weight.zero_()
        first.bias.copy_(torch.tensor(bias, dtype=torch.float32))
        out.weight.copy_(torch.ones(classes, units) if head is None else head)
        out.bias.zero_()
    return nn.Sequential(first, nn.ReLU(), nn.Identity(), out)


def batches(count=3, size=5, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 4, generator=g), torch.randint(0, classes, (size,), generator=g)) for _ in range(count)]


# ------------------------------------------------------------------ utilisation


@pytest.mark.parametrize("k", [1, 3, 6])
def test_neurons_on_counts_exactly_the_active_units(k):
    net = constant_layer_net([1.0] * k + [-1.0] * (6 - k))
    result = utilisation(net, batches(), "2")
    assert result.neurons_on == k
    assert result.samples == 15 and result.units == 6
    # k equal activations: the normalised activations are uniform over k units
    assert result.entropy_activations == pytest.approx(math.log(k), abs=1e-12)


def test_uniform_activations_have_entropy_log_n_in_nats():
    net = constant_layer_net([0.7] * 8)
    result = utilisation(net, batches(), "2")
    assert result.entropy_activations == pytest.approx(math.log(8), abs=1e-12)  # nats, not bits (3.0)
    # a head with equal positive weights sends equal p_EB to equal activations
    assert result.entropy_peb == pytest.approx(math.log(8), abs=1e-9)
    assert result.peak_peb == pytest.approx(1 / 8)


def test_one_hot_peb_has_peak_one_and_entropy_zero():
    # only unit 2 is active, so all of the evidence reaches it
    net = constant_layer_net([-1.0, -1.0, 2.0, -1.0])
    result = utilisation(net, batches(), "2")
    assert result.peak_peb == pytest.approx(1.0)
    assert result.entropy_peb == pytest.approx(0.0, abs=1e-12)
    assert result.neurons_on == 1 and result.entropy_activations == pytest.approx(0.0, abs=1e-12)


def test_utilisation_from_scores_by_hand():
    activations = torch.tensor([[1.0, 1.0, 0.0, 0.0], [3.0, 0.0, 1.0, 0.0]])
    p_eb = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    result = utilisation_from_scores(activations, p_eb)
    assert result.neurons_on == pytest.approx(2.0)
    assert result.peak_peb == pytest.approx((1.0 + 0.25) / 2)
    h_act = (math.log(2) + -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))) / 2
    assert result.entropy_activations == pytest.approx(h_act)
    assert result.entropy_peb == pytest.approx(math.log(4) / 2)


def test_utilisation_update_compute_reset_equals_functional_twin():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 10), nn.ReLU(), nn.Identity(), nn.Linear(10, 3))
    data = batches(count=4)
    metric = Utilisation("2")
    metric.update(net, *batches(count=1, seed=9)[0])  # forgotten by reset
    metric.reset()
    for x, y in data:
        metric.update(net, x, y)
    incremental = metric.compute()
    assert incremental == utilisation(net, data, "2")
    # and both equal one pass over all the samples at once
    x = torch.cat([b[0] for b in data])
    y = torch.cat([b[1] for b in data])
    whole = utilisation(net, [(x, y)], "2")
    for name in ("neurons_on", "peak_peb", "entropy_activations", "entropy_peb"):
        assert getattr(incremental, name) == pytest.approx(getattr(whole, name), rel=1e-6)  # float32 forwards of other batch sizes
    assert incremental.samples == whole.samples == 20


def test_utilisation_refuses_compute_before_update_and_mixed_widths():
    metric = Utilisation(None)
    with pytest.raises(RuntimeError, match="before any update"):
        metric.compute()
    metric.update_scores(torch.ones(2, 3), torch.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="p_eb has 4 units, earlier batches had 3"):
        metric.update_scores(torch.ones(2, 4), torch.full((2, 4), 1 / 4))


# ----------------------------------------------------------------------- spread


def test_spread_shares_of_a_known_conductance_vector():
    values = torch.tensor([3.0, 10.0, 1.0, 8.0, 6.0, 9.0, 2.0, 5.0, 4.0, 7.0])  # 1..10 shuffled, total 55
    spread = spread_from_scores(values)
    assert spread.total == 55
    assert spread.sorted.tolist() == list(range(10, 0, -1))
    assert values[spread.order].tolist() == spread.sorted.tolist()
    # top 20/40/60/80 % of 10 units = the 2, 4, 6, 8 largest
    assert spread.top_shares == pytest.approx({0.2: 19 / 55, 0.4: 34 / 55, 0.6: 45 / 55, 0.8: 52 / 55})
    assert spread.cumulative_share[-1].item() == pytest.approx(1.0)
    assert spread.mean is not None and spread.mean.tolist() == values.tolist()


def test_spread_rounds_the_top_count_up_and_keeps_signs():
    spread = spread_from_scores(torch.tensor([4.0, -1.0, 2.0]), top_fractions=(0.5,))
    assert spread.total == 5
    assert spread.top_shares[0.5] == pytest.approx(6 / 5)  # ceil(1.5) = 2 units: 4 + 2, above the signed total
    with pytest.warns(RuntimeWarning, match="cancel"):
        assert math.isnan(spread_from_scores(torch.tensor([1.0, -1.0])).top_shares[0.2])


@pytest.mark.filterwarnings("ignore:the units' signed total")  # an untrained net's units cancel
def test_conductance_spread_update_compute_reset_equals_functional_twin_and_the_score():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(4, 10), nn.ReLU(), nn.Identity(), nn.Linear(10, 3))
    data = batches(count=3)
    metric = ConductanceSpread("2", steps=4)
    metric.update(net, *batches(count=1, seed=5)[0])
    metric.reset()
    for x, y in data:
        metric.update(net, x, y)
    incremental = metric.compute()
    functional = conductance_spread(net, data, "2", steps=4)
    assert torch.equal(incremental.mean, functional.mean) and incremental.samples == functional.samples == 15
    x = torch.cat([b[0] for b in data])
    y = torch.cat([b[1] for b in data])
    direct = ydrop.conductance(net, x, y, net[2], steps=4)[net[2]].double().mean(0)
    assert torch.allclose(incremental.mean, direct, rtol=1e-6, atol=1e-9)


def test_spread_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"top_fractions must hold numbers in \(0, 1\], got 1.5"):
        spread_from_scores(torch.ones(3), top_fractions=(0.5, 1.5))
    with pytest.raises(ValueError, match=r"top_fractions must hold numbers in \(0, 1\], got True of type bool"):
        spread_from_scores(torch.ones(3), top_fractions=(True,))
    # numpy scalars and 0-d tensors are numbers too
    numpy_and_tensor = spread_from_scores(torch.ones(4), top_fractions=(np.float32(0.5), torch.tensor(0.25)))
    assert numpy_and_tensor.top_shares == spread_from_scores(torch.ones(4), top_fractions=(0.5, 0.25)).top_shares
    with pytest.raises(ValueError, match="mean must be a non-empty 1-D tensor"):
        spread_from_scores(torch.ones(2, 2))
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got 0"):
        ConductanceSpread("2", steps=0)


# ----------------------------------------------------------------- conservative


def test_weights_that_do_not_move_make_every_unit_conservative():
    torch.manual_seed(0)
    state = {"fc.weight": torch.randn(5, 3), "fc.bias": torch.randn(5)}
    result = conservative_units(state, {k: v.clone() for k, v in state.items()}, "fc", threshold=1e-6)
    assert result.count == 5 and result.mask.all() and torch.all(result.change == 0)
    assert conservative_units(state, state, "fc", threshold=0.0).count == 0  # nothing moves "less than 0"


def test_conservative_units_use_the_absolute_change_of_each_row():
    initial = {"fc.weight": torch.full((3, 4), 2.0)}
    final = {"fc.weight": initial["fc.weight"].clone()}
    final["fc.weight"][0, 0] += 0.05  # ||Δ|| = 0.05
    final["fc.weight"][1] += 0.25  # ||Δ|| = 0.25 * 2 = 0.5
    final["fc.weight"][2, 1] -= 0.2  # ||Δ|| = 0.2
    result = conservative_units(initial, final, "fc.weight", threshold=0.3)
    assert result.change.tolist() == pytest.approx([0.05, 0.5, 0.2])
    assert result.mask.tolist() == [True, False, True] and result.count == 2
    relative = conservative_units(initial, final, "fc", threshold=0.03, relative=True)  # ||w_init|| = 4
    assert relative.change.tolist() == pytest.approx([0.0125, 0.125, 0.05])
    assert relative.mask.tolist() == [True, False, False]


def test_conservative_units_of_conv_filters_and_over_several_models():
    initial = {"conv.weight": torch.zeros(4, 2, 3, 3)}
    moved = {"conv.weight": initial["conv.weight"].clone()}
    moved["conv.weight"][1, 1, 2, 2] = 1.0  # filter 1 moved by 1
    metric = ConservativeUnits("conv", threshold=0.5)
    metric.update(initial, initial)
    metric.update(initial, moved)
    summary = metric.compute()
    assert summary["counts"] == [4, 3]
    assert summary["mean"] == 3.5 and summary["std"] == pytest.approx(math.sqrt(0.5))
    metric.reset()
    with pytest.raises(RuntimeError, match="before any update"):
        metric.compute()


def test_conservative_units_errors():
    state = {"fc.weight": torch.ones(2, 2)}
    with pytest.raises(ValueError, match=r"layer = 'head' names no weight in the state dict; weights are \['fc.weight'\]"):
        conservative_units(state, state, "head", threshold=0.1)
    with pytest.raises(ValueError, match="threshold must be a finite number >= 0, got -1"):
        conservative_units(state, state, "fc", threshold=-1)


def test_feeding_layer_is_the_linear_whose_rows_are_the_units():
    model = ydrop.models.create("fc1", num_classes=10, in_shape=(1, 8, 8), dropout="ydrop", hidden=(16, 12))
    x = torch.randn(2, 1, 8, 8)
    assert feeding_layer(model, "classifier.5", x) == "classifier.3"
    assert feeding_layer(model, "classifier.2", x) == "classifier.0"
    assert feeding_layer(model, "classifier.3", x) == "classifier.3"
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ValueError, match="nothing feeds its units"):
        feeding_layer(model, "flatten", x)


def test_feeding_layer_ignores_modules_after_the_layer_and_unused_ones():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Identity(), nn.Linear(6, 6), nn.Linear(6, 3))
    model[1].spare = nn.Identity()  # registered inside the ReLU, never called
    x = torch.randn(3, 4)
    # The (6, 6) Linear after the layer has a row per unit too, but runs after it.
    assert feeding_layer(model, "2", x) == "0"
    assert feeding_layer(model, "3", x) == "3"
    with pytest.raises(ValueError, match=r"layer '1.spare' did not run in the model's forward"):
        feeding_layer(model, "1.spare", x)
    assert all(not m._forward_hooks for m in model.modules())
    assert model.training  # the probe's eval mode is undone


def test_spread_warns_when_positive_and_negative_units_cancel():
    """A signed total that is small next to the absolute sum makes the shares explode
    (here 10 / 0.5 = 2000 %): said, not hidden."""
    with pytest.warns(RuntimeWarning, match="cancel"):
        spread = spread_from_scores(torch.tensor([10.0, -9.5]), top_fractions=(0.5,))
    assert spread.top_shares[0.5] == pytest.approx(20.0)
