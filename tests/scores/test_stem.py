"""The affine stem: which models have one, and its output for a zero input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ydrop.scores._stem import affine_stem, stem_output_at_zero


class OwnForward(nn.Module):
    """The stem's output goes through functional code, not a chain of modules."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 8), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(F.relu(self.body(x)) * 2)


class Scaled(nn.Linear):
    def forward(self, x):
        return super().forward(x) * 2


def mlp(*front: nn.Module, first: nn.Module | None = None) -> nn.Sequential:
    return nn.Sequential(*front, first or nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def test_finds_the_first_linear_behind_views_and_the_chain_above_it():
    model = mlp(nn.Identity(), nn.Flatten())
    stem, chain = affine_stem(model, torch.randn(4, 2, 3))
    assert stem is model[2]
    assert [type(m) for m in chain] == [nn.Identity, nn.ReLU, nn.Linear] and chain[2] is model[4]


def test_finds_a_convolution_in_a_plain_sequential_cnn():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 3))
    stem, chain = affine_stem(model, torch.randn(2, 3, 4, 4))
    assert stem is model[0] and len(chain) == 5


@pytest.mark.parametrize(
    "model",
    [
        mlp(nn.BatchNorm1d(6)),  # the stem reads normalised values, not the input
        mlp(nn.ReLU()),
        mlp(nn.ReLU(inplace=True)),  # the stem reads the input tensor, changed in place
        mlp(first=Scaled(6, 8)),  # a subclass may compute something else
        OwnForward(),  # no chain above the stem
        nn.Sequential(OwnForward()),
    ],
    ids=["batch-norm-first", "relu-first", "in-place-relu-first", "linear-subclass", "own-forward", "wrapped"],
)
def test_no_stem_when_the_first_module_does_not_read_the_input_affinely_or_no_chain_follows(model):
    assert affine_stem(model.eval(), torch.randn(4, 6)) is None


def test_models_outside_sequential_containers_need_no_probe_forward():
    calls = []
    model = OwnForward()
    model.head = nn.Linear(8, 3)
    model.body = nn.ModuleDict({"fc": nn.Linear(6, 8)})
    model.forward = lambda x: calls.append(1) or model.head(model.body["fc"](x))
    assert affine_stem(model, torch.randn(2, 6)) is None and not calls


def test_the_probe_leaves_training_flags_and_hooks_as_they_were():
    model = mlp(nn.Flatten()).train()
    affine_stem(model, torch.randn(2, 6))
    assert all(m.training for m in model.modules())
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())


@pytest.mark.parametrize(
    "stem, shape",
    [
        (nn.Linear(5, 7), (3, 5)),
        (nn.Linear(5, 7, bias=False), (3, 5)),
        (nn.Linear(5, 7), (3, 4, 5)),  # a Linear over tokens
        (nn.Conv2d(2, 4, 3, padding=1), (3, 2, 6, 6)),
        (nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect"), (3, 2, 6, 6)),
        (nn.Conv1d(2, 4, 3), (3, 2, 8)),
    ],
)
def test_output_at_zero_is_exactly_the_stems_output_for_zeros(stem, shape):
    torch.manual_seed(0)
    outputs = stem(torch.randn(shape))
    expected = stem(torch.zeros((1,) + shape[1:]))
    start = stem_output_at_zero(stem, outputs)
    assert torch.equal(start, expected) and not start.requires_grad  # a point, not part of a graph
