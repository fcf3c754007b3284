"""Dropout layers: the guided policies (Y-Drop, Excitation, Activation) and the
baselines, all with units along ``unit_dim`` (``base.py``)."""

from .base import GuidedDropout, ScoreRequest, guided_layers
from .baselines import CurriculumDropout, Dropout, InformationDropout, StandoutDropout, information_kl
from .excitation import ActivationDropout, ExcitationDropout
from .factory import DROPOUT_METHODS, create_dropout
from .ydrop import YDrop

__all__ = [
    "ScoreRequest",
    "GuidedDropout",
    "guided_layers",
    "YDrop",
    "ExcitationDropout",
    "ActivationDropout",
    "Dropout",
    "CurriculumDropout",
    "StandoutDropout",
    "InformationDropout",
    "information_kl",
    "create_dropout",
    "DROPOUT_METHODS",
]
