"""The contract between a guided dropout layer and the :class:`~ydrop.Guide`.

A *guided* layer is a dropout *policy* that consumes an importance *score*
(DESIGN section 1), named by ``score=`` and looked up in the score registry
(``ydrop.register_score``, ``scores/registry.py``). A score comes from one of two
places:

* a network-wide scoring pass (``"conductance"`` of Y-Drop, Georgiou et al.;
  ``"excitation"`` of Excitation Dropout, Zunino et al.): the Guide runs it once
  per step for every layer and hands each layer its rows (samples, N) with
  :meth:`GuidedDropout.set_scores`;
* the layer's own input, for a kind registered with ``from_input`` (``"activation"``
  of Activation Dropout): computed inside ``forward``; it needs no Guide at all.

**Units and masks.** A layer's N units lie along one dimension of its input,
``unit_dim`` (``scores/_units.py``): by default the features of a (B, N) input, the
D features of a (B, T, D) sequence and the C channels of a (B, C, H, W) or
(B, C, D, H, W) conv map. Policies give one rate per (sample, unit) or per unit;
the mask, of shape ``x.shape[:d + 1] + (1,) * (x.dim() - d - 1)`` for unit dim d,
draws one value per (sample, unit) that is shared by every position *after* the
unit dim (whole channels of a conv map: mask (B, C, 1, 1)) and one value per
element over the dims *before* it (a (B, T, D) sequence: mask (B, T, D), each
element at its unit's rate, as ``nn.Dropout`` does inside a transformer).
The baselines (``layers/baselines.py``) take the same ``unit_dim`` and follow the
same rule.

In eval mode every guided layer is the identity, like ``nn.Dropout``. In training
the output is ``x * mask``; the mask reads state set from outside (the Guide's
scores, the epoch, counters), so under ``torch.compile`` it is drawn by an opaque
custom op (``_opaque.py``): the model compiles whole, and the compiled graph never
guards on that state, so it is not recompiled every step.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._validation import check_all_finite, check_non_negative_int, check_rate
from ..scores._units import resolve_unit_dim
from ..scores.registry import ScoreKind, score_kind
from .._opaque import mask_dtype, opaque_mask, register_owner
from .functional import bernoulli_mask

__all__ = [
    "ScoreRequest",
    "GuidedDropout",
    "check_unit_dim",
    "input_unit_dim",
    "unit_keep_shape",
    "rows_to_keep_shape",
    "spread_mask",
    "mean_after_units",
    "unit_dim_repr",
    "unit_count_error",
    "plain_dropout",
    "plain_mask",
    "checked_scores",
    "guided_layers",
]


@dataclass(frozen=True)
class ScoreRequest:
    """What a layer asks the Guide for at one step.

    ``kind``: a registered score name (``ydrop.register_score``) without
    ``from_input``. ``per_sample``: True when the policy needs a score row for
    every sample of this exact batch (Excitation Dropout's per-sample masks);
    False when a random subset of ``B_c = max(1, B // steps)`` samples suffices
    (Y-Drop's mean conductance, Eq. 9). ``steps``: the number of conductance
    interpolation steps n_c.
    """

    kind: str
    per_sample: bool
    steps: int = 5


def check_unit_dim(unit_dim: object) -> int | None:
    """``unit_dim`` as given: None (the default per input shape) or a non-zero int."""
    if unit_dim is None:
        return None
    if isinstance(unit_dim, bool) or not isinstance(unit_dim, int) or unit_dim == 0:
        raise ValueError(
            f"unit_dim must be None (features of (B, N) and (B, T, D), channels of conv maps) or a "
            f"non-zero integer naming the input's unit dimension (0 is the batch; -1 the last), got {unit_dim!r}"
        )
    return unit_dim


# ------------------------------------------------------------------ masks
def unit_keep_shape(x: Tensor, dim: int) -> torch.Size:
    """The shape masks are drawn in, ``x.shape[:dim + 1]``: units last, one draw per
    element before them (a sequence's tokens), none after (a channel's positions)."""
    return x.shape[: dim + 1]


def rows_to_keep_shape(rows: Tensor, x: Tensor, dim: int) -> Tensor:
    """(B or 1, N) per-unit values expanded (a view) to :func:`unit_keep_shape`."""
    if dim > 1:  # (B, N) -> (B, 1, .., 1, N): one value for every token of a sample
        rows = rows.reshape(rows.shape[:1] + (1,) * (dim - 1) + rows.shape[1:])
    return rows.expand(unit_keep_shape(x, dim))


def spread_mask(mask: Tensor, x: Tensor, dim: int) -> Tensor:
    """A mask of :func:`unit_keep_shape` with trailing 1s, so that it covers every
    position after the unit dim (a whole channel) with one value."""
    trailing = x.dim() - dim - 1
    return mask.reshape(mask.shape + (1,) * trailing) if trailing else mask


def mean_after_units(x: Tensor, dim: int) -> Tensor:
    """``x`` averaged over every position after the unit dim, shape
    :func:`unit_keep_shape` (the inverse of :func:`spread_mask`): a channel's mean
    over its positions for a conv map, ``x`` itself for (B, N) and (B, T, D)."""
    return x.flatten(dim + 1).mean(dim=dim + 1) if x.dim() > dim + 1 else x


def unit_dim_repr(unit_dim: int | None) -> str:
    """The ``extra_repr`` suffix of a layer's ``unit_dim``: nothing for the default."""
    return "" if unit_dim is None else f", unit_dim={unit_dim}"


def unit_count_error(layer: nn.Module, built: int, x: Tensor, dim: int, unit_dim: int | None) -> ValueError:
    """The error of a layer built for ``built`` units that gets an input with another
    number along its unit dimension ``dim``."""
    name = type(layer).__name__
    return ValueError(
        f"{name} was built for {built} units but its input has {x.shape[dim]} along its unit dimension {dim} "
        f"(input shape {tuple(x.shape)}, unit_dim={unit_dim!r}); pass unit_dim= to name the dimension that "
        "holds the units (the default is the features of (B, N) and (B, T, D), the channels of conv maps), "
        f"and use one {name} module per place"
    )


def input_unit_dim(x: Tensor, unit_dim: int | None = None) -> int:
    """The (non-negative) unit dimension of the input ``x``; a clear error for an
    input without a batch and a unit dimension."""
    if x.dim() < 2:
        raise ValueError(
            "input must have a batch and a unit dimension: (B, N), (B, T, D) or (B, C, H, W); "
            f"got a tensor of shape {tuple(x.shape)}"
        )
    return resolve_unit_dim(x.dim(), unit_dim)


def plain_mask(x: Tensor, p: float, dim: int) -> Tensor:
    """Standard dropout's mask for ``x`` with units along ``dim`` (the guided layers'
    mask rule, module docstring), kept entries 1 / (1 - p), in :func:`mask_dtype`."""
    with torch.no_grad():
        # The draws, 1 - p and 1 / (1 - p) in float32 at least: in bf16 0.9 is 0.898 and
        # the scale rounds too, a bias of a few tenths of a percent on every output.
        precise = mask_dtype(x.dtype)
        keep = torch.full((), 1.0 - p, dtype=precise, device=x.device).expand(unit_keep_shape(x, dim))
        return spread_mask(bernoulli_mask(keep).div_(1.0 - p), x, dim)


def plain_dropout(x: Tensor, p: float, unit_dim: int | None = None) -> Tensor:
    """Standard dropout with the guided layers' mask rule (module docstring),
    rescaled by 1 / (1 - p): per element for (B, N) and (B, T, D), whole channels
    for conv maps."""
    if p == 0.0:
        return x
    return (x * plain_mask(x, p, input_unit_dim(x, unit_dim))).to(x.dtype)


def checked_scores(scores: Tensor) -> Tensor:
    """``scores`` (samples, N) detached, after refusing another shape or a NaN / inf."""
    if not isinstance(scores, Tensor) or scores.dim() != 2:
        shape = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
        raise ValueError(f"scores must be a tensor of shape (samples, units), got {shape}")
    check_all_finite("scores", scores)
    return scores.detach()


def guided_layers(model: nn.Module) -> dict[str, GuidedDropout]:
    """The guided dropout layers of ``model`` (any depth), by qualified name; empty
    when it has none (then it needs no :class:`~ydrop.Guide`)."""
    return {name: module for name, module in model.named_modules() if isinstance(module, GuidedDropout)}


class GuidedDropout(nn.Module):
    """Base class: warm-up, score bookkeeping, units and the no-score fallback.

    Subclasses implement :meth:`score_request` and :meth:`_guided_mask`.

    Args:
        score: the registered importance score the policy consumes (built in:
            "conductance", "excitation", "activation", "gradxact"; more with
            ``ydrop.register_score``).
        warmup_epochs: epochs (the annealing factor K) during which the layer is
            plain dropout at ``warmup_p``; the Guide skips scoring then.
        warmup_p: the plain-dropout rate used during warm-up.
        fallback_p: the plain-dropout rate used, with a warning, when the layer is
            asked to run guided but was never given scores.
        unit_dim: the input dimension that holds the units (module docstring); None
            takes the default of the input's shape.
    """

    def __init__(self, score: str, warmup_epochs: int, warmup_p: float, fallback_p: float,
                 unit_dim: int | None = None) -> None:
        super().__init__()
        score_kind(score)  # an unknown name raises here, listing the registered ones
        self.score = score
        self.unit_dim = check_unit_dim(unit_dim)
        self.warmup_epochs = check_non_negative_int("warmup_epochs", warmup_epochs)
        self.warmup_p = check_rate("warmup_p", warmup_p)
        self.fallback_p = fallback_p
        self.epoch = 0
        self._scores: Tensor | None = None
        self._warned_no_scores = False
        register_owner(self)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        register_owner(self)  # a copy (deepcopy, pickle) is an owner of its own

    # ----------------------------------------------------------------- schedule
    def set_epoch(self, epoch: int) -> None:
        """Tell the layer which epoch (0-based) training is in; drives warm-up."""
        self.epoch = check_non_negative_int("epoch", epoch)

    @property
    def in_warmup(self) -> bool:
        return self.epoch < self.warmup_epochs

    @property
    def kind(self) -> ScoreKind:
        """The registry entry of ``score``, looked up on use so that a score
        registered again under the same name takes effect."""
        return score_kind(self.score)

    @property
    def needs_guide(self) -> bool:
        """True when the next training forward wants scores from a Guide pass."""
        return self.kind.from_input is None and not self.in_warmup

    def score_request(self) -> ScoreRequest:
        raise NotImplementedError

    # ------------------------------------------------------------------- scores
    def set_scores(self, scores: Tensor) -> None:
        """Receive this step's scores, shape (B', N): one row per scored sample."""
        self._scores = checked_scores(scores)

    def keep_scores(self) -> None:
        """Called by the Guide on a step where this layer asked for no new scores
        (warm-up, or a layer that reuses its scores for several steps)."""

    def expect_scores(self) -> None:
        """Called by the Guide on a step whose scores it hands over inside the next
        training forward (``set_scores`` from its hook there): a policy takes the
        step's random draws now, outside the forward (a checkpointed block recomputes
        it with the random state restored)."""

    def clear_scores(self) -> None:
        self._scores = None

    def _current_scores(self, x: Tensor) -> Tensor | None:
        """Scores for this forward: read off ``x`` for a kind with ``from_input``, else
        the Guide's last ones (set before this forward, by ``guide.step`` or by its
        hook in this very forward)."""
        from_input = self.kind.from_input
        if from_input is not None:
            return from_input(x.detach(), self.unit_dim)
        return self._scores

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        # The mask reads Python state that changes from outside between steps (epoch,
        # scores, counters): under torch.compile it is an opaque op (``_opaque.py``),
        # so the graph neither breaks here nor is recompiled when that state changes.
        return (x * opaque_mask(self, x)).to(x.dtype)

    def _mask_shape(self, x: Tensor) -> torch.Size:
        dim = input_unit_dim(x, self.unit_dim)
        return unit_keep_shape(x, dim) + (1,) * (x.dim() - dim - 1)

    def _draw_mask(self, x: Tensor) -> Tensor:
        """This training step's mask for ``x``, shape :meth:`_mask_shape`, dtype
        :func:`mask_dtype`: x times it is the layer's output."""
        dim = input_unit_dim(x, self.unit_dim)
        self._check_unit_count(x, dim)
        if self.in_warmup:
            return plain_mask(x, self.warmup_p, dim)
        scores = self._current_scores(x)
        if scores is None:
            self._warn_no_scores()
            return plain_mask(x, self.fallback_p, dim)
        self._check_scores_fit(scores, x, dim)
        with torch.no_grad():
            mask = self._guided_mask(x, scores.to(device=x.device, dtype=x.dtype), dim)
        return mask.to(mask_dtype(x.dtype))

    def _check_unit_count(self, x: Tensor, dim: int) -> None:
        """Refuse an input whose unit count differs from the one the layer's state
        was built for (also in warm-up, where the state is not used yet)."""

    def _check_scores_fit(self, scores: Tensor, x: Tensor, dim: int) -> None:
        if scores.dim() == 2 and scores.shape[1] == x.shape[dim]:
            return
        got = f"{scores.shape[1]} units" if scores.dim() == 2 else f"shape {tuple(scores.shape)}, not (samples, units)"
        raise ValueError(
            f"scores have {got} but the input of {self.__class__.__name__} has {x.shape[dim]} along its "
            f"unit dimension {dim} (input shape {tuple(x.shape)}, unit_dim={self.unit_dim!r}): the scores "
            "belong to another layer or another unit dimension; pass unit_dim= to name the dimension that "
            "holds the units, and use one layer per place"
        )

    def _warn_no_scores(self) -> None:
        if self._warned_no_scores:
            return
        warnings.warn(
            f"{self.__class__.__name__}(score={self.score!r}) ran in training mode without "
            f"scores, so it acts as plain dropout with p={self.fallback_p}. Create "
            "`guide = ydrop.Guide(model)` and call `guide.step(inputs, targets)` before "
            "each training forward.",
            RuntimeWarning,
            stacklevel=4,
        )
        self._warned_no_scores = True

    def _guided_mask(self, x: Tensor, scores: Tensor, dim: int) -> Tensor:
        """The policy's mask (:meth:`_mask_shape`) for input ``x`` with units along
        ``dim`` and scores (samples, N) on ``x``'s device and dtype."""
        raise NotImplementedError

    def _unit_dim_repr(self) -> str:
        return unit_dim_repr(self.unit_dim)
