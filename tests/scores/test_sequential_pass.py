"""The op-by-op pass of a plain nn.Sequential (``_sequential_pass``): the same floats
as the module-by-module pass, taken only when every leaf is known or returns its
input, never for a hooked or instance-patched module, and given up on once per
model when a leaf turns out to be something else."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ydrop import Guide, YDrop
from ydrop.scores import _sequential_pass
from ydrop.scores.conductance import conductance

from conftest import conductance_module
from test_conductance import assert_close, captum_conductance, fc_net


def _module_by_module(model, x, y, layers, monkeypatch, **kwargs):
    with monkeypatch.context() as patch:
        patch.setattr(conductance_module, "_op_by_op_pass", lambda *args: None)
        return conductance(model, x, y, layers, **kwargs)


def _nets():
    """(name, model, scored layers, input shape): plain nn.Sequential models the
    op-by-op pass takes."""
    fc = fc_net()
    torch.manual_seed(20)
    nested = nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(12, 16), nn.ReLU(inplace=True)), nn.Identity(),
                           nn.Sequential(nn.Dropout(0.2), nn.Linear(16, 16), nn.ReLU()), nn.Dropout(0.2),
                           nn.Linear(16, 4))
    torch.manual_seed(25)
    tokens = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 16), nn.ReLU(),
                           nn.Dropout(0.5), nn.Flatten(), nn.Linear(3 * 16, 4))
    return [
        ("fc_net, dropout slots", fc, [fc[3], fc[6]], (20,)),
        ("(B, T, D) rows, then Flatten", tokens, [tokens[2], tokens[5]], (3, 8)),
        ("fc_net, Linear outputs and the logits", fc, [fc[1], fc[4], fc[7]], (20,)),
        ("nested containers, in-place ReLU", nested, [nested[3][0], nested[4]], (3, 4)),
    ]


@pytest.mark.parametrize("baseline", ["zeros", "per sample"])
@pytest.mark.parametrize("case", _nets(), ids=lambda case: case[0])
def test_the_same_floats_as_the_module_by_module_pass_and_captums_numbers(case, baseline, passes, monkeypatch):
    _, model, layers, shape = case
    torch.manual_seed(21)
    x, y = torch.randn(6, *shape), torch.randint(0, 4, (6,))
    base = None if baseline == "zeros" else 0.3 * torch.randn_like(x)
    ours = conductance(model, x, y, layers, baseline=base)
    assert passes == ["op by op"]
    reference = _module_by_module(model, x, y, layers, monkeypatch, baseline=base)
    assert passes == ["op by op", "written"]
    for layer in layers:
        torch.testing.assert_close(ours[layer], reference[layer], rtol=0, atol=0)
        assert_close(ours[layer], captum_conductance(model, layer, x, y, 5, baseline=base))


def test_the_heads_product_is_skipped(monkeypatch):
    """The written backward starts from the head's row of the target class: the
    logits are never computed (a spy on the pass's linear sees no call with the head's weight)."""
    model = fc_net()
    x, y = torch.randn(6, 20), torch.randint(0, 5, (6,))
    weights = []
    linear = _sequential_pass.linear
    monkeypatch.setattr(_sequential_pass, "linear", lambda rows, weight, bias=None: weights.append(weight)
                        or linear(rows, weight, bias))
    conductance(model, x, y, [model[3], model[6]])
    assert not any(w is model[7].weight for w in weights)
    assert any(w is model[4].weight for w in weights)


def test_a_hooked_or_instance_patched_leaf_takes_the_module_by_module_pass_each_time(passes):
    """Not remembered: with the hook removed the next pass runs op by op again. An
    instance-level ``forward`` is the module's call, and is honoured."""
    model = fc_net()
    x, y = torch.randn(6, 20), torch.randint(0, 5, (6,))
    layers = [model[3], model[6]]
    handle = model[5].register_forward_hook(lambda _module, _inputs, _output: None)
    conductance(model, x, y, layers)
    handle.remove()
    conductance(model, x, y, layers)
    assert passes == ["autograd", "op by op"]
    relu = model[5]
    relu.forward = lambda rows: torch.relu(rows) * 2  # not ReLU any more
    ours = conductance(model, x, y, layers)
    assert passes[-1] != "op by op"
    for layer in layers:
        assert_close(ours[layer], captum_conductance(model, layer, x, y, 5))


def test_a_layer_with_weights_it_does_not_run_is_refused_before_any_product(passes, monkeypatch):
    """Batch norm in a plain nn.Sequential: refused up front (nothing ran), so not
    remembered as given up; Captum's numbers from the other passes."""
    torch.manual_seed(22)
    model = nn.Sequential(nn.Linear(20, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 5))
    model(torch.randn(32, 20))  # running statistics that are not the identity
    x, y = torch.randn(6, 20), torch.randint(0, 5, (6,))
    results = []
    real = _sequential_pass.sequential_pass
    monkeypatch.setattr(conductance_module, "sequential_pass", lambda *args: results.append(real(*args)))
    ours = conductance(model, x, y, [model[3]])
    assert results == [None] and "op by op" not in passes
    assert_close(ours[model[3]], captum_conductance(model, model[3], x, y, 5))


def test_an_unknown_leaf_is_given_up_on_once_per_model(passes, monkeypatch):
    """Tanh has no parameters, so only its forward tells that it is not an identity:
    after the products below it the pass gives up, and the model is remembered."""
    torch.manual_seed(23)
    model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 16), nn.Tanh(),
                          nn.Linear(16, 5))
    x, y = torch.randn(6, 20), torch.randint(0, 5, (6,))
    attempts = []
    real = _sequential_pass.sequential_pass
    monkeypatch.setattr(conductance_module, "sequential_pass", lambda *args: attempts.append(1) or real(*args))
    for _ in range(3):
        ours = conductance(model, x, y, [model[2]])
        assert_close(ours[model[2]], captum_conductance(model, model[2], x, y, 5))
    assert len(attempts) == 1 and "op by op" not in passes


def test_the_guide_scores_an_mlp_op_by_op_from_its_stem(passes):
    """FC_k's step: the chain above the stem is a plain nn.Sequential."""
    torch.manual_seed(24)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 32), nn.ReLU(), YDrop(warmup_epochs=0), nn.Linear(32, 32),
                          nn.ReLU(), YDrop(warmup_epochs=0), nn.Linear(32, 5)).train()
    guide = Guide(model)
    guide.set_epoch(0)
    x, y = torch.randn(20, 3, 4), torch.randint(0, 5, (20,))
    for _ in range(2):
        assert guide.step(x, y) == {}  # scored in the forward, from the stem
        model(x)
    assert passes == ["op by op", "op by op"]


def test_logits_that_are_not_rows_of_classes_are_refused_by_name(passes):
    """The head's product is skipped only for (rows, classes) logits: a last Linear
    over (B, T, D) rows runs, and its (B, T, classes) output is refused as the
    module-by-module pass refuses it."""
    torch.manual_seed(26)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 4))
    x, y = torch.randn(6, 3, 8), torch.randint(0, 4, (6,))
    with pytest.raises(ValueError, match=r"logits of shape \(B, classes\), got \(36, 3, 4\)"):
        conductance(model, x, y, [model[2]])
