"""Conductance of all layers in one pass equals Captum's LayerConductance per layer."""

from __future__ import annotations

import copy

import pytest
import torch
from captum.attr import LayerConductance
from torch import nn

from ydrop import models as ydrop_models
from ydrop.scores.conductance import conductance

RTOL = 1e-5


def captum_conductance(model, layer, inputs, target, steps, baseline=None):
    """Captum's reference, conv maps summed over positions to (B, C).

    Captum runs the model as it is, so the model is put in eval mode (ours does
    that itself: dropout off, batch norm on running statistics)."""
    model.eval()
    baselines = torch.zeros_like(inputs) if baseline is None else baseline
    result = LayerConductance(model, layer).attribute(
        inputs, baselines=baselines, target=target, n_steps=steps, method="riemann_trapezoid"
    )
    if result.dim() == 3:  # a (B, T, D) sequence: units are the D features
        return result.sum(1)
    return result.flatten(2).sum(2) if result.dim() > 2 else result


def relative_error(ours, reference) -> float:
    """Largest difference, relative to the reference's largest magnitude."""
    scale = reference.abs().max().clamp_min(1e-12)
    return ((ours.double() - reference.double()).abs().max() / scale).item()


def assert_close(ours, reference, rtol=RTOL):
    assert relative_error(ours, reference) < rtol


def fc_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(20, 32), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(32, 24), nn.ReLU(), nn.Dropout(0.5), nn.Linear(24, 5),
    )


def cnn_net():
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(8 * 2 * 2, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 4),
    )
    # Non-trivial running statistics so eval-mode batch norm is not the identity.
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(16, 3, 8, 8))
    return net


@pytest.mark.parametrize("steps", [1, 5, 12])
def test_fc_all_layers_match_captum(steps):
    model = fc_net()
    x = torch.randn(7, 20)
    y = torch.randint(0, 5, (7,))
    layers = [model[2], model[3], model[5], model[6]]
    ours = conductance(model, x, y, layers, steps=steps)
    for layer in layers:
        assert ours[layer].shape == (7, 32 if layer in (model[2], model[3]) else 24)
        assert_close(ours[layer], captum_conductance(model, layer, x, y, steps))


def test_cnn_with_batchnorm_and_fc_head_matches_captum():
    model = cnn_net()
    x = torch.randn(5, 3, 8, 8)
    y = torch.randint(0, 4, (5,))
    layers = [model[2], model[4], model[9], model[10]]
    ours = conductance(model, x, y, layers, steps=5)
    assert ours[model[2]].shape == (5, 6) and ours[model[4]].shape == (5, 8)
    for layer in layers:
        assert_close(ours[layer], captum_conductance(model, layer, x, y, 5))


def test_conv_layer_itself_matches_captum_with_nonzero_baseline():
    model = cnn_net()
    x = torch.randn(4, 3, 8, 8)
    baseline = torch.full_like(x, 0.1)
    y = torch.tensor([0, 1, 2, 3])
    ours = conductance(model, x, y, [model[0]], baseline=baseline, steps=4)
    assert_close(ours[model[0]], captum_conductance(model, model[0], x, y, 4, baseline=baseline))


@pytest.mark.parametrize("form", ["number", "no batch dim", "batch of one", "per sample"])
def test_baseline_forms_match_captum(form):
    """A baseline shared by all samples takes the stem's one-row start point; a
    per-sample baseline takes one row per sample. Both equal Captum's numbers."""
    model = cnn_net()
    x = torch.randn(4, 3, 8, 8)
    y = torch.tensor([3, 1, 0, 2])
    torch.manual_seed(5)
    shared = 0.2 * torch.randn(3, 8, 8)
    baseline = {
        "number": 0.3,
        "no batch dim": shared,
        "batch of one": shared.unsqueeze(0),
        "per sample": 0.2 * torch.randn(4, 3, 8, 8),
    }[form]
    full = torch.full_like(x, baseline) if form == "number" else baseline.expand_as(x).clone()
    layers = [model[2], model[9]]
    ours = conductance(model, x, y, layers, baseline=baseline, steps=5)
    for layer in layers:
        assert_close(ours[layer], captum_conductance(model, layer, x, y, 5, baseline=full))


def test_internal_batch_size_gives_same_numbers():
    model = fc_net()
    x = torch.randn(9, 20)
    y = torch.randint(0, 5, (9,))
    layers = [model[3], model[6]]
    whole = conductance(model, x, y, layers, steps=5)
    for size in (1, 6, 13, 100):
        chunked = conductance(model, x, y, layers, steps=5, internal_batch_size=size)
        for layer in layers:
            torch.testing.assert_close(chunked[layer], whole[layer], rtol=1e-6, atol=1e-7)


def test_completeness_of_a_full_layer():
    """Conductances of a layer through which everything flows add up to F(x) - F(x')
    (exactly so as the steps grow), the axiom that makes them importances."""
    model = fc_net().double()
    x = torch.randn(3, 20, dtype=torch.float64)
    y = torch.tensor([1, 2, 3])
    total = conductance(model, x, y, [model[3]], steps=400)[model[3]].sum(1)
    model.eval()
    expected = model(x).gather(1, y[:, None]).squeeze(1) - model(torch.zeros_like(x)).gather(1, y[:, None]).squeeze(1)
    torch.testing.assert_close(total, expected, rtol=1e-2, atol=1e-3)


def test_restores_train_mode_and_leaves_no_hooks_or_grads():
    model = fc_net().train()
    model[0].eval()  # a mixed state must come back as it was
    x, y = torch.randn(4, 20), torch.randint(0, 5, (4,))
    conductance(model, x, y, [model[3]])
    assert [m.training for m in model] == [False] + [True] * 7
    assert all(not m._forward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_hooks_removed_and_modes_restored_when_model_raises():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = fc_net()

        def forward(self, x):
            self.body(x)
            raise RuntimeError("boom")

    model = Broken().train()
    with pytest.raises(RuntimeError, match="boom"):
        conductance(model, torch.randn(2, 20), torch.tensor([0, 1]), [model.body[3]])
    assert model.training and all(m.training for m in model.modules())
    assert all(not m._forward_hooks for m in model.modules())


def test_bad_arguments_are_named():
    model = fc_net()
    x = torch.randn(4, 20)
    y = torch.tensor([0, 1, 2, 3])
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got 0"):
        conductance(model, x, y, [model[3]], steps=0)
    with pytest.raises(ValueError, match=r"target holds class index 7, outside \[0, 4\]"):
        conductance(model, x, torch.tensor([0, 1, 2, 7]), [model[3]])
    with pytest.raises(ValueError, match=r"target must have shape \(4,\)"):
        conductance(model, x, torch.tensor([0, 1]), [model[3]])
    with pytest.raises(ValueError, match="target must hold integer class indices"):
        conductance(model, x, torch.zeros(4), [model[3]])
    with pytest.raises(ValueError, match="is not a submodule of the model"):
        conductance(model, x, y, [nn.ReLU()])
    with pytest.raises(ValueError, match="'nope' is not the name of a submodule"):
        conductance(model, x, y, ["nope"])
    with pytest.raises(ValueError, match="internal_batch_size must be an integer >= 1"):
        conductance(model, x, y, [model[3]], internal_batch_size=0)
    with pytest.raises(ValueError, match="baseline of shape"):
        conductance(model, x, y, [model[3]], baseline=torch.zeros(3, 7))


def test_layer_names_are_accepted_and_unused_layer_is_refused():
    model = fc_net()
    x, y = torch.randn(2, 20), torch.tensor([0, 1])
    by_name = conductance(model, x, y, ["3"])
    assert torch.equal(by_name[model[3]], conductance(model, x, y, [model[3]])[model[3]])

    class WithSpare(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.spare = fc_net(), nn.ReLU()

        def forward(self, x):
            return self.body(x)

    spare = WithSpare()
    with pytest.raises(ValueError, match="did not run"):
        conductance(spare, x, y, [spare.spare])


def test_inplace_relu_after_a_scored_layer_does_not_corrupt_it():
    torch.manual_seed(5)
    inplace = nn.Sequential(nn.Linear(6, 8), nn.ReLU(inplace=True), nn.Linear(8, 3))
    plain = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    plain.load_state_dict(inplace.state_dict())
    x, y = torch.randn(4, 6), torch.tensor([0, 1, 2, 0])
    torch.testing.assert_close(
        conductance(inplace, x, y, [inplace[0]])[inplace[0]], conductance(plain, x, y, [plain[0]])[plain[0]]
    )


class TwoBranches(nn.Module):
    """Scored layers in two parallel branches, a conv with padding="same" between
    them and the output, and functional ops in ``forward``."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.left = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Dropout(0.2))
        self.right = nn.Sequential(nn.Conv2d(4, 4, 1), nn.Tanh(), nn.Dropout(0.2))
        self.mix = nn.Conv2d(4, 5, 3, padding="same")
        self.head = nn.Linear(5 * 16, 3)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        h = self.mix(self.left(h) + self.right(h))
        return self.head(torch.nn.functional.max_pool2d(h, 2).flatten(1))


class Residual(nn.Module):
    """A scored layer inside a residual block (``y + shortcut``), as in WRN."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.block = nn.Sequential(nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1),
                                   nn.ReLU(), nn.Dropout(0.3), nn.Conv2d(6, 6, 3, padding=1))
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4))

    def forward(self, x):
        h = self.stem(x)
        return self.head(h + self.block(h))


@pytest.mark.parametrize("baseline", [None, "per sample"])
def test_branches_and_residual_blocks_match_captum(baseline):
    """Branches and residual additions (no chain: the autograd pass), with a shared
    and a per-sample baseline."""
    x = torch.randn(5, 3, 8, 8)
    y = torch.tensor([0, 2, 1, 2, 0])
    base = None if baseline is None else 0.1 * torch.randn_like(x)
    branches, residual = TwoBranches(), Residual()
    cases = [(branches, [branches.left[2], branches.right[2]]), (residual, [residual.block[4], residual.head[0]])]
    for model, layers in cases:
        ours = conductance(model, x, y, layers, baseline=base, steps=5)
        for layer in layers:
            assert_close(ours[layer], captum_conductance(model, layer, x, y, 5, baseline=base))


def test_runs_under_autocast_close_to_float32():
    """Under CPU bfloat16 autocast (a user's mixed-precision training step) the
    pass's own backward of Linear and Conv takes the cotangent's dtype. Eq. 2
    subtracts nearby activations, so bfloat16's 8 bits leave errors of about 10 %
    of the largest score on this net: the check is a loose bound plus agreement of
    the pattern across units and samples."""
    model = TwoBranches().eval()
    x = torch.randn(4, 3, 8, 8)
    y = torch.tensor([0, 1, 2, 0])
    layers = [model.left[2], model.right[2]]
    exact = conductance(model, x, y, layers, steps=5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = conductance(model, x, y, layers, steps=5)
    for layer in layers:
        scale = exact[layer].abs().max()
        assert ((mixed[layer].float() - exact[layer]).abs().max() / scale).item() < 0.25
        pair = torch.stack([mixed[layer].float().flatten(), exact[layer].flatten()])
        assert torch.corrcoef(pair)[0, 1].item() > 0.95


class Tokens(nn.Module):
    """A Linear applied to every token of a (B, T, D) input through a reshape that
    merges batch and tokens: the path's view then has B T rows, not B."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(6)
        self.embed = nn.Linear(4, 5)
        self.act = nn.ReLU()
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(3 * 5, 3))

    def forward(self, x):
        tokens = self.act(self.embed(x.reshape(-1, x.shape[-1])))
        return self.head(tokens.reshape(x.shape[0], -1))


def test_shared_baseline_that_varies_along_tokens_matches_captum():
    """A baseline shared by the samples but not by the tokens: the first Linear reads
    a view with B T rows per point, whose shared start is T distinct rows, not one."""
    model = Tokens()
    x = torch.randn(4, 3, 4)
    y = torch.tensor([0, 1, 2, 1])
    baseline = 0.5 * torch.randn(3, 4)  # shared by the samples, not by the tokens
    layer = model.head[0]
    ours = conductance(model, x, y, [layer], baseline=baseline, steps=5)
    assert_close(ours[layer], captum_conductance(model, layer, x, y, 5, baseline=baseline.expand_as(x).clone()))


def zoo_case(name):
    """A model of the zoo at 1/8 width, 3 inputs of its shape and their classes."""
    shape = {"alexnet": (3, 64, 64)}.get(name, (1, 28, 28) if name.startswith("fc") else (3, 32, 32))
    torch.manual_seed(0)
    model = ydrop_models.create(name, in_shape=shape, dropout=nn.Dropout, width_multiplier=0.125).eval()
    return model, torch.rand(3, *shape), torch.tensor([0, 3, 7])


@pytest.mark.parametrize("name", ydrop_models.list_models())
def test_every_model_of_the_zoo_matches_captum_at_every_dropout_slot(name):
    """The real architectures (at 1/8 width): pooling with ceil_mode, batch norm,
    strided convolutions, dropout inside the residual blocks of WRN (the autograd
    pass; the others are chains above their dropout slots). In float64: in float32
    Captum itself is up to 1.3e-5 (relative) off the float64 numbers on the S_k
    nets, so agreeing with it to 1e-5 would test rounding (float32 has its own
    test, below)."""
    model, x, y = zoo_case(name)
    model, x = model.double(), x.double()
    layers = model.dropout_modules()
    ours = conductance(model, x, y, layers, steps=5)
    for layer in layers:
        assert_close(ours[layer], captum_conductance(model, layer, x, y, 5))


@pytest.mark.parametrize("name", ["fc2", "s2", "s3", "cnn2"])
def test_in_float32_as_close_to_the_float64_numbers_as_captum(name):
    """Against the float64 numbers, the pass in float32 must be about as accurate as
    Captum in float32 (it orders its sums differently): within 3 times Captum's error
    plus 1e-6, and within 1e-4 (on the S_k nets Captum's own error is 2e-6 to 1.2e-4)."""
    model, x, y = zoo_case(name)
    layers = model.dropout_modules()
    ours = conductance(model, x, y, layers, steps=5)
    exact = copy.deepcopy(model).double()
    for layer, exact_layer in zip(layers, exact.dropout_modules()):
        truth = captum_conductance(exact, exact_layer, x.double(), y, 5)
        captums = relative_error(captum_conductance(model, layer, x, y, 5), truth)
        assert relative_error(ours[layer], truth) <= min(3 * captums + 1e-6, 1e-4)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_strided_grouped_dilated_convolutions_above_a_scored_layer_match_captum(dims):
    """The pass's own input gradient of Conv1d/2d/3d (stride, groups, dilation,
    padding) in the graph, on double-precision inputs."""
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
    torch.manual_seed(7)
    model = nn.Sequential(
        conv(2, 4, 3, padding=1), nn.ReLU(), nn.Dropout(0.1),
        conv(4, 6, 3, stride=2, padding=2, dilation=2, groups=2), nn.ReLU(), nn.Dropout(0.1),
        nn.Flatten(), nn.LazyLinear(3),
    ).double()
    x = torch.randn(3, 2, *(6,) * dims, dtype=torch.float64)
    model(x)  # materialise the lazy layer
    y = torch.tensor([2, 0, 1])
    layers = [model[2], model[5]]
    ours = conductance(model, x, y, layers, steps=4)
    for layer in layers:
        assert_close(ours[layer], captum_conductance(model, layer, x, y, 4))


def test_frozen_model_and_outer_no_grad_give_the_same_numbers():
    """The graph starts at the scored layers' outputs, so neither frozen weights
    nor a caller's ``torch.no_grad()`` leave the pass without a gradient."""
    model = fc_net()
    x, y = torch.randn(5, 20), torch.tensor([0, 1, 2, 3, 4])
    layers = [model[3], model[6]]
    reference = conductance(model, x, y, layers)
    model.requires_grad_(False)
    with torch.no_grad():
        frozen = conductance(model, x, y, layers)
    for layer in layers:
        torch.testing.assert_close(frozen[layer], reference[layer], rtol=0, atol=0)
    # Inputs and baseline that carry a graph (the Guide's start point is the stem's
    # bias, a parameter): the path is built without one.
    model.requires_grad_(True)
    traced = conductance(model, x.clone().requires_grad_(), y, layers, baseline=torch.zeros(20, requires_grad=True))
    for layer in layers:
        torch.testing.assert_close(traced[layer], reference[layer], rtol=0, atol=0)
        assert not traced[layer].requires_grad


class TupleOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = fc_net()

    def forward(self, x):
        return self.net(x), x


def test_a_model_that_does_not_return_logits_is_refused_by_name():
    x, y = torch.randn(3, 20), torch.tensor([0, 1, 2])
    tuple_out = TupleOut()
    with pytest.raises(ValueError, match=r"logits of shape \(B, classes\), got tuple"):
        conductance(tuple_out, x, y, [tuple_out.net[3]])
    tokens = nn.Sequential(nn.Linear(20, 8), nn.ReLU(), nn.Dropout(), nn.Linear(8, 4), nn.Unflatten(1, (2, 2)))
    with pytest.raises(ValueError, match=r"logits of shape \(B, classes\), got \(18, 2, 2\)"):
        conductance(tokens, x, y, [tokens[2]])


def test_integer_inputs_are_refused_with_what_to_use_instead():
    # Token ids have no path between them: linspace in int64 would put five of six points at zero.
    model = nn.Sequential(nn.Embedding(50, 8), nn.Flatten(), nn.Linear(8 * 7, 16), nn.ReLU(), nn.Linear(16, 3))
    ids, y = torch.randint(1, 50, (4, 7)), torch.randint(0, 3, (4,))
    with pytest.raises(TypeError, match=r"floating-point inputs, got torch.int64.*score='gradxact'"):
        conductance(model, ids, y, [model[3]])


class SequenceFirst(nn.Module):
    """A (T, B, D) model, as nn.TransformerEncoderLayer(batch_first=False) runs."""

    def __init__(self):
        super().__init__()
        self.embed, self.unit, self.head = nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)

    def forward(self, x):  # x (B, T, 6)
        h = self.unit(self.embed(x).transpose(0, 1))  # (T, B, 8)
        return self.head(h.mean(dim=0))


def test_an_activation_that_is_not_batch_first_is_refused():
    # (A length of exactly steps + 1 times the batch cannot be told from a batch.)
    model = SequenceFirst()
    x, y = torch.randn(1, 7, 6), torch.tensor([2])
    with pytest.raises(ValueError, match=r"layer 'unit' \(ReLU\) gave an output of shape .* batch first"):
        conductance(model, x, y, [model.unit], steps=5)
