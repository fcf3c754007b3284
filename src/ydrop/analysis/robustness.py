"""Robustness to removing units at inference (Y-Drop Fig. 3, Excitation Dropout Fig. 7).

Units of one layer are *removed* by a forward hook that multiplies the layer's
output by a 0/1 mask (no rescaling); the hook is always removed in ``finally``.
Units are the last dimension of a (B, N) output or the channels of a
(B, C, H, W) map (a removed channel is zero at every position). Every curve
records, per grid point, the accuracy and the mean softmax probability of the
ground-truth class, with the model in eval mode under ``no_grad``.

- :func:`random_removal`: a random fraction of units, R repeats (Fig. 3a / 7 right);
  the R repeats of a batch run as one batched forward.
- :func:`ranked_removal`: most (or least) important first, by mean conductance on
  a given validation set or by given per-unit scores (Fig. 3b).
- :func:`peb_threshold_removal`: per sample, remove the most (least) relevant units
  whose cumulative p_EB reaches p_c (Fig. 7 left / centre); per-sample masks, one
  batched forward per grid point and batch.

``data`` is any iterable of (x, y) batches on the model's device; it is iterated
once per grid point (a one-shot iterator is first stored in a list).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._validation import check_choice, check_positive_int
from ..scores import excitation_backprop
from ..scores._hooks import LayerSpec, eval_mode, resolve_layers
from .metrics import _check_batch, conductance_spread

__all__ = [
    "DEFAULT_FRACTIONS",
    "DEFAULT_THRESHOLDS",
    "RobustnessCurve",
    "remove_units",
    "evaluate",
    "random_removal",
    "ranked_removal",
    "peb_threshold_removal",
    "threshold_masks",
]

#: 0, 0.05, ..., 0.95, 0.99 (Y-Drop Fig. 3 ends at 99 %).
DEFAULT_FRACTIONS = tuple(round(0.05 * i, 2) for i in range(20)) + (0.99,)
#: p_c = 0, 0.05, ..., 0.95 (Excitation Dropout Fig. 7).
DEFAULT_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(20))


@dataclass
class RobustnessCurve:
    """One robustness curve.

    Attributes:
        kind: ``"random"``, ``"most"``, ``"least"``, ``"peb_most"`` or ``"peb_least"``.
        grid: removed fractions (or p_c thresholds for the p_EB curves).
        accuracy_mean, accuracy_std: accuracy per grid point; the std is over the
            random repeats (0 for the deterministic curves).
        gt_prob_mean, gt_prob_std: mean softmax probability of the ground-truth
            class per grid point, same std convention.
        unpruned_accuracy, unpruned_gt_prob: the plain model on the same data.
        repeats: R for random removal, 1 otherwise.
    """

    kind: str
    grid: list[float]
    accuracy_mean: list[float]
    accuracy_std: list[float]
    gt_prob_mean: list[float]
    gt_prob_std: list[float]
    unpruned_accuracy: float
    unpruned_gt_prob: float
    repeats: int = 1

    def as_dict(self) -> dict:
        return asdict(self)


@contextmanager
def remove_units(module: nn.Module, mask: Tensor) -> Iterator[None]:
    """Multiply ``module``'s output by ``mask`` while inside the block.

    ``mask``: (N,) shared by all samples or (B, N) one row per sample; 1 keeps a
    unit, 0 removes it. For a (B, C, *spatial) output the mask applies per channel.
    The hook is removed in ``finally``, also when the forward raises.
    """

    def hook(_module, _inputs, output):
        if not isinstance(output, Tensor) or output.dim() < 2:
            raise TypeError(f"remove_units needs a layer with a (B, N, ...) tensor output, got {type(output).__name__}")
        m = mask.to(device=output.device, dtype=output.dtype)
        if m.shape[-1] != output.shape[1]:
            raise ValueError(f"mask has {m.shape[-1]} units, the layer output has {output.shape[1]}")
        if m.dim() == 1:
            m = m.unsqueeze(0)
        return output * m.reshape(m.shape[0], m.shape[1], *([1] * (output.dim() - 2)))

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _batches(data: Iterable) -> Iterable:
    if isinstance(data, Iterator):
        return list(data)
    return data


def _units_of(model: nn.Module, module: nn.Module, x: Tensor) -> int:
    seen: list[int] = []
    handle = module.register_forward_hook(lambda _m, _i, out: seen.append(out.shape[1]))
    try:
        with torch.no_grad(), eval_mode(model):
            model(x[:1])
    finally:
        handle.remove()
    if not seen:
        raise ValueError(f"layer {module.__class__.__name__} did not run in the model's forward")
    return seen[0]


def _scores(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample correctness and ground-truth probability."""
    correct = (logits.argmax(1) == y).double()
    gt = F.softmax(logits.double(), dim=1).gather(1, y.view(-1, 1)).squeeze(1)
    return correct, gt


def evaluate(model: nn.Module, data: Iterable) -> tuple[float, float]:
    """(accuracy, mean ground-truth probability) of the plain model, eval mode, no grad."""
    correct = gt = 0.0
    count = 0
    with torch.no_grad(), eval_mode(model):
        for x, y in data:
            _check_batch(x, y)
            c, g = _scores(model(x), y)
            correct += float(c.sum())
            gt += float(g.sum())
            count += y.shape[0]
    if count == 0:
        raise ValueError("data must hold at least one sample, got no batches or only empty ones")
    return correct / count, gt / count


def _check_grid(name: str, grid: Sequence[float]) -> list[float]:
    values = list(grid)
    if not values:
        raise ValueError(f"{name} must hold at least one value in [0, 1], got {grid!r}")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(f"{name} must hold numbers in [0, 1], got {value!r} in {values!r}")
    return [float(v) for v in values]


def _removed_count(fraction: float, units: int) -> int:
    return min(units, int(round(fraction * units)))


def _summarise(kind, grid, acc: Tensor, gt: Tensor, unpruned, repeats) -> RobustnessCurve:
    """acc, gt: (G, R) per grid point and repeat."""
    std = (lambda t: t.std(1, unbiased=True)) if acc.shape[1] > 1 else (lambda t: torch.zeros(t.shape[0], dtype=t.dtype))
    return RobustnessCurve(
        kind, list(grid), acc.mean(1).tolist(), std(acc).tolist(), gt.mean(1).tolist(), std(gt).tolist(),
        unpruned[0], unpruned[1], repeats,
    )


def random_removal(
    model: nn.Module,
    data: Iterable,
    layer: LayerSpec,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    repeats: int = 25,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> RobustnessCurve:
    """Remove round(f * N) random units for each fraction f, ``repeats`` times.

    Each repeat draws one set of units shared by every sample of the data (one
    pruned network per repeat), so the std is between pruned networks. The
    random sets are drawn on the CPU from ``generator`` (seeded for reproducibility).
    """
    fractions = _check_grid("fractions", fractions)
    repeats = check_positive_int("repeats", repeats)
    _, module = resolve_layers(model, layer)[0]
    batches = _batches(data)
    unpruned = evaluate(model, batches)
    units = _units_of(model, module, next(iter(batches))[0])
    acc = torch.zeros(len(fractions), repeats, dtype=torch.float64)
    gt = torch.zeros_like(acc)
    with torch.no_grad(), eval_mode(model):
        for g, fraction in enumerate(tqdm(fractions, desc="random removal", disable=not progress)):
            k = _removed_count(fraction, units)
            ranks = torch.rand(repeats, units, generator=generator).argsort(1).argsort(1)
            keep = (ranks >= k).float()  # (R, N): each row removes k random units
            count = 0
            for x, y in batches:
                b = y.shape[0]
                masks = keep.repeat_interleave(b, dim=0)  # (R * B, N), repeat-major
                with remove_units(module, masks):
                    logits = model(x.repeat(repeats, *([1] * (x.dim() - 1))))
                c, p = _scores(logits, y.repeat(repeats))
                acc[g] += c.view(repeats, b).sum(1).cpu()
                gt[g] += p.view(repeats, b).sum(1).cpu()
                count += b
            acc[g] /= count
            gt[g] /= count
    return _summarise("random", fractions, acc, gt, unpruned, repeats)


def ranked_removal(
    model: nn.Module,
    data: Iterable,
    layer: LayerSpec,
    ranking_data: Iterable | None = None,
    scores: Tensor | None = None,
    order: str = "most",
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    steps: int = 5,
    progress: bool = True,
) -> RobustnessCurve:
    """Remove the round(f * N) most (``order="most"``) or least important units.

    Importance is the mean signed conductance per unit measured on ``ranking_data``
    (the validation set, Y-Drop sec. 6.3; ``steps`` interpolation steps) or the
    given per-unit ``scores`` (N,). Ties are broken by unit index (stable sort).
    """
    order = check_choice("order", order, ("most", "least"))
    fractions = _check_grid("fractions", fractions)
    _, module = resolve_layers(model, layer)[0]
    if (scores is None) == (ranking_data is None):
        raise ValueError("give exactly one of ranking_data (to measure mean conductance) or scores (N,)")
    if scores is None:
        scores = conductance_spread(model, ranking_data, module, steps=steps).mean
    if not isinstance(scores, Tensor) or scores.dim() != 1:
        raise ValueError(f"scores must be a 1-D tensor of per-unit importance, got {getattr(scores, 'shape', scores)!r}")
    batches = _batches(data)
    unpruned = evaluate(model, batches)
    units = _units_of(model, module, next(iter(batches))[0])
    if scores.numel() != units:
        raise ValueError(f"scores has {scores.numel()} units, layer has {units}")
    ranking = torch.sort(scores.detach().cpu().double(), descending=(order == "most"), stable=True).indices
    position = torch.empty(units, dtype=torch.long)
    position[ranking] = torch.arange(units)
    acc = torch.zeros(len(fractions), 1, dtype=torch.float64)
    gt = torch.zeros_like(acc)
    with torch.no_grad(), eval_mode(model):
        for g, fraction in enumerate(tqdm(fractions, desc=f"{order} important first", disable=not progress)):
            keep = (position >= _removed_count(fraction, units)).float()
            count = 0
            with remove_units(module, keep):
                for x, y in batches:
                    c, p = _scores(model(x), y)
                    acc[g, 0] += float(c.sum())
                    gt[g, 0] += float(p.sum())
                    count += y.shape[0]
            acc[g] /= count
            gt[g] /= count
    return _summarise(order, fractions, acc, gt, unpruned, 1)


def threshold_masks(p_eb: Tensor, threshold: float, order: str = "most") -> Tensor:
    """Keep-masks (B, N) removing, per sample, the most (least) relevant units whose
    cumulative p_EB reaches ``threshold``.

    Units are sorted by p_EB (descending for ``"most"``); a unit is removed when the
    cumulative p_EB of the units before it is still below ``threshold``, so the
    smallest prefix whose sum reaches p_c goes. p_c = 0 removes nothing.
    """
    sorted_p, index = torch.sort(p_eb, dim=1, descending=(order == "most"), stable=True)
    before = torch.cumsum(sorted_p, 1) - sorted_p
    remove_sorted = before < threshold if threshold > 0 else torch.zeros_like(before, dtype=torch.bool)
    remove = torch.zeros_like(remove_sorted).scatter(1, index, remove_sorted)
    return (~remove).to(p_eb.dtype)


def peb_threshold_removal(
    model: nn.Module,
    data: Iterable,
    layer: LayerSpec,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    order: str = "most",
    progress: bool = True,
) -> RobustnessCurve:
    """Per-sample removal by cumulative p_EB threshold p_c (Excitation Dropout Fig. 7).

    p_EB of the layer's units is computed once per batch for the ground-truth class
    (:func:`ydrop.excitation_backprop`); see :func:`threshold_masks` for the rule.
    """
    order = check_choice("order", order, ("most", "least"))
    thresholds = _check_grid("thresholds", thresholds)
    _, module = resolve_layers(model, layer)[0]
    batches = _batches(data)
    unpruned = evaluate(model, batches)
    p_ebs = [excitation_backprop(model, x, y, module)[module] for x, y in batches]
    acc = torch.zeros(len(thresholds), 1, dtype=torch.float64)
    gt = torch.zeros_like(acc)
    with torch.no_grad(), eval_mode(model):
        for g, threshold in enumerate(tqdm(thresholds, desc=f"p_EB {order} first", disable=not progress)):
            count = 0
            for (x, y), p_eb in zip(batches, p_ebs):
                with remove_units(module, threshold_masks(p_eb, threshold, order)):
                    c, p = _scores(model(x), y)
                acc[g, 0] += float(c.sum())
                gt[g, 0] += float(p.sum())
                count += y.shape[0]
            acc[g] /= count
            gt[g] /= count
    return _summarise(f"peb_{order}", thresholds, acc, gt, unpruned, 1)
