"""Y-Drop: conductance-guided dropout.

Georgiou, Paraskevopoulos, Potamianos, *Y-Drop: A Conductance based Dropout for
fully connected layers* (see ``shared/papers/y-drop.txt`` and DESIGN section 2).

Per training step, with mean scores (Eq. 4) of this layer's N units:
the ceil(w_S N) highest are the strong bucket (Eq. 5), each bucket gets a drop rate
drawn from a capped right half-normal (Eq. 8), every unit's drop rate is tracked by
an EMA (Eq. 6) and units are kept with Bernoulli(1 - g_B(k)), output
x * mask / (1 - p_k). Identity in eval mode.

Shapes (output = input shape; units along ``unit_dim``, see ``layers/base.py``):
(B, N) input: N units, mask (B, N); (B, C, H, W) conv map: C channel units, mask
(B, C, 1, 1) (whole channels); (B, T, D) sequence: D feature units, mask (B, T, D)
(each element at its unit's rate). Buffers ``drop_rate`` and ``mean_score`` are
(N,), so a sequence model may change its sequence length T from batch to batch.

``score_every = k`` (an addition, not in the paper; k = 1 is the paper) keeps the
mean scores, hence the ranking into buckets, for k guided steps: the Guide runs the
scoring pass on one step in k, while the bucket rates (Eq. 8), the EMA and the
masks are still drawn every step. Steps are counted by the Guide (``guide.step``).

**One step, one EMA move.** The bucket rates (Eq. 8) are drawn when a step
begins, outside the forward: when the layer is handed its scores (``set_scores``),
keeps them (``keep_scores``) or is told by the Guide that they come inside the next
training forward (``expect_scores``: the Guide's in-forward pass, or a ``from_input``
score read off the layer's own input). The step's first training forward moves the
EMA (Eq. 6) with them, and every forward until the next step masks with those rates
and that EMA. A forward run twice in one step, as activation checkpointing
(``torch.utils.checkpoint``) does, therefore moves the EMA once and, with the random
state the checkpoint restores, draws the same mask again. A layer with no step
begun (scores set during warm-up) begins one at its forward; a state just loaded
(``load_state_dict``) moves its EMA at the next forward, with the step's draws.

Driven by hand (no Guide), one call of ``set_scores`` (or ``keep_scores``, to reuse
the last mean) is one step: forwards in between share its rates and EMA move, so
call one of them before every training forward. A ``from_input`` score without a
Guide counts every training forward as a step (its EMA moves again in a
checkpoint's recomputation): under checkpointing, give it a Guide.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .._validation import check_non_negative, check_open_unit, check_positive_int, check_rate
from ..distributed import all_reduce_mean, broadcast_from_main
from . import functional as F_
from .base import GuidedDropout, ScoreRequest, checked_scores, spread_mask, unit_count_error, unit_keep_shape

__all__ = ["YDrop"]


@dataclass
class _Step:
    """One step's state (module docstring), a plain object so that the per-step
    updates skip ``nn.Module.__setattr__``. ``draw``: the bucket rates (p_L, p_H) of
    Eq. 8 (None: no step begun); ``ema_moved``: whether the EMA moved with them yet;
    ``awaiting``: the step's scores come inside the forward, its draws taken (True),
    came (False); None: no Guide steps this layer."""

    draw: Tensor | None = None
    ema_moved: bool = False
    awaiting: bool | None = None


class YDrop(GuidedDropout):
    """Drop the most important units more often (Y-Drop).

    Args (n_c, w_S, mu, sigma and p0 default to the paper's Table 1; the other
    defaults say where they come from):
        steps: n_c, conductance interpolation steps (5). The Guide scores
            B_c = max(1, B // steps) random samples of each batch (Eq. 9).
        strong_fraction: w_S, share of units in the strong bucket (0.5).
        mu_low, mu_high: mu_L, mu_H, centres of the weak / strong bucket rates (0.1, 0.6).
        sigma_low, sigma_high: sigma_L, sigma_H of the half-normal draws (0.05).
        p_low_max, p_high_max: p_L^max, p_H^max caps of the draws (Eq. 8; 0.5, 0.9:
            the paper gives no values; these are DESIGN section 2's).
        p0: initial drop rate of every unit's EMA when Y-Drop starts (0.35).
        elasticity: alpha of the EMA (1e-3; the paper tunes it in {1e-5 .. 1e-1}).
        warmup_epochs: annealing factor K: plain dropout for the first K epochs (2;
            the paper tunes K in [1, 10]).
        warmup_p: the plain-dropout rate of the warm-up (0.5, the tuned vanilla rate).
        score: the registered importance score consumed: "conductance" (the
            paper), "excitation", "activation", "gradxact" or a user's.
        num_units: allocate the EMA buffer now (otherwise on the first guided step).
        score_every: k, reuse the last mean scores (the ranking) for k guided steps,
            so the Guide scores one step in k (1, the paper: every step).
        unit_dim: the input dimension holding the units (None: the features of
            (B, N) and (B, T, D), the channels of conv maps).

    Buffers (all tensors, so ``state_dict`` suits safetensors and ``weights_only``
    loaders): ``drop_rate`` (N,), the EMA p_k; ``mean_score`` (N,), the mean scores
    of the last scored step (empty before it); ``reuses_left`` (), an int64 count
    of the Guide steps ``mean_score`` may still be reused for (-1: no scores yet).
    Without scores after warm-up the layer falls back to plain dropout at
    ``warmup_p`` and warns once.

    Precision: the EMA accumulates in float32 (or float64) whatever the model is
    cast to: after ``model.to(torch.bfloat16)`` (or fp16) ``drop_rate`` is float32
    again from the next guided step (and after ``load_state_dict``), while the
    output keeps the input's dtype.
    """

    drop_rate: Tensor

    def __init__(
        self,
        steps: int = 5,
        strong_fraction: float = 0.5,
        mu_low: float = 0.1,
        mu_high: float = 0.6,
        sigma_low: float = 0.05,
        sigma_high: float = 0.05,
        p_low_max: float = 0.5,
        p_high_max: float = 0.9,
        p0: float = 0.35,
        elasticity: float = 1e-3,
        warmup_epochs: int = 2,
        warmup_p: float = 0.5,
        score: str = "conductance",
        num_units: int | None = None,
        score_every: int = 1,
        unit_dim: int | None = None,
    ) -> None:
        super().__init__(score=score, warmup_epochs=warmup_epochs, warmup_p=warmup_p, fallback_p=warmup_p,
                         unit_dim=unit_dim)
        if isinstance(steps, float) and 0 < steps < 1:  # YDrop(0.5) in place of nn.Dropout(0.5)
            raise ValueError(f"steps must be an integer >= 1 (n_c, conductance's interpolation steps), got {steps}: "
                             "YDrop's first argument is not a drop rate as nn.Dropout's is; Y-Drop draws its rates "
                             "itself (mu_low, mu_high), and its warm-up rate is warmup_p=")
        self.steps = check_positive_int("steps", steps)
        self.strong_fraction = check_open_unit("strong_fraction", strong_fraction)
        self.p_low_max = check_rate("p_low_max", p_low_max)
        self.p_high_max = check_rate("p_high_max", p_high_max)
        self.mu_low = check_rate("mu_low", mu_low)
        self.mu_high = check_rate("mu_high", mu_high)
        for name, mu, cap_name, cap in (
            ("mu_low", self.mu_low, "p_low_max", self.p_low_max),
            ("mu_high", self.mu_high, "p_high_max", self.p_high_max),
        ):
            if mu > cap:
                raise ValueError(f"{name} must be <= {cap_name} = {cap}, got {name} = {mu}")
        self.sigma_low = check_non_negative("sigma_low", sigma_low)
        self.sigma_high = check_non_negative("sigma_high", sigma_high)
        self.p0 = check_rate("p0", p0)
        self.elasticity = check_rate("elasticity", elasticity, allow_one=True)
        if num_units is not None:
            check_positive_int("num_units", num_units)
        self.register_buffer("drop_rate", torch.full((num_units or 0,), self.p0))
        self.score_every = check_positive_int("score_every", score_every)
        self.register_buffer("mean_score", torch.zeros(0))
        # Guide steps for which ``mean_score`` may still be reused (None: no scores
        # yet). The live counter is a Python int, so deciding whether to score never
        # reads a device tensor; the buffer mirrors it (``fill_`` on every change, no
        # host sync) only so that it is saved, and is read back once after loading.
        self._reuses_left: int | None = None
        self.register_buffer("reuses_left", torch.tensor(-1, dtype=torch.int64))
        self._bucket_cache: tuple[tuple, tuple[Tensor, ...]] | None = None
        self._step = _Step()
        # (mean_score, strong_fraction, strong units): ranked once per new mean.
        self._strong_cache: tuple[Tensor, float, Tensor] | None = None
        self.register_load_state_dict_pre_hook(_before_load)
        self.register_load_state_dict_post_hook(_after_load)

    def __setstate__(self, state: dict) -> None:
        # A whole layer pickled (``torch.save(model)``) before the step state was one
        # object kept it in three attributes.
        if "_step" not in state:
            state["_step"] = _Step(state.pop("_step_draw", None), state.pop("_ema_moved", False),
                                   state.pop("_awaiting", None))
        super().__setstate__(state)

    # ------------------------------------------------------------ score_every
    @property
    def needs_guide(self) -> bool:
        """True on a step where the ranking must be refreshed by a Guide pass."""
        return super().needs_guide and (self._reuses_left is None or self._reuses_left == 0)

    def keep_scores(self) -> None:
        """A Guide step without new scores from it: one reuse of the kept mean spent,
        and this step's bucket draws taken (a ``from_input`` score ranks at the
        step's first forward)."""
        if self._reuses_left:
            self._set_reuses_left(self._reuses_left - 1)
        if self.kind.from_input is None:
            self._begin_step()
        else:
            self.expect_scores()

    def expect_scores(self) -> None:
        """A Guide step whose scores come inside the next training forward: this
        step's bucket draws (Eq. 8) are taken now, outside the forward, so that a
        checkpointed block's recomputation draws its masks from the same random state."""
        self._begin_step()
        self._step.awaiting = True

    def _set_reuses_left(self, value: int | None) -> None:
        self._reuses_left = value
        self.reuses_left.fill_(-1 if value is None else value)

    def set_scores(self, scores: Tensor) -> None:
        """Receive scores (samples, N); only their mean over samples (Eq. 4) is kept.
        A step begins, unless they are the ones it awaited (:meth:`expect_scores`)."""
        # Under DDP every rank must rank the same units: mean over ranks.
        self.mean_score = all_reduce_mean(checked_scores(scores).float().mean(dim=0))
        self._rank()
        # Scores given during warm-up are kept but count as stale: the first guided
        # step still asks the Guide for fresh ones.
        self._set_reuses_left(0 if self.in_warmup else self.score_every - 1)
        if self._step.awaiting:
            self._step.awaiting = False  # the scores this step awaited: its draws are taken
        else:
            self._begin_step()

    def clear_scores(self) -> None:
        super().clear_scores()
        self.mean_score = self.mean_score.new_zeros(0)
        self._strong_cache = None
        self._step.draw = None
        self._set_reuses_left(None)

    def _begin_step(self) -> None:
        """Take this step's bucket draws (p_L, p_H) of Eq. 8 (module docstring); the
        step's first forward moves the EMA with them (Eq. 6). None in warm-up."""
        self._step.draw = None if self.in_warmup else self._draw_bucket_rates()
        self._step.ema_moved = False

    def _current_scores(self, x: Tensor) -> Tensor | None:
        """The kept mean scores as one row (1, N). Refreshed by the Guide's
        :meth:`set_scores` (or a pending in-forward score function); scores read off
        ``x`` (a kind with ``from_input``) cost no pass and are refreshed at every step's
        first forward (every forward without a Guide: module docstring)."""
        if self.kind.from_input is not None and self._step.awaiting is not False:
            self.set_scores(super()._current_scores(x))
        return None if self._reuses_left is None else self.mean_score.unsqueeze(0)

    def score_request(self) -> ScoreRequest:
        return ScoreRequest(kind=self.score, per_sample=False, steps=self.steps)

    def _bucket_parameters(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """(mu, sigma, p_max), each [weak, strong], as tensors on ``device``."""
        values = (
            (self.mu_low, self.mu_high),
            (self.sigma_low, self.sigma_high),
            (self.p_low_max, self.p_high_max),
        )
        # Cached: a new host tensor every step would be a blocking host-to-device
        # copy on a GPU.
        if self._bucket_cache is None or self._bucket_cache[0] != values or self._bucket_cache[1][0].device != device:
            self._bucket_cache = (values, torch.tensor(values, device=device).unbind(0))
        return self._bucket_cache[1]

    def _check_unit_count(self, x: Tensor, dim: int) -> None:
        if self.drop_rate.numel() not in (0, x.shape[dim]):
            raise unit_count_error(self, self.drop_rate.numel(), x, dim, self.unit_dim)

    def _ensure_state(self, x: Tensor, dim: int) -> None:
        if self.drop_rate.numel() == 0:
            self.drop_rate = torch.full((x.shape[dim],), self.p0, device=x.device,
                                        dtype=_ema_dtype(self.drop_rate.dtype))  # float64 after model.double()
        elif self.drop_rate.dtype != _ema_dtype(self.drop_rate.dtype):
            # A model cast to bf16 / fp16 casts this buffer too, and the EMA's steps
            # alpha (g - p) are below those dtypes' resolution near p0: it would
            # freeze (bf16) or move in coarse jumps (fp16). It accumulates in float32.
            self.drop_rate = self.drop_rate.float()

    def _draw_bucket_rates(self) -> Tensor:
        """(p_L, p_H), one draw of the bucket rates (Eq. 8), on the buffers' device."""
        # Under DDP every rank must draw the same rates, so that the EMA buffers
        # stay identical: rank 0's draws (the mean is averaged in set_scores).
        return broadcast_from_main(F_.sample_bucket_rates(*self._bucket_parameters(self.drop_rate.device)))

    def _rank(self) -> None:
        """Rank the kept mean into buckets (Eq. 5) once per new mean: a layer with
        ``score_every = k`` reuses the ranking for k steps (it was 2 % of an FC_1
        step). Called when the mean is set (:meth:`set_scores`) and after
        ``load_state_dict``."""
        mean = self.mean_score
        strong = F_.strong_units(mean, self.strong_fraction) if mean.numel() else None
        self._strong_cache = None if strong is None else (mean, self.strong_fraction, strong)

    def _kept_strong_units(self) -> Tensor:
        """The strong bucket (N,) of the kept mean scores (see :meth:`_rank`); ranked
        again if ``strong_fraction`` or the ``mean_score`` buffer itself was replaced."""
        cached = self._strong_cache
        if cached is None or cached[0] is not self.mean_score or cached[1] != self.strong_fraction:
            self._rank()
        return self._strong_cache[2]

    def _guided_mask(self, x: Tensor, scores: Tensor, dim: int) -> Tensor:
        # ``scores`` is the kept mean as one row (``_current_scores``); g_B (N,) puts
        # this step's draws on its ranking.
        step = self._step
        if step.draw is None:
            self._begin_step()
        rates = F_.bucket_drop_rates(self._kept_strong_units().to(x.device), *step.draw.to(x.device))
        if not step.ema_moved:  # once a step, also when the forward runs again (checkpointing)
            self._ensure_state(x, dim)
            F_.ema_update(self.drop_rate, rates, self.elasticity)
            step.ema_moved = True
        # (N,) rates broadcast along the last (unit) dim of the keep shape.
        keep = (1.0 - rates).expand(unit_keep_shape(x, dim))
        return spread_mask(F_.bernoulli_mask(keep).div_(1.0 - self.drop_rate), x, dim)

    def extra_repr(self) -> str:
        return (
            f"score={self.score!r}, steps={self.steps}, strong_fraction={self.strong_fraction}, "
            f"mu=({self.mu_low}, {self.mu_high}), sigma=({self.sigma_low}, {self.sigma_high}), "
            f"p_max=({self.p_low_max}, {self.p_high_max}), p0={self.p0}, elasticity={self.elasticity}, "
            f"warmup_epochs={self.warmup_epochs}, warmup_p={self.warmup_p}, score_every={self.score_every}, "
            f"units={self.drop_rate.numel() or 'lazy'}{self._unit_dim_repr()}"
        )


def _ema_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the EMA ``drop_rate`` is kept in: ``dtype``, or float32 for a
    floating dtype coarser than it (bf16, fp16), whose resolution near p0 is too
    coarse for steps of size elasticity * (g - p)."""
    if dtype.is_floating_point and torch.finfo(dtype).eps > torch.finfo(torch.float32).eps:
        return torch.float32
    return dtype


def _fit_ema_to_saved(module: YDrop, saved: object) -> None:
    """Shape the ``drop_rate`` buffer to receive ``saved``.

    The EMA is sized lazily on the first guided step, so a lazy layer takes a
    trained one's size, and a state saved before the first guided step (empty)
    makes the layer lazy again, as a fresh one. Two sizes that are both set and
    differ are left for ``load_state_dict`` to report. The buffer keeps the model's
    dtype (as a layer built with ``num_units`` does), float32 at least, so that
    loading into a model cast to bf16 keeps the saved EMA exact."""
    if not isinstance(saved, Tensor):
        return
    current = module.drop_rate
    lazy = current.numel() == 0 or saved.numel() == 0
    shape = saved.shape if lazy else current.shape
    dtype = _ema_dtype(current.dtype)  # the model's, as for a layer built with num_units
    if (shape, dtype) != (current.shape, current.dtype):
        module.drop_rate = torch.empty(shape, dtype=dtype, device=current.device)


def _before_load(module: YDrop, state_dict: dict, prefix: str, *args) -> None:
    """``load_state_dict`` pre-hook: shape the lazy buffers like the saved ones and
    accept the states of earlier versions.

    ``state_dict`` is ``load_state_dict``'s own copy, so adding or removing keys here
    leaves the caller's dict alone."""
    _fit_ema_to_saved(module, state_dict.get(prefix + "drop_rate"))
    # The kept mean is empty until the first scoring, so it takes whatever size
    # was saved (an empty one too: no scores yet, as in a fresh layer).
    saved = state_dict.get(prefix + "mean_score")
    if isinstance(saved, Tensor) and saved.shape != module.mean_score.shape:
        module.mean_score = torch.empty_like(saved, device=module.mean_score.device)
    # Earlier versions kept the counter as a non-tensor extra state
    # ({"reuses_left": n or None}); a state saved before score_every existed has no
    # kept mean at all: then the layer scores at its next guided step.
    legacy = state_dict.pop(prefix + "_extra_state", None)
    if prefix + "reuses_left" not in state_dict:
        reuses = legacy.get("reuses_left") if isinstance(legacy, dict) else None
        has_mean = prefix + "mean_score" in state_dict and reuses is not None
        state_dict[prefix + "reuses_left"] = torch.tensor(reuses if has_mean else -1, dtype=torch.int64)
    if prefix + "mean_score" not in state_dict:
        state_dict[prefix + "mean_score"] = module.mean_score.new_zeros(0)
        module.mean_score = module.mean_score.new_zeros(0)


def _after_load(module: YDrop, incompatible_keys: object) -> None:
    """``load_state_dict`` post-hook: the live counter and the ranking from the
    loaded buffers (one host read of ``reuses_left`` per load, never per step)."""
    reuses = int(module.reuses_left)
    module._reuses_left = None if reuses < 0 else reuses
    module._rank()
    # The next forward moves the loaded EMA with this step's draws (if begun: drawing
    # them there would take random numbers inside a checkpointed block) on the loaded ranking.
    module._step.ema_moved = False
