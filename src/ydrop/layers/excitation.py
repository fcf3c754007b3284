"""Excitation Dropout and Activation Dropout.

Zunino, Bargal, Morerio, Zhang, Sclaroff, Murino, *Excitation Dropout: Encouraging
Plasticity in Deep Neural Networks* (``shared/papers/excitation-dropout.txt``,
DESIGN section 3).

Each sample gets its own mask: unit i is kept with the Eq. 3 probability of its
score p_EB (a distribution over the layer's units), and the kept units of a sample
are scaled by N / (number kept). Excitation Dropout takes p_EB from Excitation
Backprop (a Guide pass); Activation Dropout takes p_Act = a / sum(a) from the
layer's own input and needs no Guide. Shapes: input (B, N) or (B, C, H, W)
(units = channels, whole channels dropped), output the same. Identity in eval.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._validation import check_choice, check_non_negative_int, check_positive_int, check_rate
from ..scores._units import normalise_rows
from . import functional as F_
from .base import GuidedDropout, ScoreRequest, broadcast_units

__all__ = ["ExcitationDropout", "ActivationDropout", "RESCALES"]

# How kept units are scaled up: the authors' N / kept per sample, or 1 / keep per unit.
RESCALES = {"per_sample": F_.per_sample_rescaled_mask, "inverse": F_.inverse_keep_mask}


class ExcitationDropout(GuidedDropout):
    """Drop units in proportion to their evidence for the ground-truth class.

    Args:
        p: base drop rate 1 - P, the rate every unit gets when scores are uniform (0.5).
        score: "excitation" (the paper), "conductance" (clamped at 0 and normalised
            per sample) or "activation".
        steps: conductance interpolation steps, used only with score="conductance".
        warmup_epochs: epochs of plain dropout at ``p`` before the guided masks (0).
        rescale: "per_sample" (the authors' code: a sample's kept units times N / kept)
            or "inverse" (each kept unit times 1 / its retain probability, unbiased
            per unit like ``nn.Dropout``). With ReLU layers the units that are off
            have p_EB = 0 and are always kept, so "per_sample" scales the active
            units by less than they lose: on average they keep well under their
            eval-mode size during training. "inverse" fixes the mean but not the
            variance: a unit with p_EB well above 1/N has keep near 0 and, when
            kept, is scaled by 1 / keep (about 55x at p_EB = 0.05, N = 1024). It
            helped on the 8x8 digits (256 units) but diverged to NaN on MNIST FC_1
            (1024 units) for every seed (docs/results.md), so it is opt-in.

    Scores must cover every sample of the batch fed to the model: a Guide pass on
    one batch followed by a forward on a batch of another size raises an error.
    """

    def __init__(self, p: float = 0.5, score: str = "excitation", steps: int = 5, warmup_epochs: int = 0,
                 rescale: str = "per_sample") -> None:
        p = check_rate("p", p)
        super().__init__(score=score, warmup_epochs=check_non_negative_int("warmup_epochs", warmup_epochs),
                         warmup_p=p, fallback_p=p)
        self.p = p
        self.steps = check_positive_int("steps", steps)
        self.rescale = check_choice("rescale", rescale, tuple(RESCALES))

    def score_request(self) -> ScoreRequest:
        return ScoreRequest(kind=self.score, per_sample=True, steps=self.steps)

    def _guided_forward(self, x: Tensor, scores: Tensor) -> Tensor:
        if self.p == 0.0:
            return x
        if scores.shape[0] != x.shape[0]:
            raise ValueError(
                f"{self.__class__.__name__} has scores for {scores.shape[0]} samples but the batch has "
                f"{x.shape[0]}: call guide.step(inputs, targets) on the same batch that is fed to the model"
            )
        with torch.no_grad():
            distribution = normalise_rows(scores.float().clamp(min=0))
            keep = F_.retain_probability(distribution, base_retain=1.0 - self.p)
            mask = RESCALES[self.rescale](keep)
        return x * broadcast_units(mask.to(x.dtype), x)

    def extra_repr(self) -> str:
        text = f"p={self.p}, score={self.score!r}"
        if self.score == "conductance":
            text += f", steps={self.steps}"
        if self.warmup_epochs:
            text += f", warmup_epochs={self.warmup_epochs}"
        if self.rescale != "per_sample":
            text += f", rescale={self.rescale!r}"
        return text


class ActivationDropout(ExcitationDropout):
    """Excitation Dropout's light variant: p_Act = a / sum(a) of the layer's own input.

    Same Eq. 3 policy and rescale; needs no Guide (sec. 5 of the paper).
    """

    def __init__(self, p: float = 0.5, score: str = "activation", steps: int = 5, warmup_epochs: int = 0,
                 rescale: str = "per_sample") -> None:
        super().__init__(p=p, score=score, steps=steps, warmup_epochs=warmup_epochs, rescale=rescale)
