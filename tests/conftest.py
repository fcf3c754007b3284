"""Fixtures shared by every test folder."""

import os

import pytest


@pytest.fixture
def umask():
    """``umask(mask)`` sets the process umask for the test; the old one comes back after it."""
    old = os.umask(0o022)  # reading the umask means setting it; the test sets its own

    def set_mask(mask):
        os.umask(mask)
        return mask

    yield set_mask
    os.umask(old)
