"""Rates and counts given as numpy scalars or 0-d tensors (what a computation
returns) are numbers like Python's; bools and non-scalars are refused saying what
was given."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ydrop import ExcitationDropout, YDrop
from ydrop.layers.baselines import CurriculumDropout, Dropout, StandoutDropout

REALS = [np.float32(0.5), np.float16(0.5), np.float64(0.5), torch.tensor(0.5), torch.tensor(0.5, dtype=torch.float16)]


@pytest.mark.parametrize("value", REALS, ids=repr)
def test_a_real_scalar_of_any_kind_is_a_rate_stored_as_a_python_float(value):
    for layer, attribute in ((ExcitationDropout(p=value), "p"), (Dropout(p=value), "p"),
                             (YDrop(p0=value), "p0"), (CurriculumDropout(keep_bar=value), "keep_bar"),
                             (StandoutDropout(alpha=value), "alpha")):
        stored = getattr(layer, attribute)
        assert type(stored) is float and stored == 0.5, (layer, stored)


@pytest.mark.parametrize("value", [np.int64(0), torch.tensor(0), 0], ids=repr)
def test_an_integer_scalar_is_a_rate_where_a_float_is_allowed(value):
    assert type(ExcitationDropout(p=value).p) is float and ExcitationDropout(p=value).p == 0.0


@pytest.mark.parametrize("value", [np.int64(3), np.int32(3), torch.tensor(3)], ids=repr)
def test_an_integer_scalar_is_a_count_stored_as_a_python_int(value):
    layer = YDrop(steps=value, warmup_epochs=value, num_units=value)
    assert type(layer.steps) is int and layer.steps == 3 and layer.warmup_epochs == 3
    assert layer.drop_rate.shape == (3,)
    curriculum = CurriculumDropout()
    curriculum.set_iteration(value)
    assert int(curriculum.iteration) == 3


@pytest.mark.parametrize("value, given", [
    (torch.tensor([0.5]), "got a tensor of shape (1,)"),
    (torch.tensor([[0.5, 0.5]]), "got a tensor of shape (1, 2)"),
    (np.array([0.5]), "of type ndarray"),
    (True, "got True of type bool"),
    (np.bool_(False), "of type bool"),
    (torch.tensor(True), "got tensor(True), a torch.bool tensor"),
    ("0.5", "got '0.5' of type str"),
])
def test_bools_and_non_scalars_are_refused_saying_what_was_given(value, given):
    with pytest.raises(ValueError) as info:
        ExcitationDropout(p=value)
    assert str(info.value).startswith("p must be a number in [0, 1), got ") and given in str(info.value)


@pytest.mark.parametrize("value, message", [
    (np.float32(1.5), "p must be a number in [0, 1), got np.float32(1.5)"),
    (torch.tensor(1.0), "p must be a number in [0, 1), got tensor(1.)"),
    (np.float64("nan"), "p must be a number in [0, 1), got np.float64(nan)"),
])
def test_a_real_scalar_out_of_range_is_refused_for_its_value(value, message):
    with pytest.raises(ValueError) as info:
        ExcitationDropout(p=value)
    assert str(info.value) == message


@pytest.mark.parametrize("value, given", [(2.0, "got 2.0 of type float"), (True, "got True of type bool"),
                                          (torch.tensor(2.0), "got tensor(2.), a torch.float32 tensor"),
                                          (torch.tensor([2]), "got a tensor of shape (1,)")])
def test_a_count_refuses_floats_bools_and_non_scalars_saying_what_was_given(value, given):
    with pytest.raises(ValueError) as info:
        YDrop(steps=value)
    assert str(info.value) == f"steps must be an integer >= 1, {given}"
