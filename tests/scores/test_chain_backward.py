"""The written backward: chains of Linear, ReLU, Flatten and identity modules above
the lowest scored layer take it and keep Captum's numbers; anything else goes to
autograd, with the same numbers, and a model that failed the check is not tried
again."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ydrop.scores.conductance import conductance

from test_conductance import assert_close, captum_conductance, cnn_net, fc_net


def _check_against_captum(model, x, y, layers, steps=5, baseline=None):
    ours = conductance(model, x, y, layers, baseline=baseline, steps=steps)
    for layer in layers:
        assert_close(ours[layer], captum_conductance(model, layer, x, y, steps, baseline=baseline))


class Tokens(nn.Module):
    """A Linear over (B, T, D) rows, then a flattening head: a chain of (B, T, *) maps."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(6)
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 16),
                                 nn.ReLU(), nn.Dropout(0.5), nn.Flatten(), nn.Linear(3 * 16, 4))

    def forward(self, x):
        return self.net(x)


def _chains():
    """(name, model, layers, input shape, classes, pass) of chains above the lowest
    scored layer; plain nn.Sequential models of Linear, ReLU, Flatten and dropout
    take the op-by-op pass, the others the module-by-module one."""
    fc = fc_net()
    cnn = cnn_net()
    torch.manual_seed(7)
    inplace = nn.Sequential(nn.Linear(10, 16), nn.ReLU(inplace=True), nn.Dropout(0.3),
                            nn.Linear(16, 12), nn.ReLU(inplace=True), nn.Dropout(0.3), nn.Linear(12, 3))
    torch.manual_seed(8)
    relu_on_logits = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3), nn.ReLU())
    tokens = Tokens()
    double = fc_net().double()
    torch.manual_seed(12)
    overwritten = nn.Sequential(nn.Linear(20, 16), nn.ReLU(inplace=True), nn.Linear(16, 5))
    return [
        ("dropout slots", fc, [fc[3], fc[6]], (20,), 5, "op by op"),
        ("Linear outputs and the logits", fc, [fc[1], fc[4], fc[7]], (20,), 5, "op by op"),
        ("pooled conv map, Flatten, head", cnn, [cnn[6], cnn[10]], (3, 8, 8), 4, "written"),
        ("in-place ReLU", inplace, [inplace[2], inplace[5]], (10,), 3, "op by op"),
        ("ReLU on the logits", relu_on_logits, [relu_on_logits[2]], (10,), 3, "op by op"),
        ("(B, T, D) rows", tokens, [tokens.net[2], tokens.net[5]], (3, 8), 4, "written"),
        ("float64", double, [double[3], double[6]], (20,), 5, "op by op"),
        ("scored output an in-place ReLU overwrites", overwritten, [overwritten[0]], (20,), 5, "op by op"),
    ]


@pytest.mark.parametrize("case", _chains(), ids=lambda case: case[0])
@pytest.mark.parametrize("baseline", ["zeros", "per sample"])
@pytest.mark.parametrize("steps", [1, 5])
def test_a_chain_takes_the_written_backward_and_keeps_captums_numbers(case, baseline, steps, passes):
    _, model, layers, shape, classes, expected = case
    dtype = next(model.parameters()).dtype
    torch.manual_seed(9)
    x = torch.randn(6, *shape, dtype=dtype)
    y = torch.randint(0, classes, (6,))
    base = None if baseline == "zeros" else 0.2 * torch.randn_like(x)
    _check_against_captum(model, x, y, layers, steps, base)
    assert passes == [expected]


class LogSoftmaxOnTop(nn.Module):
    """A chain inside, but the model's output is not the chain's: log-probabilities."""

    def __init__(self):
        super().__init__()
        self.net = fc_net()

    def forward(self, x):
        return F.log_softmax(self.net(x), dim=1)


class Wrapper(nn.Module):
    """A chain inside a model with its own forward, which returns the chain's output
    (so only the module-by-module pass can take it)."""

    def __init__(self, net=None):
        super().__init__()
        self.net = fc_net() if net is None else net

    def forward(self, x):
        return self.net(x)


class FunctionalReLU(nn.Module):
    """Functional code between the modules: F.relu is not a module call."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(10)
        self.fc1, self.drop, self.fc2, self.head = nn.Linear(20, 16), nn.Dropout(0.3), nn.Linear(16, 16), nn.Linear(16, 5)

    def forward(self, x):
        return self.head(F.relu(self.fc2(self.drop(F.relu(self.fc1(x))))))


def _not_chains():
    """(name, model, layers, attempted): models the written backward must refuse;
    ``attempted`` when the module tree allows a chain, so that only the forward
    tells (one wasted forward, on the first call)."""
    hooked = fc_net()
    # In place, so that the next module still receives the recorded tensor.
    hooked[4].register_forward_hook(lambda _module, _inputs, output: output.mul_(2))
    backward_hooked = fc_net()
    backward_hooked[5].register_full_backward_hook(lambda _module, grad_input, _grad_output: (2 * grad_input[0],))
    torch.manual_seed(11)
    tanh = nn.Sequential(nn.Linear(20, 16), nn.Tanh(), nn.Dropout(0.3), nn.Linear(16, 16), nn.Tanh(),
                         nn.Linear(16, 5))
    log_softmax = LogSoftmaxOnTop()
    wrapped = Wrapper()
    wrapped.register_forward_hook(lambda _module, _inputs, output: output.mul_(2))
    functional = FunctionalReLU()
    # A scored Linear whose output an in-place ReLU then overwrites (in a model
    # with its own forward: the op-by-op pass of a plain nn.Sequential runs its
    # ReLU out of place and takes it, see _chains).
    torch.manual_seed(12)
    overwritten = Wrapper(nn.Sequential(nn.Linear(20, 16), nn.ReLU(inplace=True), nn.Linear(16, 5)))
    return [
        ("log-softmax after the chain", log_softmax, [log_softmax.net[3], log_softmax.net[6]], True),
        ("a forward hook that doubles an output", hooked, [hooked[3], hooked[6]], True),
        ("a backward hook that doubles a gradient", backward_hooked, [backward_hooked[3]], True),
        ("a hook on the model that doubles its logits in place", wrapped, [wrapped.net[3], wrapped.net[6]], True),
        ("Tanh", tanh, [tanh[2]], True),
        ("scored output overwritten in place", overwritten, [overwritten.net[0]], True),
        ("functional ReLU", functional, [functional.drop], False),
    ]


@pytest.mark.parametrize("case", _not_chains(), ids=lambda case: case[0])
def test_anything_else_goes_to_autograd_with_captums_numbers(case, passes):
    _, model, layers, _ = case
    torch.manual_seed(13)
    x, y = torch.randn(6, 20), torch.randint(0, 5, (6,))
    _check_against_captum(model, x, y, layers)
    assert passes == ["autograd"]


@pytest.mark.parametrize("case", _not_chains(), ids=lambda case: case[0])
def test_a_model_that_is_not_a_chain_is_tried_once(case):
    """The forwards of three passes: a failed attempt costs one more forward on the
    first call only; a module tree that cannot hold a chain costs none."""
    _, model, layers, attempted = case
    forwards = []
    # On the first module, below the chain: a hook on a container would break it.
    first = next(module for module in model.modules() if next(module.children(), None) is None)
    first.register_forward_pre_hook(lambda *_: forwards.append(1))
    x, y = torch.randn(6, 20), torch.randint(0, 5, (6,))
    for _ in range(3):
        conductance(model, x, y, layers)
    assert len(forwards) == 3 + attempted


def test_autocast_goes_to_autograd(passes):
    """Under autocast only autograd's backward mirrors the forward's casts."""
    model = fc_net()
    x, y = torch.randn(6, 20), torch.randint(0, 5, (6,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        conductance(model, x, y, [model[3]])
    assert passes == ["autograd"]


def test_a_global_module_hook_sends_the_pass_to_autograd(passes):
    """A hook registered for every module could change any module's output."""
    model = fc_net()
    x, y = torch.randn(6, 20), torch.randint(0, 5, (6,))
    handle = torch.nn.modules.module.register_module_forward_hook(lambda _module, _inputs, _output: None)
    try:
        _check_against_captum(model, x, y, [model[3], model[6]])
    finally:
        handle.remove()
    assert passes == ["autograd"]


def test_a_chain_changed_after_its_tree_was_checked_still_gets_captums_numbers(passes):
    """The module-tree check is remembered per model, but the forward decides: a
    ReLU swapped for a function the written backward does not know sends the pass to
    autograd, with the right numbers."""
    model = fc_net()
    x, y = torch.randn(6, 20), torch.randint(0, 5, (6,))
    _check_against_captum(model, x, y, [model[3], model[6]])
    model[5] = nn.Tanh()
    _check_against_captum(model, x, y, [model[3], model[6]])
    assert passes == ["op by op", "autograd"]
