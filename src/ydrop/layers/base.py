"""The contract between a guided dropout layer and the :class:`~ydrop.Guide`.

A *guided* layer is a dropout *policy* that consumes an importance *score*
(DESIGN section 1). Scores come from one of three places:

* ``"conductance"`` and ``"excitation"`` need a separate scoring pass through the
  whole network; the Guide runs it once per step for every layer and hands each
  layer its rows with :meth:`GuidedDropout.set_scores`;
* ``"activation"`` is read off the layer's own input inside ``forward``: it needs
  no Guide at all.

Units are the last dimension of a (B, N) input, or the channels of a (B, C, H, W)
feature map (whole channels are dropped). In eval mode every guided layer is the
identity, like ``nn.Dropout``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._validation import check_all_finite, check_choice, check_non_negative_int, check_rate
from ..scores.activation import activation_score
from .functional import bernoulli_mask

__all__ = ["SCORE_KINDS", "GUIDE_SCORE_KINDS", "ScoreRequest", "GuidedDropout", "unit_view", "plain_dropout"]

SCORE_KINDS = ("conductance", "excitation", "activation")
# The kinds that need a network-wide scoring pass, i.e. a Guide.
GUIDE_SCORE_KINDS = ("conductance", "excitation")


@dataclass(frozen=True)
class ScoreRequest:
    """What a layer asks the Guide for at one step.

    ``kind``: one of :data:`GUIDE_SCORE_KINDS`. ``per_sample``: True when the
    policy needs a score row for every sample of this exact batch (Excitation
    Dropout's per-sample masks); False when a random subset of ``B_c = max(1, B //
    steps)`` samples suffices (Y-Drop's mean conductance, Eq. 9). ``steps``: the
    number of conductance interpolation steps n_c.
    """

    kind: str
    per_sample: bool
    steps: int = 5


def unit_view(x: Tensor) -> tuple[int, int]:
    """(batch, units) of a (B, N) input or a (B, C, ...) feature map (units = channels)."""
    if x.dim() < 2:
        raise ValueError(
            f"input must have shape (B, N) or (B, C, H, W), got a tensor of shape {tuple(x.shape)}"
        )
    return x.shape[0], x.shape[1]


def broadcast_units(values: Tensor, x: Tensor) -> Tensor:
    """Reshape a (B or 1, N) per-unit tensor so it broadcasts over ``x`` (B, N, *spatial)."""
    if x.dim() == 2:
        return values  # already (B or 1, N): no view op on every step
    return values.reshape(values.shape + (1,) * (x.dim() - 2))


def plain_dropout(x: Tensor, p: float) -> Tensor:
    """Standard dropout on units (whole channels for feature maps), rescaled by 1 / (1 - p)."""
    if p == 0.0:
        return x
    batch, units = unit_view(x)
    with torch.no_grad():
        keep = torch.full((batch, units), 1.0 - p, dtype=x.dtype, device=x.device)
        mask = bernoulli_mask(keep).div_(1.0 - p)
    return x * broadcast_units(mask, x)


class GuidedDropout(nn.Module):
    """Base class: warm-up, score bookkeeping and the no-score fallback.

    Subclasses implement :meth:`score_request` and :meth:`_guided_forward`.

    Args:
        score: which importance score the policy consumes: "conductance",
            "excitation" or "activation".
        warmup_epochs: epochs (the annealing factor K) during which the layer is
            plain dropout at ``warmup_p``; the Guide skips scoring then.
        warmup_p: the plain-dropout rate used during warm-up.
        fallback_p: the plain-dropout rate used, with a warning, when the layer is
            asked to run guided but was never given scores.
    """

    def __init__(self, score: str, warmup_epochs: int, warmup_p: float, fallback_p: float) -> None:
        super().__init__()
        self.score = check_choice("score", score, SCORE_KINDS)
        self.warmup_epochs = check_non_negative_int("warmup_epochs", warmup_epochs)
        self.warmup_p = check_rate("warmup_p", warmup_p)
        self.fallback_p = fallback_p
        self.epoch = 0
        self._scores: Tensor | None = None
        # The Guide's fast path: a function that scores this step from the layer's own
        # input during the next training forward (see :meth:`score_in_forward`).
        self._score_function: Callable[[Tensor], Tensor] | None = None
        self._warned_no_scores = False

    # ----------------------------------------------------------------- schedule
    def set_epoch(self, epoch: int) -> None:
        """Tell the layer which epoch (0-based) training is in; drives warm-up."""
        self.epoch = check_non_negative_int("epoch", epoch)

    @property
    def in_warmup(self) -> bool:
        return self.epoch < self.warmup_epochs

    @property
    def needs_guide(self) -> bool:
        """True when the next training forward wants scores from a Guide pass."""
        return self.score in GUIDE_SCORE_KINDS and not self.in_warmup

    def score_request(self) -> ScoreRequest:
        raise NotImplementedError

    # ------------------------------------------------------------------- scores
    def set_scores(self, scores: Tensor) -> None:
        """Receive this step's scores, shape (B', N): one row per scored sample."""
        if not isinstance(scores, Tensor) or scores.dim() != 2:
            shape = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
            raise ValueError(f"scores must be a tensor of shape (samples, units), got {shape}")
        check_all_finite("scores", scores)
        self._scores = scores.detach()

    def score_in_forward(self, score_function: Callable[[Tensor], Tensor]) -> None:
        """Let the next training forward compute this step's scores itself.

        ``score_function(x)`` maps the layer's input (B, N, *) to scores (B, N); it
        runs once, inside the next guided forward, and its result is handled like
        :meth:`set_scores`. The Guide uses this for Excitation Backprop when the
        network above the layer is a chain: the training forward has already
        computed everything below the layer, so only the part above is run again.
        """
        self._score_function = score_function

    def keep_scores(self) -> None:
        """Called by the Guide on a step where this layer asked for no new scores
        (warm-up, or a layer that reuses its scores for several steps)."""

    def clear_scores(self) -> None:
        self._scores = None
        self._score_function = None

    def _current_scores(self, x: Tensor) -> Tensor | None:
        """Scores for this forward: computed from ``x`` for "activation" (or by a
        pending :meth:`score_in_forward` function), else the Guide's last ones."""
        if self.score == "activation":
            return activation_score(x.detach())
        if self._score_function is not None:
            score_function, self._score_function = self._score_function, None
            self.set_scores(score_function(x.detach()))
        return self._scores

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        unit_view(x)
        if self.in_warmup:
            return plain_dropout(x, self.warmup_p)
        scores = self._current_scores(x)
        if scores is None:
            if not self._warned_no_scores:
                warnings.warn(
                    f"{self.__class__.__name__}(score={self.score!r}) ran in training mode without "
                    f"scores, so it acts as plain dropout with p={self.fallback_p}. Create "
                    "`guide = ydrop.Guide(model)` and call `guide.step(inputs, targets)` before "
                    "each training forward.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self._warned_no_scores = True
            return plain_dropout(x, self.fallback_p)
        if scores.shape[1] != x.shape[1]:
            raise ValueError(
                f"scores have {scores.shape[1]} units but the input of {self.__class__.__name__} "
                f"has {x.shape[1]} (shape {tuple(x.shape)}); the scores belong to another layer"
            )
        return self._guided_forward(x, scores.to(device=x.device, dtype=x.dtype))

    def _guided_forward(self, x: Tensor, scores: Tensor) -> Tensor:
        raise NotImplementedError
