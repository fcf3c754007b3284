"""Robustness to removing units at inference (Y-Drop Fig. 3, Excitation Dropout Fig. 7).

Units of one layer are *removed* by multiplying the layer's output by a 0/1 mask
(no rescaling) in a forward hook that is always removed in ``finally``. Units lie
along the layer's ``unit_dim``, as everywhere in ydrop: the N features of a (B, N)
output, the D features of a (B, T, D) sequence (removed at every token) and the
channels of a (B, C, H, W) map (a removed channel is zero at every position). Every
curve records, per grid point, the accuracy and the mean softmax probability of the
ground-truth class, with the model in eval mode under ``no_grad``.

- :func:`random_removal`: a random fraction of units, R repeats (Fig. 3a / 7 right);
- :func:`ranked_removal`: most (or least) important first, by mean conductance on
  a given validation set or by given per-unit scores (Fig. 3b);
- :func:`peb_threshold_removal`: per sample, remove the most (least) relevant units
  whose cumulative p_EB reaches p_c (Fig. 7 left / centre).

Speed: a curve needs M masked networks (M = grid points, times R for random
removal). They run together: the hook turns the layer's (B, N) output into
(M * B, N), copy m multiplied by mask m, so the layers *before* the analysed one
run once per batch and only the rest of the network sees M * B rows (as many per
forward as keep the layer's masked output within :data:`ELEMENTS_PER_FORWARD`). A model whose later layers cannot carry the
extra rows (a residual branch joining after the layer) is run on M copies of the
input instead; the numbers are the same.

``data`` is any iterable of (x, y) batches on the model's device; it is iterated
once per curve (a one-shot iterator is first stored in a list).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._validation import as_real, check_choice, check_logits, check_positive_int, describe
from ..scores import excitation_backprop
from ..scores._hooks import LayerSpec, eval_mode
from ..scores._units import resolve_unit_dim
from .metrics import _check_batch, conductance_spread, one_layer, pairs

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
#: Elements of the analysed layer's masked output per forward (64 MB in float32):
#: bounds the memory of one forward; fewer, larger forwards are faster.
ELEMENTS_PER_FORWARD = 2**24


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


def _masked(output: Tensor, mask: Tensor, expand: bool, unit_dim: int | None = None) -> Tensor:
    """``output`` (B, ...) times ``mask`` on its units (along ``unit_dim``, module docstring).

    Without ``expand``: ``mask`` (N,) or (B, N). With ``expand``: ``mask`` (M, N) or
    (M, B, N) -> (M * B, ...), block m being the output times mask m.
    """
    if not isinstance(output, Tensor) or output.dim() < 2:
        raise TypeError(f"removing units needs a layer with a (B, N, ...) tensor output, got {type(output).__name__}")
    dim = resolve_unit_dim(output.dim(), unit_dim)
    m = mask.to(device=output.device, dtype=output.dtype)
    if m.shape[-1] != output.shape[dim]:
        raise ValueError(f"mask has {m.shape[-1]} units, the layer output {tuple(output.shape)} has "
                         f"{output.shape[dim]} along its unit dimension {dim}")
    # (1 or B, *1, N, *1): the units at ``dim``, one value for every position around them.
    shape = [1] * (dim - 1) + [m.shape[-1]] + [1] * (output.dim() - dim - 1)
    if not expand:
        return output * m.reshape(-1, *shape)
    m = m.reshape(m.shape[0], -1, *shape)  # (M, 1 or B, ...)
    return (output.unsqueeze(0) * m).reshape(-1, *output.shape[1:])


@contextmanager
def _masking(module: nn.Module, mask: Tensor, expand: bool) -> Iterator[None]:
    unit_dim = getattr(module, "unit_dim", None)  # a guided layer's or a baseline's own
    handle = module.register_forward_hook(lambda _module, _inputs, output: _masked(output, mask, expand, unit_dim))
    try:
        yield
    finally:
        handle.remove()


def remove_units(module: nn.Module, mask: Tensor):
    """Context manager: multiply ``module``'s output by ``mask`` while inside the block.

    ``mask``: (N,) shared by all samples or (B, N) one row per sample; 1 keeps a
    unit, 0 removes it (no rescaling). Units lie along the layer's ``unit_dim``
    (module docstring): a channel of a (B, C, *spatial) output, a feature of a
    (B, T, D) one at every token. The hook is removed in ``finally``, also when the forward
    raises.
    """
    return _masking(module, mask, expand=False)


def _masked_logits(model: nn.Module, module: nn.Module, x: Tensor, masks: Tensor) -> Tensor:
    """Logits (M, B, classes) of the M networks with ``module``'s units masked by
    ``masks`` (M, N) (shared by the samples) or (M, B, N) (one mask per sample)."""
    rows = masks.shape[0] * x.shape[0]
    try:
        with _masking(module, masks, expand=True):
            logits = model(x)
        if logits.dim() == 2 and logits.shape[0] == rows:
            return logits.view(masks.shape[0], x.shape[0], -1)
    except RuntimeError:
        pass  # a later layer met the B original rows again (residual join): run M copies instead
    per_sample = masks.unsqueeze(1).expand(-1, x.shape[0], -1) if masks.dim() == 2 else masks
    with _masking(module, per_sample.reshape(rows, -1), expand=False):
        logits = model(x.repeat(masks.shape[0], *([1] * (x.dim() - 1))))
    return logits.view(masks.shape[0], x.shape[0], -1)


def _batches(data: Iterable) -> Iterable:
    if isinstance(data, Iterator):
        return list(data)
    return data


def _unit_count(model: nn.Module, module: nn.Module, x: Tensor) -> int:
    """N, the units of ``module``'s output along its unit dimension."""
    shape = _output_shape(model, module, x)
    return shape[resolve_unit_dim(len(shape) + 1, getattr(module, "unit_dim", None)) - 1]


def _output_shape(model: nn.Module, module: nn.Module, x: Tensor) -> torch.Size:
    """Shape of one sample's output of ``module``: (N,), (T, D) or (C, *spatial)."""
    seen: list[torch.Size] = []
    handle = module.register_forward_hook(lambda _m, _i, out: seen.append(out.shape[1:]))
    try:
        with torch.no_grad(), eval_mode(model):
            model(x[:1])
    finally:
        handle.remove()
    if not seen:
        raise ValueError(f"layer {module.__class__.__name__} did not run in the model's forward")
    return seen[0]


def _scores(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample correctness and ground-truth probability (float64)."""
    check_logits(logits, y, y.shape[0])  # a model returning a dict, a target out of range: said here
    correct = (logits.argmax(1) == y).double()
    gt = F.softmax(logits.double(), dim=1).gather(1, y.view(-1, 1)).squeeze(1)
    return correct, gt


def evaluate(model: nn.Module, data: Iterable) -> tuple[float, float]:
    """(accuracy, mean ground-truth probability) of the plain model, eval mode, no grad."""
    correct = gt = 0.0
    count = 0
    with torch.no_grad(), eval_mode(model):
        for x, y in pairs(data):
            _check_batch(x, y)
            c, g = _scores(model(x), y)
            correct += float(c.sum())
            gt += float(g.sum())
            count += y.shape[0]
    if count == 0:
        raise ValueError("data must hold at least one sample, got no batches or only empty ones")
    return correct / count, gt / count


def _removal_scores(
    model: nn.Module, module: nn.Module, batches: Iterable, masks_for: Callable[[Tensor, Tensor], Tensor],
    desc: str, progress: bool,
) -> tuple[Tensor, Tensor]:
    """Accuracy and mean ground-truth probability (M,) of M masked networks.

    ``masks_for(x, y)`` gives a batch's keep masks, (M, N) or (M, B, N); it runs
    outside ``no_grad`` (p_EB needs a backward).
    """
    correct = gt = None
    count = 0
    total = len(batches) if hasattr(batches, "__len__") else None
    with eval_mode(model):
        for x, y in tqdm(pairs(batches), desc=desc, total=total, unit="batch", leave=False, disable=not progress):
            _check_batch(x, y)
            masks = masks_for(x, y).to(x.device)
            if correct is None:
                correct = torch.zeros(masks.shape[0], dtype=torch.float64)
                gt = torch.zeros_like(correct)
                row_size = math.prod(_output_shape(model, module, x))
            per_forward = max(1, ELEMENTS_PER_FORWARD // max(1, x.shape[0] * row_size))
            with torch.no_grad():
                for start in range(0, masks.shape[0], per_forward):
                    chunk = masks[start:start + per_forward]
                    c, p = _scores(_masked_logits(model, module, x, chunk).flatten(0, 1), y.repeat(chunk.shape[0]))
                    correct[start:start + chunk.shape[0]] += c.view(chunk.shape[0], -1).sum(1).cpu()
                    gt[start:start + chunk.shape[0]] += p.view(chunk.shape[0], -1).sum(1).cpu()
            count += y.shape[0]
    if correct is None or count == 0:
        raise ValueError("data must hold at least one sample, got no batches or only empty ones")
    return correct / count, gt / count


def _check_grid(name: str, grid: Sequence[float]) -> list[float]:
    values = list(grid)
    if not values:
        raise ValueError(f"{name} must hold at least one value in [0, 1], got {grid!r}")
    numbers = [as_real(value) for value in values]
    for value, number in zip(values, numbers):
        if number is None or not 0 <= number <= 1:
            raise ValueError(f"{name} must hold numbers in [0, 1], got {describe(value)} in {values!r}")
    return numbers


def _removed_counts(fractions: Sequence[float], units: int) -> Tensor:
    """round(f * N) units for each fraction f, (G,)."""
    return torch.tensor([min(units, int(round(f * units))) for f in fractions])


def _summarise(kind, grid, acc: Tensor, gt: Tensor, unpruned, repeats) -> RobustnessCurve:
    """acc, gt: (G, R) per grid point and repeat; the std is over the R repeats."""
    def std(t: Tensor) -> Tensor:
        return t.std(1, unbiased=True) if t.shape[1] > 1 else torch.zeros(t.shape[0], dtype=t.dtype)

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

    Repeat r draws one random order of the N units (on the CPU, from ``generator``:
    seed it for reproducible curves) and removes its first round(f * N) units for
    every f, so each repeat is one network pruned further and further, shared by
    every sample of the data; the std is between the R repeats.
    """
    fractions = _check_grid("fractions", fractions)
    repeats = check_positive_int("repeats", repeats)
    _, module = one_layer(model, layer)
    batches = _batches(data)
    unpruned = evaluate(model, batches)
    units = _unit_count(model, module, next(iter(batches))[0])
    ranks = torch.rand(repeats, units, generator=generator).argsort(1).argsort(1)  # (R, N) a random order each
    removed = _removed_counts(fractions, units)
    keep = (ranks.unsqueeze(0) >= removed.view(-1, 1, 1)).float().flatten(0, 1)  # (G * R, N), grid-major
    acc, gt = _removal_scores(model, module, batches, lambda x, y: keep, "random removal", progress)
    return _summarise("random", fractions, acc.view(-1, repeats), gt.view(-1, repeats), unpruned, repeats)


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
    name, module = one_layer(model, layer)
    if (scores is None) == (ranking_data is None):
        got = "neither" if scores is None else "both"
        raise ValueError("ranked_removal needs exactly one of ranking_data= (batches on which to measure each "
                         f"unit's mean conductance, e.g. the validation set) or scores= (N,) per-unit importance; "
                         f"got {got}")
    if scores is None:
        scores = conductance_spread(model, ranking_data, module, steps=steps).mean
    if not isinstance(scores, Tensor) or scores.dim() != 1:
        raise ValueError(f"scores must be a 1-D tensor of per-unit importance, got {getattr(scores, 'shape', scores)!r}")
    batches = _batches(data)
    unpruned = evaluate(model, batches)
    units = _unit_count(model, module, next(iter(batches))[0])
    if scores.numel() != units:
        raise ValueError(f"scores= has {scores.numel()} values but layer {name!r} has {units} units: give one "
                         "importance per unit")
    ranking = torch.sort(scores.detach().cpu().double(), descending=(order == "most"), stable=True).indices
    position = torch.empty(units, dtype=torch.long)
    position[ranking] = torch.arange(units)
    keep = (position.unsqueeze(0) >= _removed_counts(fractions, units).unsqueeze(1)).float()  # (G, N)
    acc, gt = _removal_scores(model, module, batches, lambda x, y: keep, f"{order} important first", progress)
    return _summarise(order, fractions, acc.unsqueeze(1), gt.unsqueeze(1), unpruned, 1)


def _threshold_keep(p_eb: Tensor, thresholds: Sequence[float], order: str) -> Tensor:
    """Keep-masks (G, B, N), one per threshold; see :func:`threshold_masks`."""
    sorted_p, index = torch.sort(p_eb, dim=1, descending=(order == "most"), stable=True)
    before = torch.cumsum(sorted_p, 1) - sorted_p  # p_EB of the units ranked ahead of each unit
    limits = torch.tensor(thresholds, dtype=p_eb.dtype, device=p_eb.device).view(-1, 1, 1)
    remove_sorted = (before.unsqueeze(0) < limits) & (limits > 0)
    remove = torch.zeros_like(remove_sorted).scatter(2, index.unsqueeze(0).expand_as(remove_sorted), remove_sorted)
    return (~remove).to(p_eb.dtype)


def threshold_masks(p_eb: Tensor, threshold: float, order: str = "most") -> Tensor:
    """Keep-masks (B, N) removing, per sample, the most (least) relevant units whose
    cumulative p_EB reaches ``threshold``.

    Units are sorted by p_EB (descending for ``"most"``); a unit is removed when the
    cumulative p_EB of the units before it is still below ``threshold``, so the
    smallest prefix whose sum reaches p_c goes. p_c = 0 removes nothing.
    """
    order = check_choice("order", order, ("most", "least"))
    (threshold,) = _check_grid("threshold", [threshold])
    if not isinstance(p_eb, Tensor) or p_eb.dim() != 2:
        raise ValueError(f"p_eb must be a (B, N) tensor, got {getattr(p_eb, 'shape', type(p_eb).__name__)}")
    return _threshold_keep(p_eb, [threshold], order)[0]


def peb_threshold_removal(
    model: nn.Module,
    data: Iterable,
    layer: LayerSpec,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    order: str = "most",
    progress: bool = True,
) -> RobustnessCurve:
    """Per-sample removal by cumulative p_EB threshold p_c (Excitation Dropout Fig. 7).

    p_EB of the layer's units is computed per batch for the ground-truth class
    (:func:`ydrop.excitation_backprop`); see :func:`threshold_masks` for the rule.
    """
    order = check_choice("order", order, ("most", "least"))
    thresholds = _check_grid("thresholds", thresholds)
    _, module = one_layer(model, layer)
    batches = _batches(data)
    unpruned = evaluate(model, batches)

    def masks_for(x: Tensor, y: Tensor) -> Tensor:
        return _threshold_keep(excitation_backprop(model, x, y, module)[module], thresholds, order)

    acc, gt = _removal_scores(model, module, batches, masks_for, f"p_EB {order} first", progress)
    return _summarise(f"peb_{order}", thresholds, acc.unsqueeze(1), gt.unsqueeze(1), unpruned, 1)
