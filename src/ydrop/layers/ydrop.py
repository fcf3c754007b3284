"""Y-Drop: conductance-guided dropout.

Georgiou, Paraskevopoulos, Potamianos, *Y-Drop: A Conductance based Dropout for
fully connected layers* (see ``shared/papers/y-drop.txt`` and DESIGN section 2).

Per training step, with mean scores (Eq. 4) of this layer's N units:
the ceil(w_S N) highest are the strong bucket (Eq. 5), each bucket gets a drop rate
drawn from a capped right half-normal (Eq. 8), every unit's drop rate is tracked by
an EMA (Eq. 6) and units are kept with Bernoulli(1 - g_B(k)), output
x * mask / (1 - p_k). Shapes: input (B, N) or (B, C, H, W) (units = channels),
output the same shape. Identity in eval mode.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._validation import check_non_negative, check_open_unit, check_positive_int, check_rate
from ..distributed import all_reduce_mean, broadcast_from_main
from . import functional as F_
from .base import GuidedDropout, ScoreRequest, broadcast_units

__all__ = ["YDrop"]


class YDrop(GuidedDropout):
    """Drop the most important units more often (Y-Drop).

    Args (defaults are the paper's Table 1 and section 4.2):
        steps: n_c, conductance interpolation steps (5). The Guide scores
            B_c = max(1, B // steps) random samples of each batch (Eq. 9).
        strong_fraction: w_S, share of units in the strong bucket (0.5).
        mu_low, mu_high: mu_L, mu_H, centres of the weak / strong bucket rates (0.1, 0.6).
        sigma_low, sigma_high: sigma_L, sigma_H of the half-normal draws (0.05).
        p_low_max, p_high_max: p_L^max, p_H^max caps of the draws (0.5, 0.9).
        p0: initial drop rate of every unit's EMA when Y-Drop starts (0.35).
        elasticity: alpha of the EMA (1e-3; the paper tunes it in {1e-5 .. 1e-1}).
        warmup_epochs: annealing factor K: plain dropout for the first K epochs (2).
        warmup_p: the plain-dropout rate of the warm-up (0.5, the tuned vanilla rate).
        score: the importance score consumed: "conductance" (the paper),
            "excitation" or "activation".
        num_units: allocate the EMA buffer now (otherwise on the first guided step).

    Buffers: ``drop_rate`` (N,), the EMA p_k, saved in ``state_dict``.
    Without scores after warm-up the layer falls back to plain dropout at
    ``warmup_p`` and warns once.
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
    ) -> None:
        super().__init__(score=score, warmup_epochs=warmup_epochs, warmup_p=warmup_p, fallback_p=warmup_p)
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

    def score_request(self) -> ScoreRequest:
        return ScoreRequest(kind=self.score, per_sample=False, steps=self.steps)

    def _bucket_parameters(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """(mu, sigma, p_max), each [weak, strong], as tensors on ``device``."""
        values = torch.tensor(
            [
                [self.mu_low, self.mu_high],
                [self.sigma_low, self.sigma_high],
                [self.p_low_max, self.p_high_max],
            ],
            device=device,
        )
        return values[0], values[1], values[2]

    def _ensure_state(self, units: int, device: torch.device) -> None:
        if self.drop_rate.numel() == 0:
            self.drop_rate = torch.full((units,), self.p0, device=device)
        elif self.drop_rate.numel() != units:
            raise ValueError(
                f"YDrop was built for {self.drop_rate.numel()} units but got an input with {units}; "
                "use one YDrop module per layer"
            )

    def unit_drop_rates(self, scores: Tensor) -> Tensor:
        """This step's g_B (N,) from scores (samples, N): mean (Eq. 4), buckets (Eq. 5),
        half-normal draws (Eq. 8)."""
        # Under DDP every rank must rank the same units and draw the same rates, so
        # that the EMA buffers stay identical: mean over ranks, rank 0's draws.
        strong = F_.strong_units(all_reduce_mean(scores.mean(dim=0)), self.strong_fraction)
        p_low, p_high = broadcast_from_main(F_.sample_bucket_rates(*self._bucket_parameters(scores.device)))
        return F_.bucket_drop_rates(strong, p_low, p_high)

    def _guided_forward(self, x: Tensor, scores: Tensor) -> Tensor:
        batch, units = x.shape[0], x.shape[1]
        self._ensure_state(units, x.device)
        with torch.no_grad():
            rates = self.unit_drop_rates(scores.float())
            F_.ema_update(self.drop_rate, rates, self.elasticity)
            keep = (1.0 - rates).expand(batch, units)
            mask = F_.bernoulli_mask(keep).div_(1.0 - self.drop_rate)
        return x * broadcast_units(mask.to(x.dtype), x)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The EMA is sized lazily on the first guided step; a fresh module must
        # still accept a trained one's buffer.
        saved = state_dict.get(prefix + "drop_rate")
        if saved is not None and self.drop_rate.numel() == 0:
            self.drop_rate = torch.empty_like(saved, device=self.drop_rate.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"score={self.score!r}, steps={self.steps}, strong_fraction={self.strong_fraction}, "
            f"mu=({self.mu_low}, {self.mu_high}), sigma=({self.sigma_low}, {self.sigma_high}), "
            f"p_max=({self.p_low_max}, {self.p_high_max}), p0={self.p0}, elasticity={self.elasticity}, "
            f"warmup_epochs={self.warmup_epochs}, warmup_p={self.warmup_p}, units={self.drop_rate.numel() or 'lazy'}"
        )
