"""The pass's products equal torch's up to float rounding, and take oneDNN's kernel
only where it applies: float32 on the CPU, 2-D rows, outside autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ydrop.scores import _products as products
from ydrop.scores._products import linear, times

from test_conductance import relative_error


@pytest.mark.parametrize("rows", [1, 7, 61])
@pytest.mark.parametrize("with_bias", [False, True])
def test_linear_and_times_equal_torchs_products(rows, with_bias, onednn_calls):
    torch.manual_seed(0)
    x, weight = torch.randn(rows, 96), torch.randn(80, 96)
    bias = torch.randn(80) if with_bias else None
    reference = F.linear(x.double(), weight.double(), None if bias is None else bias.double())
    assert relative_error(linear(x, weight, bias), reference) < 1e-6
    cotangent = torch.randn(rows, 80)
    assert relative_error(times(cotangent, weight), cotangent.double() @ weight.double()) < 1e-6
    assert len(onednn_calls) == (2 if products.ONEDNN else 0)


def test_a_transposed_or_sliced_weight_is_read_as_it_is(onednn_calls):
    torch.manual_seed(1)
    weight = torch.randn(64, 120)[:, ::2]  # (64, 60), strided
    x = torch.randn(5, 60)
    assert relative_error(linear(x, weight), x.double() @ weight.double().t()) < 1e-6
    assert relative_error(linear(x, weight.t().contiguous().t()), x.double() @ weight.double().t()) < 1e-6


@pytest.mark.parametrize(
    "case",
    ["float64", "3-D rows", "no rows", "recording a graph", "autocast", "switched off"],
)
def test_anything_else_takes_torchs_kernel(case, onednn_calls, monkeypatch):
    torch.manual_seed(2)
    x, weight = torch.randn(4, 16), torch.randn(8, 16)
    if case == "float64":
        x, weight = x.double(), weight.double()
    elif case == "3-D rows":
        x = torch.randn(4, 3, 16)
    elif case == "no rows":
        x = torch.randn(0, 16)
    elif case == "recording a graph":
        weight.requires_grad_(True)
    elif case == "switched off":
        monkeypatch.setattr(products, "ONEDNN", False)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=case == "autocast"):
        result, expected = linear(x, weight), F.linear(x, weight)
    assert result.dtype == expected.dtype  # bfloat16 under autocast, as the model's own Linear
    torch.testing.assert_close(result, expected)
    assert not onednn_calls
    if case == "recording a graph":
        assert result.grad_fn is not None  # the op has no backward: autograd's kernel ran


def test_weights_that_require_grad_take_onednn_outside_autograd(onednn_calls):
    """The pass runs under no_grad with the model's own parameters."""
    weight = torch.randn(8, 16, requires_grad=True)
    with torch.no_grad():
        linear(torch.randn(4, 16), weight)
    assert len(onednn_calls) == (1 if products.ONEDNN else 0)
