"""create_dropout: every name, keyword checks, classes and factories used as is."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from ydrop.layers import ActivationDropout, ExcitationDropout, YDrop
from ydrop.layers.baselines import CurriculumDropout, Dropout, InformationDropout, StandoutDropout
from ydrop.layers.factory import DROPOUT_METHODS, accepted_keywords, create_dropout, resolve_dropout

EXPECTED = {
    "none": nn.Identity,
    "dropout": Dropout,
    "curriculum": CurriculumDropout,
    "standout": StandoutDropout,
    "information": InformationDropout,
    "ydrop": YDrop,
    "excitation": ExcitationDropout,
    "activation": ActivationDropout,
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_name_builds_its_class(name):
    module = create_dropout(name)
    assert type(module) is EXPECTED[name]
    assert create_dropout(name) is not module  # a fresh instance each call


def test_names_are_exactly_the_documented_ones_and_case_insensitive():
    assert set(DROPOUT_METHODS) == set(EXPECTED)
    assert type(create_dropout(" YDrop ")) is YDrop
    assert type(create_dropout(None)) is nn.Identity


def test_keywords_are_passed():
    assert create_dropout("dropout", p=0.3).p == 0.3
    assert create_dropout("curriculum", keep_bar=0.7, gamma=1e-3).gamma == 1e-3
    assert create_dropout("ydrop", elasticity=0.01, num_units=7).drop_rate.numel() == 7
    assert create_dropout("information", num_units=4).num_units == 4
    assert create_dropout("excitation", p=0.25).p == 0.25


def test_unknown_name_lists_allowed_names():
    with pytest.raises(ValueError, match="'gaussian'") as error:
        create_dropout("gaussian")
    for name in EXPECTED:
        assert repr(name) in str(error.value)


def test_unknown_keyword_is_named_with_accepted_ones():
    with pytest.raises(TypeError, match=r"'curriculum' got unknown keyword argument 'p'; it accepts: keep_bar, gamma"):
        create_dropout("curriculum", p=0.5)
    with pytest.raises(TypeError, match=r"'rate', 'q'.*accepts: p, unit_dim$"):
        create_dropout("dropout", rate=0.5, q=1)
    with pytest.raises(TypeError, match="'none' got unknown keyword argument 'p'; it accepts: no keyword arguments"):
        create_dropout("none", p=0.5)
    with pytest.raises(TypeError, match="elasticity.*score"):
        create_dropout("ydrop", elastic=0.1)


def test_bad_values_are_reported_by_the_constructor():
    with pytest.raises(ValueError, match="^p must be"):
        create_dropout("dropout", p=2)


class Custom(nn.Module):
    def __init__(self, rate: float = 0.1) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x):
        return x


def test_class_and_callables_are_used_as_is():
    assert create_dropout(Custom, rate=0.3).rate == 0.3
    assert type(create_dropout(nn.Dropout, p=0.2)) is nn.Dropout
    made = create_dropout(functools.partial(Custom, rate=0.4))
    assert made.rate == 0.4
    assert isinstance(create_dropout(lambda: nn.Identity()), nn.Identity)
    assert isinstance(create_dropout(lambda **kw: Custom(**kw), rate=0.2), Custom)  # **kwargs: not checked
    with pytest.raises(TypeError, match="Custom got unknown keyword argument 'p'; it accepts: rate"):
        create_dropout(Custom, p=0.2)


def test_instances_and_non_modules_are_refused():
    with pytest.raises(TypeError, match="not an instance"):
        create_dropout(Dropout())
    with pytest.raises(TypeError, match="not an nn.Module"):
        create_dropout(lambda: torch.zeros(1))
    with pytest.raises(TypeError, match="got int 3"):
        resolve_dropout(3)


def test_accepted_keywords():
    assert accepted_keywords(Dropout) == ("p", "unit_dim")
    assert accepted_keywords(DROPOUT_METHODS["none"]) == ()
    assert "num_units" in accepted_keywords(YDrop)
    assert accepted_keywords(lambda **kw: None) is None
