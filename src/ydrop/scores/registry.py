"""The registry of importance scores (DESIGN section 1).

A score is ``fn(model, inputs, target, layers) -> {layer: Tensor (B, N)}`` under a
name; a guided layer names the score it consumes (``score="conductance"``) and the
Guide looks the name up here, so a new score is one function and one
:func:`register_score` call; the built-in kinds are registered the same way. The
Guide calls ``fn`` with the model in eval mode: ``inputs`` (B, *) the samples to
score, ``target`` (B,) their classes, ``layers`` the guided modules that consume it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from .._validation import check_bool

__all__ = ["ScoreFn", "ScoreKind", "register_score", "score_kind", "registered_scores"]

ScoreFn = Callable[[nn.Module, Tensor, Tensor, list], dict]


@dataclass(frozen=True)
class ScoreKind:
    """A registered score.

    ``whole_batch``: False when a layer that only ranks its units (Y-Drop) may take
    B_c = max(1, B // steps) random samples (Y-Drop Eq. 9). ``from_input(x, unit_dim)
    -> (B, N)``: a score read off the layer's own input, needing no Guide. ``along``,
    ``anchor``: scoring inside the training forward where the model's plan has a
    chain above the anchor ("lowest": the lowest scored layer, read at its input;
    "stem": the affine first module, read at its output): ``along(chain, value,
    target, layers, anchor_module) -> [(B, N), ...]`` (it puts what it runs in eval mode).
    """

    name: str
    fn: ScoreFn
    whole_batch: bool = True
    from_input: Callable[[Tensor, int | None], Tensor] | None = None
    along: Callable | None = None
    anchor: str = "lowest"


_SCORES: dict[str, ScoreKind] = {}


def register_score(name: str, fn: ScoreFn, *, whole_batch: bool = True, from_input: Callable | None = None,
                   along: Callable | None = None, anchor: str = "lowest") -> None:
    """Register ``fn`` as the score ``name`` (replacing one of that name), e.g.
    ``register_score("magnitude", fn)`` then ``YDrop(score="magnitude")``; the keywords
    are :class:`ScoreKind`'s."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if not callable(fn):
        raise TypeError(f"fn must be callable as fn(model, inputs, target, layers), got {fn!r}")
    for option, value in (("from_input", from_input), ("along", along)):
        if value is not None and not callable(value):
            raise TypeError(f"{option} must be None or callable (see ydrop.scores.ScoreKind), got {value!r}")
    if anchor not in ("lowest", "stem"):
        raise ValueError(f"anchor must be 'lowest' or 'stem', got {anchor!r}")
    _SCORES[name] = ScoreKind(name, fn, check_bool("whole_batch", whole_batch), from_input, along, anchor)


def score_kind(name: str, option: str = "score") -> ScoreKind:
    """The registered score ``name``; an unknown name raises an error naming
    ``option`` (the argument as the user typed it) and the registered scores."""
    kind = _SCORES.get(name) if isinstance(name, str) else None
    if kind is None:
        raise ValueError(f"{option}={name!r} is not a registered score; registered: "
                         f"{', '.join(registered_scores())} (add one with ydrop.register_score(name, fn))")
    return kind


def registered_scores() -> tuple[str, ...]:
    return tuple(sorted(_SCORES))
