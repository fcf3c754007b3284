"""Fixtures shared by the score tests."""

from __future__ import annotations

import importlib

import pytest

from ydrop.scores import _products as products

# The module, not the function ``ydrop.scores.conductance`` that shadows its name.
conductance_module = importlib.import_module("ydrop.scores.conductance")


@pytest.fixture(params=["written", "autograd"])
def backward(request, monkeypatch):
    """Run the test with each of the conductance pass's two backwards: written out
    for a chain (``_chain_backward``) and autograd's, which every other model takes."""
    if request.param == "autograd":
        monkeypatch.setattr(conductance_module, "WRITTEN_BACKWARD", False)
    return request.param


@pytest.fixture
def passes(monkeypatch):
    """Which pass each conductance call took, in order: "op by op" (a plain
    nn.Sequential, ``_sequential_pass``), "written" (module by module, the chain read
    off the forward) or "autograd"."""
    taken = []
    op_by_op = conductance_module._op_by_op_pass
    written, autograd = conductance_module._pass_without_autograd, conductance_module._pass_with_autograd

    def spy_op_by_op(*args):
        result = op_by_op(*args)
        if result is not None:
            taken.append("op by op")
        return result

    def spy_written(*args):
        result = written(*args)
        if result is not None:
            taken.append("written")
        return result

    def spy_autograd(*args):
        taken.append("autograd")
        return autograd(*args)

    monkeypatch.setattr(conductance_module, "_op_by_op_pass", spy_op_by_op)
    monkeypatch.setattr(conductance_module, "_pass_without_autograd", spy_written)
    monkeypatch.setattr(conductance_module, "_pass_with_autograd", spy_autograd)
    return taken


@pytest.fixture
def onednn_calls(monkeypatch):
    """One entry per product that went to oneDNN's kernel (``_products``); stays
    empty where torch has no such kernel."""
    calls = []
    if products.ONEDNN:
        original = products._LINEAR_POINTWISE
        monkeypatch.setattr(products, "_LINEAR_POINTWISE", lambda *args: calls.append(1) or original(*args))
    return calls
