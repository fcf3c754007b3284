"""Fixtures shared by every test folder."""

import os

import pytest
import torch


@pytest.fixture
def umask():
    """``umask(mask)`` sets the process umask for the test; the old one comes back after it."""
    old = os.umask(0o022)  # reading the umask means setting it; the test sets its own

    def set_mask(mask):
        os.umask(mask)
        return mask

    yield set_mask
    os.umask(old)


@pytest.fixture
def fresh_compiler():
    """torch.compile's caches emptied before and after the test: each compiling test
    compiles its own models, and earlier tests' cache entries for the same code
    (``nn.Sequential.forward``) would count against Dynamo's recompile limit."""
    torch.compiler.reset()
    yield
    torch.compiler.reset()
