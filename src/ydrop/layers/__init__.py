"""Dropout layers: the guided policies (Y-Drop, Excitation, Activation)."""

from .base import GUIDE_SCORE_KINDS, SCORE_KINDS, GuidedDropout, ScoreRequest
from .excitation import ActivationDropout, ExcitationDropout
from .ydrop import YDrop

__all__ = [
    "SCORE_KINDS",
    "GUIDE_SCORE_KINDS",
    "ScoreRequest",
    "GuidedDropout",
    "YDrop",
    "ExcitationDropout",
    "ActivationDropout",
]
