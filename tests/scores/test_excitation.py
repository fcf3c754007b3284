"""Excitation Backprop of all layers in one pass equals the paper-literal reference."""

from __future__ import annotations

import copy

import pytest
import torch
from reference import excitation_backprop_reference
from torch import nn

import ydrop
from ydrop.scores.excitation import _RULES, excitation_backprop, register_excitation_rule

RTOL = 1e-5


def assert_close(ours, reference):
    assert ours.shape == reference.shape
    scale = reference.abs().max().clamp_min(1e-12)
    assert ((ours.double() - reference).abs().max() / scale).item() < RTOL


def compare_with_reference(model, x, y, indices):
    ours = excitation_backprop(model, x, y, [model[k] for k in indices])
    reference = excitation_backprop_reference(model, x, y, indices)
    for k in indices:
        assert_close(ours[model[k]], reference[k])
    return ours


def settle_batchnorm(net, shape):
    """Non-trivial running statistics and affine parameters, so eval-mode batch
    norm is not the identity (and not what P's pass-through would give by chance)."""
    net.train()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
        for _ in range(3):
            net(torch.randn(16, *shape))
    return net


def fc_net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(16, 10), nn.ReLU(), nn.Dropout(0.5), nn.Linear(10, 4),
    )


def fc_bn_net(seed):
    """ReLU *before* batch norm: P reaches ReLU outputs that are 0, and ReLU must
    pass it through (its ordinary derivative would cut it)."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(12, 16), nn.ReLU(inplace=True), nn.BatchNorm1d(16), nn.Linear(16, 10),
        nn.ReLU(), nn.Identity(), nn.Linear(10, 4),
    )
    return settle_batchnorm(net, (12,))


def cnn_net(seed):
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(24, 10), nn.BatchNorm1d(10), nn.ReLU(), nn.Dropout(0.3), nn.Linear(10, 3),
    )
    return settle_batchnorm(net, (3, 8, 8))


def strided_cnn_net(seed):
    """Strided conv, overlapping max pooling, overlapping adaptive average pooling."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 5, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(3, stride=2),
        nn.Conv2d(5, 6, 2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Dropout(0.2), nn.Linear(24, 3),
    )


# ------------------------------------------------------------ against the reference
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fc_several_layers_match_reference(seed):
    model = fc_net(seed)
    x, y = torch.randn(4, 3, 4), torch.randint(0, 4, (4,))
    ours = compare_with_reference(model, x, y, [1, 2, 3, 5, 6])
    assert ours[model[1]].shape == (4, 16) and ours[model[6]].shape == (4, 10)


@pytest.mark.parametrize("seed", [0, 1])
def test_relu_then_batchnorm_matches_reference(seed):
    model = fc_bn_net(seed)
    x, y = torch.randn(5, 12), torch.randint(0, 4, (5,))
    compare_with_reference(model, x, y, [0, 1, 2, 4])


@pytest.mark.parametrize("seed", [0, 1])
def test_cnn_conv_pool_batchnorm_fc_head_matches_reference(seed):
    model = cnn_net(seed)
    x, y = torch.randn(3, 3, 8, 8), torch.randint(0, 3, (3,))
    ours = compare_with_reference(model, x, y, [0, 2, 3, 4, 7, 10, 11])
    assert ours[model[0]].shape == (3, 4) and ours[model[4]].shape == (3, 6)
    assert ours[model[7]].shape == (3, 24)


def test_strided_conv_overlapping_pools_match_reference():
    model = strided_cnn_net(3)
    x, y = torch.randn(3, 2, 11, 11), torch.randint(0, 3, (3,))
    compare_with_reference(model, x, y, [1, 2, 3, 5, 7])


def test_requested_layer_fed_by_no_parameter_and_inplace_relu():
    """The first layer's output does not require grad (nothing below has weights)."""
    torch.manual_seed(4)
    model = nn.Sequential(nn.Dropout(0.5), nn.Linear(6, 8), nn.ReLU(inplace=True), nn.BatchNorm1d(8), nn.Linear(8, 3))
    settle_batchnorm(model, (6,))
    x, y = torch.randn(4, 6), torch.randint(0, 3, (4,))
    compare_with_reference(model, x, y, [0, 2])


# ------------------------------------------------------------------- properties
def test_rows_are_distributions():
    model = cnn_net(5)
    x, y = torch.randn(6, 3, 8, 8), torch.randint(0, 3, (6,))
    for scores in excitation_backprop(model, x, y, [model[2], model[5], model[10]]).values():
        assert (scores >= 0).all()
        torch.testing.assert_close(scores.sum(1), torch.ones(6))


def test_uniform_when_nothing_reaches_the_layer():
    model = fc_net(0)
    with torch.no_grad():
        model[7].weight[2] = -model[7].weight[2].abs()  # class 2 excites nothing
    x, y = torch.randn(3, 3, 4), torch.tensor([2, 0, 2])
    scores = excitation_backprop(model, x, y, [model[3], model[6]])
    torch.testing.assert_close(scores[model[6]][[0, 2]], torch.full((2, 10), 0.1))
    torch.testing.assert_close(scores[model[3]][[0, 2]], torch.full((2, 16), 1 / 16))
    assert not torch.allclose(scores[model[6]][1], torch.full((10,), 0.1))


def test_layer_not_feeding_the_logits_is_uniform():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.unused, self.fc = nn.Linear(6, 5), nn.Linear(6, 3)

        def forward(self, x):
            self.unused(x)
            return self.fc(x)

    model = Net()
    scores = excitation_backprop(model, torch.randn(2, 6), 1, [model.unused])
    torch.testing.assert_close(scores[model.unused], torch.full((2, 5), 0.2))


@pytest.mark.parametrize("index, name, kind", [(1, "3", "Tanh"), (3, "5", "Softmax")])
def test_unsupported_module_in_the_head_is_named(index, name, kind):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3), nn.Softmax(dim=1)
    )
    with pytest.raises(ValueError, match=rf"'{name}' \({kind}\).*Supported types: Linear, Conv1d, Conv2d"):
        excitation_backprop(model, torch.randn(2, 6), 0, [model[index]])
    assert_clean(model, {m: False for m in model.modules()} | {m: True for m in model.modules()})


def test_unsupported_module_below_the_layer_is_fine():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 7), nn.ReLU(), nn.Dropout(), nn.Linear(7, 3))
    x, y = torch.randn(4, 6), torch.randint(0, 3, (4,))
    compare_with_reference(model, x, y, [3, 4])


def test_parameter_grads_and_inputs_untouched():
    model = cnn_net(0)
    params = list(model.parameters())
    for i, p in enumerate(params):
        p.grad = torch.randn_like(p) if i % 2 else None
    before = [None if p.grad is None else p.grad.clone() for p in params]
    x = torch.randn(2, 3, 8, 8)
    excitation_backprop(model, x, torch.tensor([0, 2]), [model[4], model[10]])
    for p, grad in zip(params, before):
        assert (p.grad is None) if grad is None else torch.equal(p.grad, grad)
    assert not x.requires_grad and x.grad is None


def test_works_under_no_grad_and_with_layer_names():
    model = fc_net(2)
    x, y = torch.randn(3, 3, 4), torch.randint(0, 4, (3,))
    expected = excitation_backprop(model, x, y, [model[3]])[model[3]]
    with torch.no_grad():
        by_name = excitation_backprop(model, x, y, "3")
    torch.testing.assert_close(by_name[model[3]], expected)


# ------------------------------------------------------------ clean-up and errors
def assert_clean(model, flags):
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
        assert module.training == flags[module]


class Raising(nn.Module):
    """Not an nn.Sequential: a custom forward that raises after the hooked layers."""

    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.drop = nn.Linear(6, 8), nn.ReLU(inplace=True), nn.Dropout()
        self.bn, self.fc2 = nn.BatchNorm1d(8), nn.Linear(8, 3)

    def forward(self, x):
        self.fc2(self.bn(self.drop(self.act(self.fc1(x)))))
        raise RuntimeError("model exploded")


def test_hooks_removed_and_flags_restored_when_the_model_raises():
    model = Raising()
    model.train()
    model.bn.eval()
    flags = {m: m.training for m in model.modules()}
    with pytest.raises(RuntimeError, match="model exploded"):
        excitation_backprop(model, torch.randn(3, 6), 0, [model.fc1, model.drop])
    assert_clean(model, flags)


def test_target_errors_name_the_argument_and_leave_the_model_clean():
    model = fc_net(0).train()
    flags = {m: True for m in model.modules()}
    x = torch.randn(3, 3, 4)
    with pytest.raises(ValueError, match=r"target holds class index 4, outside \[0, 3\]"):
        excitation_backprop(model, x, torch.tensor([0, 4, 1]), [model[3]])
    with pytest.raises(ValueError, match=r"target must have shape \(3,\).*got \(2,\)"):
        excitation_backprop(model, x, torch.tensor([0, 1]), [model[3]])
    with pytest.raises(ValueError, match="target must hold integer class indices"):
        excitation_backprop(model, x, torch.tensor([0.0, 1.0, 2.0]), [model[3]])
    with pytest.raises(ValueError, match=r"target holds class index -1"):
        excitation_backprop(model, x, -1, [model[3]])
    assert_clean(model, flags)


# -------------------------------------------------------------- beyond Sequential
class CustomNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(7)
        self.features = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Linear(4 * 3 * 3, 12), nn.ReLU(), nn.Dropout(), nn.Linear(12, 5))

    def forward(self, x):
        return self.head(self.features(x).flatten(1))  # functional flatten


def test_custom_forward_matches_reference_of_its_sequential_twin():
    model = CustomNet()
    twin = nn.Sequential(*model.features, nn.Flatten(), *model.head)
    x, y = torch.randn(3, 2, 6, 6), torch.randint(0, 5, (3,))
    ours = excitation_backprop(model, x, y, ["features.1", "head.1", model.head[2]])
    reference = excitation_backprop_reference(twin, x, y, [1, 5, 6])
    assert_close(ours[model.features[1]], reference[1])
    assert_close(ours[model.head[1]], reference[5])
    assert_close(ours[model.head[2]], reference[6])


@pytest.mark.parametrize("layer", [lambda: ydrop.YDrop(score="excitation"), lambda: ydrop.ExcitationDropout()])
def test_ydrop_layers_score_like_plain_dropout_and_stay_in_train_mode(layer):
    plain = fc_net(3)
    guided = copy.deepcopy(plain)
    guided[3], guided[6] = layer(), layer()
    guided.train()
    x, y = torch.randn(4, 3, 4), torch.randint(0, 4, (4,))
    ours = excitation_backprop(guided, x, y, [guided[3], guided[6]])
    expected = excitation_backprop(plain, x, y, [plain[3], plain[6]])
    torch.testing.assert_close(ours[guided[3]], expected[plain[3]], rtol=0, atol=0)
    torch.testing.assert_close(ours[guided[6]], expected[plain[6]], rtol=0, atol=0)
    assert all(m.training for m in guided.modules())


def test_register_a_rule_for_a_new_module_type():
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ELU(), nn.Linear(8, 3))
    with pytest.raises(ValueError, match=r"'3' \(ELU\)"):
        excitation_backprop(model, torch.randn(2, 6), 0, [model[1]])
    register_excitation_rule(nn.ELU, "pass")
    try:
        scores = excitation_backprop(model, torch.randn(2, 6), 0, [model[1]])[model[1]]
        torch.testing.assert_close(scores.sum(1), torch.ones(2))
    finally:
        del _RULES[nn.ELU]
    with pytest.raises(ValueError, match="rule must be 'pass', 'gradient' or a callable"):
        register_excitation_rule(nn.ELU, "identity")
    with pytest.raises(TypeError, match="module_type must be a subclass of nn.Module"):
        register_excitation_rule(int, "pass")


def test_layer_that_never_runs_is_refused():
    model = CustomNet()
    model.spare = nn.ReLU()
    with pytest.raises(ValueError, match="did not run"):
        excitation_backprop(model, torch.randn(2, 2, 6, 6), 0, [model.head[1], model.spare])


def test_one_and_three_dimensional_maps_equal_the_two_dimensional_ones():
    # Conv1d / pools 1d and Conv3d / BatchNorm3d / pools 3d on maps with a unit height
    # (depth) are the 2-d modules checked against the reference above.
    torch.manual_seed(3)
    net2d = nn.Sequential(nn.Conv2d(2, 4, (1, 3)), ydrop.ExcitationDropout(unit_dim=1), nn.BatchNorm2d(4), nn.MaxPool2d((1, 2)),
                          nn.AvgPool2d((1, 2)), nn.AdaptiveAvgPool2d((1, 2)), nn.Flatten(), nn.Linear(8, 3)).eval()
    net2d[2].running_mean.uniform_(-0.2, 0.2)
    net1d = nn.Sequential(nn.Conv1d(2, 4, 3), ydrop.ExcitationDropout(unit_dim=1), nn.BatchNorm1d(4), nn.MaxPool1d(2), nn.AvgPool1d(2),
                          nn.AdaptiveAvgPool1d(2), nn.Flatten(), nn.Linear(8, 3)).eval()
    net3d = nn.Sequential(nn.Conv3d(2, 4, (1, 1, 3)), ydrop.ExcitationDropout(unit_dim=1), nn.BatchNorm3d(4), nn.MaxPool3d((1, 1, 2)),
                          nn.AvgPool3d((1, 1, 2)), nn.AdaptiveMaxPool3d((1, 1, 2)), nn.Flatten(), nn.Linear(8, 3))
    net3d.eval()
    for other in (net1d, net3d):
        shapes = {name: tensor.shape for name, tensor in other.state_dict().items()}
        other.load_state_dict({name: tensor.reshape(shapes[name]) for name, tensor in net2d.state_dict().items()})
    x, y = torch.rand(5, 2, 1, 12), torch.randint(0, 3, (5,))
    want = excitation_backprop(net2d, x, y, [net2d[1]])[net2d[1]]
    torch.testing.assert_close(excitation_backprop(net1d, x[:, :, 0], y, [net1d[1]])[net1d[1]], want)
    # AdaptiveMaxPool3d to two windows of 2 after the two pools of 2: each window's max of
    # one value is the AdaptiveAvgPool2d's mean of it.
    torch.testing.assert_close(excitation_backprop(net3d, x[:, :, None], y, [net3d[1]])[net3d[1]], want)


class Residual(nn.Module):
    """A ResNet block whose identity shortcut is ``shortcut`` (the common ``nn.Sequential()``)."""

    def __init__(self, shortcut):
        super().__init__()
        torch.manual_seed(0)
        self.drop, self.conv, self.shortcut = nn.Dropout2d(0.2), nn.Conv2d(3, 3, 3, padding=1), shortcut
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))

    def forward(self, x):
        h = self.drop(x)
        return self.head(self.conv(h) + self.shortcut(h))


def test_an_empty_sequential_shortcut_is_the_identity():
    x, y = torch.randn(3, 3, 5, 5).relu(), torch.randint(0, 4, (3,))
    empty, identity = Residual(nn.Sequential()), Residual(nn.Identity())
    ours = excitation_backprop(empty, x, y, ["drop"])[empty.drop]
    torch.testing.assert_close(ours, excitation_backprop(identity, x, y, ["drop"])[identity.drop])


def test_a_module_without_a_rule_is_named_as_in_the_users_model_also_with_forward_arguments():
    """The Guide wraps a model given forward keyword arguments; errors still use the model's own names."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.drop, self.norm, self.head = (nn.Linear(6, 8), ydrop.ExcitationDropout(), nn.LayerNorm(8),
                                                        nn.Linear(8, 3))

        def forward(self, x, scale):
            return self.head(self.norm(self.drop(self.fc(x).relu()))) * scale

    model = Net().train()
    with pytest.raises(ValueError, match=r"no rule for module 'norm' \(LayerNorm\)"):
        ydrop.Guide(model).step(torch.randn(4, 6), torch.randint(0, 3, (4,)), scale=torch.ones(4, 1))
