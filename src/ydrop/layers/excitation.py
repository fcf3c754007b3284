"""Excitation Dropout and Activation Dropout.

Zunino, Bargal, Morerio, Zhang, Sclaroff, Murino, *Excitation Dropout: Encouraging
Plasticity in Deep Neural Networks* (``shared/papers/excitation-dropout.txt``,
DESIGN section 3).

Each sample gets its own mask: unit i is kept with the Eq. 3 probability of its
score p_EB (a distribution over the layer's units), and the kept units of a sample
are scaled by N / (number kept). Excitation Dropout takes p_EB from Excitation
Backprop (a Guide pass); Activation Dropout takes p_Act = a / sum(a) from the
layer's own input and needs no Guide. Identity in eval.

Shapes (output = input shape; units along ``unit_dim``, see ``layers/base.py``):
scores (B, N), one keep probability per (sample, unit) from Eq. 3;
(B, N) input: mask (B, N); (B, C, H, W) conv map: mask (B, C, 1, 1), whole channels,
N / kept per sample; (B, T, D) sequence: mask (B, T, D), each token drawn with its
sample's keep probabilities and rescaled on its own, D / (kept in that token).
"""

from __future__ import annotations

from torch import Tensor

from .._validation import check_choice, check_non_negative_int, check_positive_int, check_rate
from ..scores._units import normalise_rows
from . import functional as F_
from .base import GuidedDropout, ScoreRequest, rows_to_keep_shape, spread_mask

__all__ = ["ExcitationDropout", "ActivationDropout", "RESCALES"]

# How kept units are scaled up: the authors' N / kept per sample, or 1 / keep per unit.
RESCALES = {"per_sample": F_.per_sample_rescaled_mask, "inverse": F_.inverse_keep_mask}


class ExcitationDropout(GuidedDropout):
    """Drop units in proportion to their evidence for the ground-truth class.

    Args:
        p: base drop rate 1 - P, the rate every unit gets when scores are uniform (0.5).
        score: any registered score: "excitation" (the paper), "conductance" or
            "gradxact" (clamped at 0 and normalised per sample), "activation".
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
        unit_dim: the input dimension holding the units (None: the features of
            (B, N) and (B, T, D), the channels of conv maps).

    Scores must cover every sample of the batch fed to the model: a Guide pass on
    one batch followed by a forward on a batch of another size raises an error.
    """

    def __init__(self, p: float = 0.5, score: str = "excitation", steps: int = 5, warmup_epochs: int = 0,
                 rescale: str = "per_sample", unit_dim: int | None = None) -> None:
        p = check_rate("p", p)
        super().__init__(score=score, warmup_epochs=check_non_negative_int("warmup_epochs", warmup_epochs),
                         warmup_p=p, fallback_p=p, unit_dim=unit_dim)
        self.p = p
        self.steps = check_positive_int("steps", steps)
        self.rescale = check_choice("rescale", rescale, tuple(RESCALES))

    def score_request(self) -> ScoreRequest:
        return ScoreRequest(kind=self.score, per_sample=True, steps=self.steps)

    def _guided_mask(self, x: Tensor, scores: Tensor, dim: int) -> Tensor:
        if scores.shape[0] != x.shape[0]:
            raise ValueError(
                f"{self.__class__.__name__} has scores for {scores.shape[0]} samples but the batch has "
                f"{x.shape[0]}: call guide.step(inputs, targets) on the same batch that is fed to the model"
            )
        distribution = normalise_rows(scores.float().clamp(min=0))
        keep = F_.retain_probability(distribution, base_retain=1.0 - self.p)
        # Rows of the mask lie along the unit dim: per sample, or per sample and
        # token of a sequence, so "per_sample" rescales each token on its own.
        return spread_mask(RESCALES[self.rescale](rows_to_keep_shape(keep, x, dim)), x, dim)

    def extra_repr(self) -> str:
        text = f"p={self.p}, score={self.score!r}"
        if self.score == "conductance":
            text += f", steps={self.steps}"
        if self.warmup_epochs:
            text += f", warmup_epochs={self.warmup_epochs}"
        if self.rescale != "per_sample":
            text += f", rescale={self.rescale!r}"
        return text + self._unit_dim_repr()


class ActivationDropout(ExcitationDropout):
    """Excitation Dropout's light variant: p_Act = a / sum(a) of the layer's own input.

    Same Eq. 3 policy and rescale; needs no Guide (sec. 5 of the paper).
    """

    def __init__(self, p: float = 0.5, score: str = "activation", steps: int = 5, warmup_epochs: int = 0,
                 rescale: str = "per_sample", unit_dim: int | None = None) -> None:
        super().__init__(p=p, score=score, steps=steps, warmup_epochs=warmup_epochs, rescale=rescale,
                         unit_dim=unit_dim)
