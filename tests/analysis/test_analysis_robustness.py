"""Robustness curves: start at the unpruned model, R seeded repeats, no rescaling, no hook left."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ydrop.analysis import (
    evaluate,
    peb_threshold_removal,
    random_removal,
    ranked_removal,
    remove_units,
    threshold_masks,
)

FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)


def mlp(seed=0, units=12):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, units), nn.ReLU(), nn.Identity(), nn.Linear(units, 4))


class Residual(nn.Module):
    """A branch through the analysed layer joined by a skip path: the masked copies
    cannot travel past the join, so the curves take their other route."""

    def __init__(self, units=12):
        super().__init__()
        torch.manual_seed(3)
        self.fc, self.relu, self.slot, self.back = nn.Linear(6, units), nn.ReLU(), nn.Identity(), nn.Linear(units, 6)
        self.head = nn.Linear(6, 4)

    def forward(self, x):
        return self.head(x + self.back(self.slot(self.relu(self.fc(x)))))


def data(count=3, size=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 6, generator=g), torch.randint(0, 4, (size,), generator=g)) for _ in range(count)]


def no_hooks(model):
    return all(not m._forward_hooks for m in model.modules())


def masked_scores(model, layer, batches, keep_for):
    """Reference: one masked network at a time, via remove_units; (accuracy, gt prob)."""
    correct = gt = count = 0.0
    with torch.no_grad():
        model.eval()
        for x, y in batches:
            with remove_units(layer, keep_for(x, y)):
                logits = model(x)
            correct += float((logits.argmax(1) == y).sum())
            gt += float(F.softmax(logits.double(), 1).gather(1, y.view(-1, 1)).sum())
            count += len(y)
    return correct / count, gt / count


@pytest.mark.parametrize("make", [mlp, Residual])
def test_every_curve_starts_at_the_unpruned_model_and_leaves_no_hook(make):
    model = make()
    layer = model[2] if isinstance(model, nn.Sequential) else model.slot
    batches = data()
    accuracy, gt_prob = evaluate(model, batches)
    curves = [
        random_removal(model, batches, layer, fractions=FRACTIONS, repeats=4, progress=False),
        ranked_removal(model, batches, layer, ranking_data=batches, fractions=FRACTIONS, progress=False),
        ranked_removal(model, batches, layer, scores=torch.arange(12.0), order="least", fractions=FRACTIONS,
                       progress=False),
        peb_threshold_removal(model, batches, layer, thresholds=(0.0, 0.5), progress=False),
        peb_threshold_removal(model, batches, layer, thresholds=(0.0, 0.5), order="least", progress=False),
    ]
    for curve in curves:
        assert curve.unpruned_accuracy == accuracy and curve.unpruned_gt_prob == pytest.approx(gt_prob, rel=1e-12)
        assert curve.accuracy_mean[0] == accuracy and curve.accuracy_std[0] == 0
        assert curve.gt_prob_mean[0] == pytest.approx(gt_prob, rel=1e-6)
    assert no_hooks(model) and model.training  # the model's own mode is restored


@pytest.mark.parametrize("make", [mlp, Residual])
def test_random_removal_is_the_mean_and_std_of_r_seeded_repeats(make):
    model = make()
    layer = model[2] if isinstance(model, nn.Sequential) else model.slot
    batches = data(count=2)
    repeats, units = 3, 12
    curve = random_removal(model, batches, layer, fractions=FRACTIONS, repeats=repeats,
                           generator=torch.Generator().manual_seed(7), progress=False)
    # repeat r removes the first round(f N) units of its own random order of the units
    ranks = torch.rand(repeats, units, generator=torch.Generator().manual_seed(7)).argsort(1).argsort(1)
    for g, fraction in enumerate(FRACTIONS):
        k = round(fraction * units)
        runs = [masked_scores(model, layer, batches, lambda x, y, r=r: (ranks[r] >= k).float()) for r in range(repeats)]
        accs = torch.tensor([a for a, _ in runs], dtype=torch.float64)
        gts = torch.tensor([p for _, p in runs], dtype=torch.float64)
        assert curve.accuracy_mean[g] == pytest.approx(float(accs.mean()), abs=1e-12)
        assert curve.accuracy_std[g] == pytest.approx(float(accs.std()), abs=1e-12)
        assert curve.gt_prob_mean[g] == pytest.approx(float(gts.mean()), rel=1e-5)
        assert curve.gt_prob_std[g] == pytest.approx(float(gts.std()), rel=1e-4, abs=1e-9)
    assert curve.repeats == repeats and curve.kind == "random"
    assert curve.accuracy_std[-1] == 0 and curve.accuracy_std[2] > 0  # all removed: every repeat alike
    again = random_removal(model, batches, layer, fractions=FRACTIONS, repeats=repeats,
                           generator=torch.Generator().manual_seed(7), progress=False)
    other = random_removal(model, batches, layer, fractions=FRACTIONS, repeats=repeats,
                           generator=torch.Generator().manual_seed(8), progress=False)
    assert again == curve and other.accuracy_mean != curve.accuracy_mean


def test_removal_does_not_rescale_the_kept_units():
    # logits = the layer's two units; sample x = (2, 1), class 0
    model = nn.Sequential(nn.Identity(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(2))
    batches = [(torch.tensor([[2.0, 1.0]]), torch.tensor([0]))]
    curve = ranked_removal(model, batches, model[0], scores=torch.tensor([1.0, 0.0]), order="least",
                           fractions=(0.0, 0.5), progress=False)
    # without rescaling the logits are (2, 0): p = sigmoid(2); a 2x rescale would give sigmoid(4)
    assert curve.gt_prob_mean == pytest.approx([1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-2))])
    random = random_removal(model, batches, model[0], fractions=(1.0,), repeats=3, progress=False)
    assert random.gt_prob_mean == pytest.approx([0.5])  # everything removed: logits (0, 0), not NaN
    with remove_units(model[0], torch.tensor([0.0, 1.0])):
        assert model(batches[0][0]).tolist() == [[0.0, 1.0]]
    assert no_hooks(model)


def test_ranked_removal_removes_the_most_important_first():
    model = mlp()
    batches = data()
    scores = torch.tensor([5.0, 1.0, 9.0, 3.0, 0.0, 7.0, 2.0, 8.0, 4.0, 6.0, 11.0, 10.0])
    curve = ranked_removal(model, batches, model[2], scores=scores, fractions=(0.25,), progress=False)
    keep = torch.ones(12)
    keep[[10, 11, 2]] = 0  # the 3 highest scores
    accuracy, gt = masked_scores(model, model[2], batches, lambda x, y: keep)
    assert curve.accuracy_mean == [accuracy] and curve.gt_prob_mean == pytest.approx([gt], rel=1e-6)


def test_threshold_masks_by_hand():
    p = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    assert threshold_masks(p, 0.0).tolist() == [[1, 1, 1], [1, 1, 1]]
    assert threshold_masks(p, 0.5).tolist() == [[0, 1, 1], [1, 0, 1]]
    assert threshold_masks(p, 0.6).tolist() == [[0, 0, 1], [1, 0, 1]]
    assert threshold_masks(p, 0.65).tolist() == [[0, 0, 1], [1, 0, 0]]
    assert threshold_masks(p, 0.25, order="least").tolist() == [[1, 0, 0], [0, 1, 0]]
    assert threshold_masks(p, 1.0).tolist() == [[0, 0, 0], [0, 0, 0]]


def test_peb_threshold_removal_uses_each_samples_own_mask():
    import ydrop

    model = mlp()
    batches = data(count=2)
    thresholds = (0.0, 0.3, 0.6, 0.9)
    for order in ("most", "least"):
        curve = peb_threshold_removal(model, batches, model[2], thresholds=thresholds, order=order, progress=False)
        for g, threshold in enumerate(thresholds):
            def keep(x, y):
                return threshold_masks(ydrop.excitation_backprop(model, x, y, model[2])[model[2]], threshold, order)

            accuracy, gt = masked_scores(model, model[2], batches, keep)
            assert curve.accuracy_mean[g] == accuracy and curve.gt_prob_mean[g] == pytest.approx(gt, rel=1e-6)
        assert curve.kind == f"peb_{order}" and curve.grid == list(thresholds)


def test_a_one_shot_iterator_is_read_once_for_the_whole_curve():
    model = mlp()
    batches = data()
    from_list = random_removal(model, batches, model[2], fractions=FRACTIONS, repeats=3,
                               generator=torch.Generator().manual_seed(0), progress=False)
    from_iterator = random_removal(model, iter(batches), model[2], fractions=FRACTIONS, repeats=3,
                                   generator=torch.Generator().manual_seed(0), progress=False)
    assert from_list == from_iterator


def test_hooks_are_removed_when_the_forward_raises():
    model = mlp()

    class Boom(Exception):
        pass

    def explode(_module, _inputs, _output):
        raise Boom

    handle = model[3].register_forward_hook(explode)
    try:
        with pytest.raises(Boom):
            random_removal(model, data(), model[2], fractions=(0.5,), repeats=2, progress=False)
        with pytest.raises(Boom):
            peb_threshold_removal(model, data(), model[2], thresholds=(0.5,), progress=False)
    finally:
        handle.remove()
    assert no_hooks(model)


def test_argument_errors_name_the_argument_and_echo_the_value():
    model = mlp()
    with pytest.raises(ValueError, match=r"fractions must hold numbers in \[0, 1\], got 1.5"):
        random_removal(model, data(), model[2], fractions=(0.0, 1.5), progress=False)
    with pytest.raises(ValueError, match=r"fractions must hold numbers in \[0, 1\], got 'half' of type str"):
        random_removal(model, data(), model[2], fractions=(0.0, "half"), progress=False)
    with pytest.raises(ValueError, match="repeats must be an integer >= 1, got 0"):
        random_removal(model, data(), model[2], repeats=0, progress=False)
    with pytest.raises(ValueError, match="order must be one of 'most', 'least'; got 'top'"):
        ranked_removal(model, data(), model[2], scores=torch.ones(12), order="top", progress=False)
    with pytest.raises(ValueError, match="exactly one of ranking_data= .* or scores= .*; got neither"):
        ranked_removal(model, data(), model[2], progress=False)
    with pytest.raises(ValueError, match="scores= has 3 values but layer '2' has 12 units"):
        ranked_removal(model, data(), model[2], scores=torch.ones(3), progress=False)
    with pytest.raises(ValueError, match="data must hold at least one sample"):
        random_removal(model, [], model[2], progress=False)
    with pytest.raises(TypeError, match=r"data must be an iterable of \(x, y\) batches .*got a tensor of shape \(4, 6\)"):
        random_removal(model, torch.randn(4, 6), model[2], progress=False)
    with pytest.raises(TypeError, match=r"data must yield \(x, y\) batches .*dict with keys \['x', 'y'\]"):
        evaluate(model, [{"x": torch.randn(4, 6), "y": torch.zeros(4, dtype=torch.long)}])
    with pytest.raises(ValueError, match=r"layer = '3x' is not the name of a submodule of the model; did you mean '3'"):
        random_removal(model, data(), "3x", progress=False)
    with pytest.raises(ValueError, match=r"logits of shape \(B, classes\), got dict; .*to_logits"):
        evaluate(nn.Sequential(model, Pick()), data())
    with pytest.raises(ValueError, match=r"target holds class index 9, outside \[0, 3\]"):
        evaluate(model, [(torch.randn(2, 6), torch.tensor([0, 9]))])


class Pick(nn.Module):
    """A model returning a dict, as HuggingFace models do."""

    def forward(self, logits):
        return {"logits": logits}


def test_masked_networks_split_over_several_forwards_give_the_same_curves(monkeypatch):
    from ydrop.analysis import robustness

    model = mlp()
    batches = data(count=2)

    def curves():
        return (random_removal(model, batches, model[2], fractions=FRACTIONS, repeats=3,
                               generator=torch.Generator().manual_seed(1), progress=False),
                peb_threshold_removal(model, batches, model[2], thresholds=(0.0, 0.4, 0.8), progress=False))

    whole = curves()
    monkeypatch.setattr(robustness, "ELEMENTS_PER_FORWARD", 2 * 20 * 12)  # two masked networks per forward
    split = curves()
    for a, b in zip(whole, split):
        assert a.accuracy_mean == b.accuracy_mean and a.accuracy_std == b.accuracy_std
        assert a.gt_prob_mean == pytest.approx(b.gt_prob_mean, rel=1e-6)
