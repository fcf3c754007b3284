"""Fixtures shared by the score tests."""

from __future__ import annotations

import importlib

import pytest

# The module, not the function ``ydrop.scores.conductance`` that shadows its name.
conductance_module = importlib.import_module("ydrop.scores.conductance")


@pytest.fixture(params=["written", "autograd"])
def backward(request, monkeypatch):
    """Run the test with each of the conductance pass's two backwards: written out
    for a chain (``_chain_backward``) and autograd's, which every other model takes."""
    if request.param == "autograd":
        monkeypatch.setattr(conductance_module, "WRITTEN_BACKWARD", False)
    return request.param
