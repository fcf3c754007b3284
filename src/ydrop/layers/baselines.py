"""Baseline dropout methods with the same interface as the guided layers.

DESIGN section 4: the methods the two papers compare against, so that every
method runs in the same models and training loop.

* :class:`Dropout`: standard dropout (Srivastava et al. 2014) on units.
* :class:`CurriculumDropout`: Morerio et al., *Curriculum Dropout*, ICCV 2017.
  Retain probability keep(t) = (1 - keep_bar) exp(-gamma t) + keep_bar, with t the
  training iteration, so dropout starts off and grows to 1 - keep_bar.
* :class:`StandoutDropout`: Ba & Frey, *Adaptive dropout for training deep neural
  networks* (standout), NIPS 2013. Retain probability sigmoid(alpha s + beta) of
  the unit's own signal s.
* :class:`InformationDropout`: Achille & Soatto, *Information Dropout: learning
  optimal representations through noisy computation*, TPAMI 2018. Learned
  multiplicative log-normal noise and a KL penalty the training loop adds to the
  loss (:func:`information_kl`).

Shapes (output = input shape): every baseline takes ``unit_dim`` with the guided
layers' meaning and defaults (``layers/base.py``), so that every method drops the
same units. A (B, N) input has N units (one draw per sample and unit); a
(B, C, H, W) or (B, C, D, H, W) conv map has C channel units (one mask or noise
value per sample and channel, shared by all its positions); a (B, T, D) sequence has
D feature units with one draw per element at its unit's rate, as ``nn.Dropout``
does inside a transformer, so the sequence length T may change from batch to
batch. An explicit ``unit_dim`` covers the rest (a Conv1d map (B, C, L):
``unit_dim=1``). Masks and noise are drawn under ``no_grad``. In eval mode every
layer is the identity, except :class:`StandoutDropout`, whose eval output is the
expectation x * keep(x) (the original method's test-time rule), and
:class:`InformationDropout` with ``eval_output="mean"``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .._validation import (
    as_real,
    check_choice,
    check_non_negative,
    check_non_negative_int,
    check_positive_int,
    check_rate,
    describe,
)
from .base import (
    check_unit_dim,
    input_unit_dim,
    mean_after_units,
    plain_dropout,
    spread_mask,
    unit_count_error,
    unit_dim_repr,
    unit_keep_shape,
)
from .functional import bernoulli_mask

__all__ = [
    "Dropout",
    "CurriculumDropout",
    "StandoutDropout",
    "InformationDropout",
    "information_kl",
    "curriculum_keep_probability",
    "standout_keep_probability",
]


def _check_real(name: str, value: Any) -> float:
    """A finite real number of any sign, as a Python float."""
    number = as_real(value)
    if number is None:
        raise ValueError(f"{name} must be a finite number, got {describe(value)}")
    return number


def _check_positive(name: str, value: Any) -> float:
    number = as_real(value)
    if number is None or number <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {describe(value)}")
    return number


# --------------------------------------------------------------------------- Dropout
class Dropout(nn.Module):
    """Standard dropout on units (Srivastava et al., *Dropout: a simple way to prevent
    neural networks from overfitting*, JMLR 2014): keep with probability 1 - p,
    rescale by 1 / (1 - p), so the mean is preserved.

    Shapes (units along ``unit_dim``, module docstring): (B, N) and (B, T, D) are
    dropped per element, like ``nn.Dropout`` (mask (B, N), (B, T, D)); unlike
    ``nn.Dropout``, a (B, C, H, W) conv map drops whole channels (mask (B, C, 1, 1)),
    like the guided layers, so every method drops the same kind of unit.

    Args:
        p: drop rate in [0, 1) (0.5, the rate the Y-Drop paper found best).
        unit_dim: the input dimension holding the units (None: the features of
            (B, N) and (B, T, D), the channels of conv maps).
    """

    def __init__(self, p: float = 0.5, unit_dim: int | None = None) -> None:
        super().__init__()
        self.p = check_rate("p", p)
        self.unit_dim = check_unit_dim(unit_dim)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        return plain_dropout(x, self.p, self.unit_dim)

    def extra_repr(self) -> str:
        return f"p={self.p}{unit_dim_repr(self.unit_dim)}"


# ---------------------------------------------------------------- Curriculum Dropout
def curriculum_keep_probability(t: float | Tensor, keep_bar: float, gamma: float) -> float | Tensor:
    """keep(t) = (1 - keep_bar) exp(-gamma t) + keep_bar (Morerio et al. 2017, Eq. 9).

    1 at t = 0, decreasing to ``keep_bar`` as t grows. Works on floats and tensors.
    """
    if isinstance(t, Tensor):
        return (1.0 - keep_bar) * torch.exp(-gamma * t) + keep_bar
    return (1.0 - keep_bar) * math.exp(-gamma * t) + keep_bar


class CurriculumDropout(nn.Module):
    """Dropout whose rate grows from 0 to 1 - keep_bar over training (Curriculum Dropout).

    At the t-th training forward (t = 0, 1, ...) units are kept with probability
    keep(t) = (1 - keep_bar) exp(-gamma t) + keep_bar and kept units are scaled by
    1 / keep(t). The layer counts its own iterations: the buffer ``iteration`` is
    incremented by every training-mode forward (not in eval mode, so scoring
    passes and validation do not advance it) and is saved in ``state_dict``, so a
    resumed run continues the schedule. Run the layer once per training step.

    Shapes (units along ``unit_dim``, module docstring): every unit has the same
    rate, so the masks are those of :class:`Dropout` at p = 1 - keep(t): per element
    for (B, N) and (B, T, D), whole channels of a conv map (mask (B, C, 1, 1)).
    The mean is preserved.

    Args:
        keep_bar: the final retain probability theta-bar in (0, 1] (0.5).
        gamma: the schedule's speed, >= 0 (5e-4, the value of Morerio et al. and
            of the Excitation Dropout comparison).
        unit_dim: the input dimension holding the units (None: the features of
            (B, N) and (B, T, D), the channels of conv maps).
    """

    iteration: Tensor

    def __init__(self, keep_bar: float = 0.5, gamma: float = 5e-4, unit_dim: int | None = None) -> None:
        super().__init__()
        number = as_real(keep_bar)
        if number is None or not 0 < number <= 1:
            raise ValueError(f"keep_bar must be a number in (0, 1] (the final retain probability), "
                             f"got {describe(keep_bar)}")
        self.keep_bar = number
        self.gamma = check_non_negative("gamma", gamma)
        self.unit_dim = check_unit_dim(unit_dim)
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))

    @property
    def keep_probability(self) -> float:
        """keep(t) that the next training forward will use."""
        return float(curriculum_keep_probability(int(self.iteration), self.keep_bar, self.gamma))

    @property
    def p(self) -> float:
        """The drop rate 1 - keep(t) of the next training forward."""
        return 1.0 - self.keep_probability

    def set_iteration(self, iteration: int) -> None:
        """Jump the schedule to iteration t (e.g. when resuming without a state dict)."""
        self.iteration.fill_(check_non_negative_int("iteration", iteration))

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        dim = input_unit_dim(x, self.unit_dim)
        with torch.no_grad():
            t = self.iteration.to(device=x.device, dtype=torch.float32)
            keep = curriculum_keep_probability(t, self.keep_bar, self.gamma).to(x.dtype)
            self.iteration.add_(1)
            mask = bernoulli_mask(keep.expand(unit_keep_shape(x, dim))).div_(keep)
        return x * spread_mask(mask, x, dim)

    def extra_repr(self) -> str:
        text = f"keep_bar={self.keep_bar}, gamma={self.gamma}"
        if self.iteration.device.type != "meta":
            text += f", iteration={int(self.iteration)}, keep={self.keep_probability:.4g}"
        return text + unit_dim_repr(self.unit_dim)


# ------------------------------------------------------------------ Standout dropout
def standout_keep_probability(x: Tensor, alpha: float = 1.0, beta: float = 0.0,
                              unit_dim: int | None = None) -> Tensor:
    """Standout's retain probability sigmoid(alpha * s + beta), one per draw of the
    mask: shape (B, N) for a (B, N) input, (B, T, D) for a sequence, (B, C) for a
    conv map (``x.shape[:d + 1]`` for unit dim d).

    s is each element itself, or a channel's mean over its positions for a conv map
    (every position after the unit dim is averaged).
    """
    dim = input_unit_dim(x, unit_dim)
    return torch.sigmoid(mean_after_units(x, dim) * alpha + beta)


class StandoutDropout(nn.Module):
    """Adaptive dropout (standout): units with a larger signal are kept more often.

    Ba & Frey run a "standout network" alongside each layer whose weights are a
    scaled copy of the layer's own: unit j is kept with probability
    sigmoid(alpha * z_j + beta), z_j being the unit's pre-activation. This layer
    sits *after* the activation, so it uses what it receives: s = its input (the
    post-ReLU activation; for a feature map, the channel's mean over positions).
    For ReLU units s = relu(z), so the rule is the same as the original for active
    units, while inactive units (s = 0) get sigmoid(beta) and, being zero, are
    unchanged whatever the mask. No clamp is needed: the sigmoid saturates.

    Shapes (units along ``unit_dim``, module docstring): the signal, the retain
    probability and the mask have one value per draw. (B, N): s = x, mask (B, N),
    as in the paper (one probability per sample and unit, from that sample's
    activation). (B, T, D): s = x per element, mask (B, T, D): each token of a
    sequence is an input of its own to the position-wise layer that produced it,
    so, like a sample of a fully connected layer, its feature j is kept with
    sigmoid(alpha s + beta) of its own activation (a per-unit signal, averaged
    over the tokens, would keep a feature alike in every token whatever its value
    there). (B, C, H, W): s = the channel's mean over positions, mask (B, C, 1, 1),
    whole channels.

    Training: output = x * mask, mask ~ Bernoulli(keep), with no rescale (as in the
    original). Eval: the expectation x * keep. keep is computed under ``no_grad``
    from the detached input (the original does not backpropagate through the
    standout network either: its weights are tied to the layer's).

    Args:
        alpha: scale of the signal (1.0, the tied setting of Ba & Frey).
        beta: offset (0.0); a negative beta drops more.
        unit_dim: the input dimension holding the units (None: the features of
            (B, N) and (B, T, D), the channels of conv maps).
    """

    def __init__(self, alpha: float = 1.0, beta: float = 0.0, unit_dim: int | None = None) -> None:
        super().__init__()
        self.alpha = _check_real("alpha", alpha)
        self.beta = _check_real("beta", beta)
        self.unit_dim = check_unit_dim(unit_dim)

    def forward(self, x: Tensor) -> Tensor:
        dim = input_unit_dim(x, self.unit_dim)
        with torch.no_grad():
            keep = standout_keep_probability(x.detach(), self.alpha, self.beta, dim)
            factor = bernoulli_mask(keep) if self.training else keep
        return x * spread_mask(factor, x, dim)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}{unit_dim_repr(self.unit_dim)}"


# --------------------------------------------------------------- Information dropout
class InformationDropout(nn.Module):
    """Learned multiplicative log-normal noise with a KL penalty (Information Dropout).

    Training: output = x * eps with eps = exp(alpha(x) * n), n ~ N(0, 1), so
    log eps ~ N(0, alpha(x)^2). The noise scale is learned from the input:
    alpha(x) = ALPHA_MIN + alpha_max * sigmoid(W s + b), with (W, b) a learned
    N -> N linear map over the N units (``alpha_layer``) applied to the signal s.
    The paper computes alpha with a layer shaped like the one it regularises; here
    the layer sits after the activation, so alpha is computed from the activation
    itself. ``alpha_layer`` starts at zero weights and bias, so alpha starts at
    ALPHA_MIN + alpha_max / 2 for every input. Gradients reach ``alpha_layer``
    through the noise (reparameterisation: n is drawn under ``no_grad``) and through
    the KL term.

    Shapes (units along ``unit_dim``, module docstring; s, alpha and the noise have
    one value per draw, units last): (B, N): s = x, alpha and noise (B, N).
    (B, T, D): s = x per element, alpha and noise (B, T, D): ``alpha_layer`` maps
    each token's D features to that token's D noise scales, a position-wise layer
    like the feed-forward block of a transformer, as the paper's alpha of a
    convolution is computed at every position. ``alpha_layer`` has D inputs
    whatever T, so the sequence length may change between batches.
    (B, C, H, W): s = each channel's mean over its positions, alpha (B, C) (a 1x1
    convolution of the channel means) and one noise value per sample and channel,
    shared by its positions.

    KL term: for ReLU activations and the log-uniform prior the paper's closed form
    is KL = -log alpha + const; as in the authors' code the constant makes it
    non-negative: kl = -log(alpha / (alpha_max + ALPHA_MIN)). Each training forward
    sets ``self.kl``, a scalar tensor attached to the graph: the kl of each alpha,
    with ``kl_reduction="mean"`` (default) averaged over the units, so beta does not
    depend on the layer width, or with ``"sum"`` summed over them, as the authors'
    code does; then averaged over the batch (and over the tokens of a sequence, so
    beta does not depend on T either). A training loop adds
    ``beta * information_kl(model)`` to the loss. ``kl`` is None before the first
    training forward and after an eval forward.

    Eval: ``eval_output="identity"`` (default) returns x, the noise's median
    (log eps has mean 0); ``"mean"`` returns x * E[eps] = x * exp(alpha(x)^2 / 2).

    Args:
        alpha_max: the cap of alpha (0.7, the paper's and the authors' code value).
        num_units: N, the input's size along its unit dimension (C for a conv map,
            D for a sequence); builds ``alpha_layer`` now. Without it the layer is
            built at the first forward: run one forward before creating the
            optimizer, or its parameters are not optimised. ``ydrop.models`` passes it.
        kl_reduction: "mean" or "sum" over units (see above).
        eval_output: "identity" or "mean" (see above).
        unit_dim: the input dimension holding the units (None: the features of
            (B, N) and (B, T, D), the channels of conv maps).
    """

    ALPHA_MIN = 1e-3
    KL_REDUCTIONS = ("mean", "sum")
    EVAL_OUTPUTS = ("identity", "mean")

    def __init__(
        self,
        alpha_max: float = 0.7,
        num_units: int | None = None,
        kl_reduction: str = "mean",
        eval_output: str = "identity",
        unit_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.alpha_max = _check_positive("alpha_max", alpha_max)
        self.kl_reduction = check_choice("kl_reduction", kl_reduction, self.KL_REDUCTIONS)
        self.eval_output = check_choice("eval_output", eval_output, self.EVAL_OUTPUTS)
        self.unit_dim = check_unit_dim(unit_dim)
        self.alpha_layer: nn.Linear | None = None
        if num_units is not None:
            self._build(check_positive_int("num_units", num_units))
        self.kl: Tensor | None = None
        self.register_load_state_dict_pre_hook(_build_before_load)

    def _build(self, units: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> None:
        layer = nn.Linear(units, units, device=device, dtype=dtype)
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
        self.alpha_layer = layer

    @property
    def num_units(self) -> int | None:
        return None if self.alpha_layer is None else self.alpha_layer.in_features

    def alpha(self, x: Tensor) -> Tensor:
        """The noise scale alpha(x), in (ALPHA_MIN, ALPHA_MIN + alpha_max), one per
        draw of the noise: (B, N), (B, T, D) for a sequence, (B, C) for a conv map."""
        return self._alpha(x, input_unit_dim(x, self.unit_dim))

    def _alpha(self, x: Tensor, dim: int) -> Tensor:
        units = x.shape[dim]
        if self.alpha_layer is None:
            self._build(units, device=x.device, dtype=x.dtype)
        elif self.alpha_layer.in_features != units:
            raise unit_count_error(self, self.alpha_layer.in_features, x, dim, self.unit_dim)
        # Units are the last dim of the signal: the linear map acts on them.
        return self.ALPHA_MIN + self.alpha_max * torch.sigmoid(self.alpha_layer(mean_after_units(x, dim)))

    def kl_divergence(self, alpha: Tensor) -> Tensor:
        """The scalar KL term of a batch's alpha (units last: (B, N), (B, T, D), ...),
        reduced over units as ``kl_reduction`` says, then averaged over the rest."""
        per_unit = -torch.log(alpha / (self.alpha_max + self.ALPHA_MIN))
        per_row = per_unit.mean(dim=-1) if self.kl_reduction == "mean" else per_unit.sum(dim=-1)
        return per_row.mean()

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            self.kl = None
            if self.eval_output == "identity":
                return x
        dim = input_unit_dim(x, self.unit_dim)
        alpha = self._alpha(x, dim)
        if not self.training:
            return x * spread_mask(torch.exp(alpha.square() / 2), x, dim)
        self.kl = self.kl_divergence(alpha)
        with torch.no_grad():
            noise = torch.randn(alpha.shape, device=x.device, dtype=alpha.dtype)
        eps = torch.exp(alpha * noise)
        return x * spread_mask(eps, x, dim)

    def extra_repr(self) -> str:
        return (
            f"alpha_max={self.alpha_max}, units={self.num_units or 'lazy'}, "
            f"kl_reduction={self.kl_reduction!r}, eval_output={self.eval_output!r}{unit_dim_repr(self.unit_dim)}"
        )


def _build_before_load(module: InformationDropout, state_dict: dict, prefix: str, *args: Any) -> None:
    """``load_state_dict`` pre-hook: a layer built lazily must still accept a
    trained one's ``alpha_layer``."""
    weight = state_dict.get(prefix + "alpha_layer.weight")
    if isinstance(weight, Tensor) and module.alpha_layer is None and weight.dim() == 2:
        module._build(weight.shape[1], dtype=weight.dtype)


def information_kl(model: nn.Module) -> Tensor:
    """Sum of ``kl`` over every :class:`InformationDropout` layer of ``model``.

    Add ``beta * information_kl(model)`` to the loss after the training forward.
    Layers that have no KL yet (no training forward, or eval mode) contribute
    nothing; a model without such layers gives a zero tensor, so a training loop
    may add the term whatever the dropout method.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    terms = [m.kl for m in model.modules() if isinstance(m, InformationDropout) and m.kl is not None]
    if not terms:
        return torch.zeros(())
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total
