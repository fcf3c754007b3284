"""Analysis metrics of a trained layer (Y-Drop Fig. 2, Excitation Dropout Table 5).

Each metric is a torchmetrics-style object (``update`` per batch, ``compute``,
``reset``) with a functional twin that runs it over an iterable of (x, y) batches:

- :class:`ConductanceSpread` / :func:`conductance_spread`: mean signed conductance
  per unit over the data, sorted, its total, the cumulative share curve and the
  share held by the top 20/40/60/80 % of units (Y-Drop sec. 6.2, Fig. 2).
  :func:`spread_from_scores` does the bookkeeping on given per-unit values.
- :class:`Utilisation` / :func:`utilisation`: neurons on, peak p_EB, entropy of the
  normalised activations, entropy of p_EB (Excitation Dropout sec. 4.3, Table 5).
  :func:`utilisation_from_scores` works on given (B, N) activations and p_EB.
- :class:`ConservativeUnits` / :func:`conservative_units`: units whose incoming
  weights barely moved between two state dicts (Ma et al. 2017, Table 5);
  :func:`feeding_layer` finds the module holding those weights.

"Units" of a layer are its output units along its ``unit_dim``, as in ``ydrop.scores``:
the N features of a (B, N) output, the D features of a (B, T, D) sequence (summed over
tokens) and the channels of a (B, C, H, W) map (summed over positions).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from .._validation import as_real, check_module, check_non_negative, check_positive_int, describe, name_hint, single_call_outputs
from ..scores import conductance, excitation_backprop
from ..scores._hooks import LayerSpec, capture_outputs, eval_mode, resolve_layers
from ..scores._units import normalise_rows, per_unit, resolve_unit_dim
from ..scores.plan import recorded_calls

__all__ = [
    "DEFAULT_TOP_FRACTIONS",
    "SpreadResult",
    "spread_from_scores",
    "ConductanceSpread",
    "conductance_spread",
    "UtilisationResult",
    "utilisation_from_scores",
    "Utilisation",
    "utilisation",
    "ConservativeResult",
    "conservative_units",
    "ConservativeUnits",
    "feeding_layer",
]

DEFAULT_TOP_FRACTIONS = (0.2, 0.4, 0.6, 0.8)


def one_layer(model: nn.Module, layer: LayerSpec) -> tuple[str, nn.Module]:
    """(name, module) of the analysed ``layer``, a submodule or its name; errors name ``layer``."""
    if not isinstance(layer, (nn.Module, str)):
        raise TypeError(f"layer must be an nn.Module or a submodule name, got {describe(layer, nn.Module)}")
    names = [name for name, _ in check_module("model", model).named_modules()]
    if isinstance(layer, str) and layer not in names:
        raise ValueError(f"layer = {layer!r} is not the name of a submodule of the model; {name_hint(layer, names)}")
    return resolve_layers(model, layer)[0]


def pairs(data: Iterable) -> Iterator[tuple[Tensor, Tensor]]:
    """The (x, y) batches of ``data``; a TypeError naming ``data`` for anything else
    (a bare tensor, a dict batch), where unpacking would say "too many values"."""
    if isinstance(data, Tensor) or not isinstance(data, Iterable):
        raise TypeError(f"data must be an iterable of (x, y) batches (a DataLoader, a list of pairs), "
                        f"got {describe(data, Tensor)}")
    for batch in data:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            kind = f"dict with keys {list(batch)}" if isinstance(batch, dict) else describe(batch, Tensor)
            raise TypeError(f"data must yield (x, y) batches (pairs of tensors), got a batch that is {kind}")
        yield batch[0], batch[1]


def _check_batch(x, y) -> None:
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError(
            f"each batch must be a pair (x, y) of tensors, got ({type(x).__name__}, {type(y).__name__})"
        )


def _check_fractions(name: str, fractions: Sequence[float]) -> tuple[float, ...]:
    values = tuple(fractions)
    numbers = tuple(as_real(value) for value in values)
    for value, number in zip(values, numbers):
        if number is None or not 0 < number <= 1:
            raise ValueError(f"{name} must hold numbers in (0, 1], got {describe(value)} in {values!r}")
    return numbers


# --------------------------------------------------------------------------- spread


@dataclass
class SpreadResult:
    """Conductance spread of one layer.

    Attributes:
        mean: (N,) mean signed conductance per unit, in unit order.
        sorted: (N,) the same values sorted descending (most important first).
        order: (N,) unit indices in that order.
        total: sum of the mean conductances (signed).
        cumulative_share: (N,) ``cumsum(sorted) / total``: entry k-1 is the share of
            the total held by the k most important units (Fig. 2b).
        top_shares: ``{fraction: share}``: share held by the top ceil(fraction * N) units.
        samples: number of samples averaged.
    """

    mean: Tensor
    sorted: Tensor
    order: Tensor
    total: float
    cumulative_share: Tensor
    top_shares: dict[float, float] = field(default_factory=dict)
    samples: int = 0


def _over(metric, model: nn.Module, data: Iterable):
    """A functional twin: ``metric.update`` on every (x, y) batch, then ``compute()``."""
    seen = 0
    for x, y in pairs(data):
        metric.update(model, x, y)
        seen += x.shape[0]
    if not seen:
        raise ValueError("data must hold at least one sample, got no batches or only empty ones")
    return metric.compute()


def _top_count(fraction: float, units: int) -> int:
    return max(1, min(units, math.ceil(fraction * units - 1e-9)))


def spread_from_scores(
    mean: Tensor, top_fractions: Sequence[float] = DEFAULT_TOP_FRACTIONS, samples: int = 0
) -> SpreadResult:
    """Spread bookkeeping on given per-unit mean conductances (N,).

    Negative conductances are kept signed, as the paper's cumulative sum: units are
    sorted by signed value (descending) and ``cumulative_share = cumsum / total``
    with ``total`` the signed sum, so the curve ends at exactly 1 and may overshoot 1
    before the negative tail pulls it back. A total of 0 gives NaN shares; a total
    that is small next to the units' absolute sum (positive and negative units
    cancelling, e.g. an untrained net) gives shares far above 1, with a warning.
    """
    if not isinstance(mean, Tensor) or mean.dim() != 1 or mean.numel() == 0:
        shape = tuple(mean.shape) if isinstance(mean, Tensor) else type(mean).__name__
        raise ValueError(f"mean must be a non-empty 1-D tensor of per-unit values, got {shape}")
    fractions = _check_fractions("top_fractions", top_fractions)
    mean = mean.detach().double().cpu()
    sorted_values, order = torch.sort(mean, descending=True, stable=True)
    total = float(sorted_values.sum())
    cumulative = torch.cumsum(sorted_values, 0)
    share = cumulative / total if total != 0 else torch.full_like(cumulative, math.nan)
    _warn_if_cancelling(total, float(mean.abs().sum()))
    tops = {f: float(share[_top_count(f, mean.numel()) - 1]) for f in fractions}
    return SpreadResult(mean, sorted_values, order, total, share, tops, samples)


def _warn_if_cancelling(total: float, absolute: float, below: float = 0.1) -> None:
    if absolute > 0 and abs(total) < below * absolute:
        warnings.warn(f"the units' signed total ({total:.3g}) is under {below:.0%} of their absolute sum "
                      f"({absolute:.3g}): positive and negative units cancel, so the top-unit shares of it "
                      "are far above 100 % or undefined (an untrained or barely trained net?)", RuntimeWarning, stacklevel=3)


class ConductanceSpread:
    """Mean conductance per unit of ``layer`` over the data (Y-Drop Fig. 2).

    ``update(model, x, y)`` scores a batch (target = ground-truth logit, zero
    baseline, ``steps`` interpolation steps; see :func:`ydrop.conductance`) and
    accumulates the per-unit sum; ``compute()`` returns a :class:`SpreadResult`.
    """

    def __init__(self, layer: LayerSpec, steps: int = 5, top_fractions: Sequence[float] = DEFAULT_TOP_FRACTIONS):
        self.layer = layer
        self.steps = check_positive_int("steps", steps)
        self.top_fractions = _check_fractions("top_fractions", top_fractions)
        self.reset()

    def reset(self) -> None:
        self._sum: Tensor | None = None
        self._count = 0

    def update(self, model: nn.Module, x: Tensor, y: Tensor) -> None:
        _check_batch(x, y)
        _, module = one_layer(model, self.layer)
        scores = conductance(model, x, y, module, steps=self.steps)[module].detach()
        self.update_scores(scores)

    def update_scores(self, scores: Tensor) -> None:
        """Accumulate precomputed per-sample conductances (B, N)."""
        if not isinstance(scores, Tensor) or scores.dim() != 2:
            raise ValueError(f"scores must be a (B, N) tensor, got {getattr(scores, 'shape', type(scores).__name__)}")
        batch_sum = scores.detach().double().sum(0).cpu()
        if self._sum is not None and self._sum.shape != batch_sum.shape:
            raise ValueError(f"scores have {batch_sum.numel()} units, earlier batches had {self._sum.numel()}")
        self._sum = batch_sum if self._sum is None else self._sum + batch_sum
        self._count += scores.shape[0]

    def compute(self) -> SpreadResult:
        if self._sum is None or self._count == 0:
            raise RuntimeError("ConductanceSpread.compute() called before any update with a non-empty batch")
        return spread_from_scores(self._sum / self._count, self.top_fractions, self._count)


def conductance_spread(
    model: nn.Module,
    data: Iterable,
    layer: LayerSpec,
    steps: int = 5,
    top_fractions: Sequence[float] = DEFAULT_TOP_FRACTIONS,
) -> SpreadResult:
    """Functional twin of :class:`ConductanceSpread` over an iterable of (x, y) batches."""
    return _over(ConductanceSpread(layer, steps=steps, top_fractions=top_fractions), model, data)


# ---------------------------------------------------------------------- utilisation


@dataclass
class UtilisationResult:
    """Excitation Dropout Table 5 metrics of one layer, means over samples.

    Attributes:
        neurons_on: mean number of units with a non-zero activation per sample
            (a conv channel is on when its summed activation is non-zero).
        peak_peb: mean over samples of max_k p_EB(k).
        entropy_activations: mean over samples of H(a / sum a), natural log (nats),
            0 log 0 = 0; negatives count as 0; an all-zero sample is uniform (log N).
        entropy_peb: mean over samples of H(p_EB), nats.
        samples: samples averaged; units: N.
    """

    neurons_on: float
    peak_peb: float
    entropy_activations: float
    entropy_peb: float
    samples: int
    units: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _entropy(p: Tensor) -> Tensor:
    """Row entropies in nats with 0 log 0 = 0."""
    return -torch.special.xlogy(p, p).sum(1)


def _utilisation_sums(activations: Tensor, p_eb: Tensor) -> Tensor:
    a = per_unit(activations.detach()).double()
    p = per_unit(p_eb.detach()).double()
    if a.shape != p.shape:
        raise ValueError(f"activations {tuple(a.shape)} and p_eb {tuple(p.shape)} must have the same (B, N) shape")
    p_act = normalise_rows(a.clamp(min=0))
    return torch.stack(
        [
            (a != 0).sum(1).double().sum(),
            p.max(1).values.sum(),
            _entropy(p_act).sum(),
            _entropy(p).sum(),
        ]
    ).cpu()


def utilisation_from_scores(activations: Tensor, p_eb: Tensor) -> UtilisationResult:
    """Table 5 metrics from a layer's activations (B, N) or (B, C, H, W) and p_EB (B, N)."""
    metric = Utilisation(layer=None)
    metric.update_scores(activations, p_eb)
    return metric.compute()


class Utilisation:
    """Neurons on, peak p_EB and the two entropies of ``layer`` (Excitation Table 5).

    ``update(model, x, y)`` runs one no-grad forward in eval mode to record the
    layer's output and one :func:`ydrop.excitation_backprop` pass for p_EB of the
    same units (target = ``y``); ``compute()`` averages over every sample seen.
    """

    def __init__(self, layer: LayerSpec | None):
        self.layer = layer
        self.reset()

    def reset(self) -> None:
        self._sums = torch.zeros(4, dtype=torch.float64)
        self._count = 0
        self._units: int | None = None

    def update(self, model: nn.Module, x: Tensor, y: Tensor) -> None:
        _check_batch(x, y)
        if self.layer is None:
            raise ValueError("layer must be given to update from a model; use update_scores for precomputed values")
        _, module = one_layer(model, self.layer)
        with torch.no_grad(), eval_mode(model), capture_outputs([module]) as captured:
            model(x)
        (output,) = single_call_outputs([module], captured, model, x.shape[0])
        p_eb = excitation_backprop(model, x, y, module)[module]
        self.update_scores(per_unit(output, getattr(module, "unit_dim", None)), p_eb)

    def update_scores(self, activations: Tensor, p_eb: Tensor) -> None:
        sums = _utilisation_sums(activations, p_eb)
        units = p_eb.shape[1]
        if self._units is not None and units != self._units:
            raise ValueError(f"p_eb has {units} units, earlier batches had {self._units}")
        self._units = units
        self._sums += sums
        self._count += p_eb.shape[0]

    def compute(self) -> UtilisationResult:
        if self._count == 0:
            raise RuntimeError("Utilisation.compute() called before any update with a non-empty batch")
        m = (self._sums / self._count).tolist()
        return UtilisationResult(m[0], m[1], m[2], m[3], self._count, int(self._units or 0))


def utilisation(model: nn.Module, data: Iterable, layer: LayerSpec) -> UtilisationResult:
    """Functional twin of :class:`Utilisation` over an iterable of (x, y) batches."""
    return _over(Utilisation(layer), model, data)


# ------------------------------------------------------------------- conservative


@dataclass
class ConservativeResult:
    """Conservative units of one layer.

    Attributes:
        count: number of conservative units.
        mask: (N,) bool, True for a conservative unit.
        change: (N,) change of each unit's incoming weights, Δ_k (see ``relative``).
        threshold: the Δ used.
        relative: True when Δ_k is relative to the initial norm.
    """

    count: int
    mask: Tensor
    change: Tensor
    threshold: float
    relative: bool = False


def _weight_key(state: Mapping[str, Tensor], layer: str | nn.Module, model: nn.Module | None) -> str:
    if isinstance(layer, nn.Module):
        if model is None:
            raise ValueError("layer given as a module needs model= to find its name; or pass its name")
        layer = resolve_layers(model, layer)[0][0]
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a submodule name or nn.Module, got {type(layer).__name__}")
    for key in (layer, f"{layer}.weight" if layer else "weight"):
        if key in state:
            return key
    weights = [k for k in state if k.endswith("weight")]
    raise ValueError(f"layer = {layer!r} names no weight in the state dict; weights are {weights[:8]}; "
                     "give the Linear or conv whose weight rows feed the units, not the dropout slot "
                     "(ydrop.analysis.feeding_layer(model, slot, inputs) names it)")


def conservative_units(
    initial: Mapping[str, Tensor],
    final: Mapping[str, Tensor],
    layer: str | nn.Module,
    threshold: float,
    model: nn.Module | None = None,
    relative: bool = False,
) -> ConservativeResult:
    """Units whose incoming weights moved less than ``threshold`` during training
    (conservative filters, Ma et al. 2017, Excitation Dropout sec. 4.3, Table 5).

    ``layer`` is the Linear or Conv module *feeding* the analysed units (its name,
    its ``"<name>.weight"`` key, or the module with ``model=``; see
    :func:`feeding_layer`). Unit k's change is the L2 norm of the change of its
    weight row (Linear: ``W[k, :]``; conv: filter ``W[k]``, all input channels and
    positions), the bias excluded: Δ_k = ||w_final_k - w_init_k||_2, the paper's
    definition, or with ``relative=True`` Δ_k / ||w_init_k||_2 (an all-zero initial
    row keeps the absolute change), which does not depend on the initial scale. Unit
    k is conservative when Δ_k < ``threshold``; the paper sets the threshold per
    dataset (0.15 to 1.25 in Table 5).
    """
    threshold = check_non_negative("threshold", threshold)
    if not isinstance(relative, bool):
        raise TypeError(f"relative must be True or False, got {relative!r}")
    key = _weight_key(initial, layer, model)
    if key not in final:
        raise ValueError(f"layer weight {key!r} is in the initial state dict but not in the final one")
    w0 = initial[key].detach().double().cpu()
    w1 = final[key].detach().double().cpu()
    if w0.shape != w1.shape or w0.dim() < 2:
        raise ValueError(f"weight {key!r} must be (N, ...) and equal in both states, got {tuple(w0.shape)} and {tuple(w1.shape)}")
    change = (w1 - w0).flatten(1).norm(dim=1)
    if relative:
        base = w0.flatten(1).norm(dim=1)
        change = torch.where(base > 0, change / base.clamp_min(1e-300), change)
    mask = change < threshold
    return ConservativeResult(int(mask.sum()), mask, change, threshold, relative)


def feeding_layer(model: nn.Module, layer: LayerSpec, inputs: Tensor) -> str:
    """Name of the module whose weight rows are the incoming weights of ``layer``'s units.

    The last module run before ``layer`` (or ``layer`` itself) that owns a weight of
    shape (N, ...) with N = the units of ``layer``: the Linear (or conv) that feeds
    a ReLU and a dropout slot. One forward of ``inputs[:1]`` in eval mode finds it.
    A module with weights of another kind met first (``nn.MultiheadAttention``, whose
    ``out_proj`` is not called as a module; an RNN) is named in an error, not passed.
    """
    _, target = one_layer(model, layer)
    calls = _calls_until(model, target, inputs[:1])
    if not calls:
        raise ValueError(f"layer {layer!r} did not run in the model's forward")
    output = calls[-1][1]
    units = output.shape[resolve_unit_dim(output.dim(), getattr(target, "unit_dim", None))]
    names = {id(module): name for name, module in model.named_modules()}
    for module, _ in reversed(calls):
        if _weight_rows(module) == units:
            return names[id(module)]
        if _weight_rows(module) is None and module is not target:
            raise ValueError(f"the last module with weights run before layer {layer!r} is {names[id(module)]!r} "
                             f"({type(module).__name__}), whose weights are not one row per unit ({units}, ...); "
                             "name the module whose weight rows feed the units yourself")
    raise ValueError(f"no module with a ({units}, ...) weight runs before layer {layer!r}: nothing feeds its units")


def _calls_until(model: nn.Module, target: nn.Module, probe: Tensor) -> list[tuple[nn.Module, Tensor]]:
    """(module, output) of every call of ``target`` and of the modules holding a parameter
    of two or more dimensions, in call order, up to and including ``target``'s first call
    (modules run after it do not feed it); empty when ``target`` did not run. One
    forward of ``probe`` in eval mode without gradients."""
    watched = [module for module in model.modules() if module is target or _owns_matrix(module)]
    with torch.no_grad(), eval_mode(model):
        calls = recorded_calls(model, watched, probe)[0]
    for index, (module, _, _) in enumerate(calls):
        if module is target:
            return [(called, output) for called, _, output in calls[:index + 1]]
    return []


def _owns_matrix(module: nn.Module) -> bool:
    """Whether ``module`` itself (not a child) holds a parameter of two or more dimensions."""
    return any(parameter.dim() >= 2 for parameter in module.parameters(recurse=False))


def _weight_rows(module: nn.Module) -> int | None:
    """N of the module's weight of shape (N, ...) (Linear, conv), or None when it has
    no weight of two or more dimensions."""
    weight = getattr(module, "weight", None)
    return weight.shape[0] if isinstance(weight, Tensor) and weight.dim() >= 2 else None


class ConservativeUnits:
    """Conservative-unit count accumulated over several trained models.

    ``update(initial, final)`` adds one (initial, final) state-dict pair;
    ``compute()`` returns ``{"mean": ..., "std": ..., "counts": [...], "masks": [...]}``
    (std with Bessel's correction, 0 for one model).
    """

    def __init__(self, layer: str | nn.Module, threshold: float, model: nn.Module | None = None,
                 relative: bool = False):
        self.layer, self.model, self.relative = layer, model, relative
        self.threshold = check_non_negative("threshold", threshold)
        self.reset()

    def reset(self) -> None:
        self._results: list[ConservativeResult] = []

    def update(self, initial: Mapping[str, Tensor], final: Mapping[str, Tensor]) -> None:
        self._results.append(conservative_units(initial, final, self.layer, self.threshold, self.model, self.relative))

    def compute(self) -> dict:
        if not self._results:
            raise RuntimeError("ConservativeUnits.compute() called before any update")
        counts = torch.tensor([float(r.count) for r in self._results], dtype=torch.float64)
        std = float(counts.std()) if counts.numel() > 1 else 0.0
        return {
            "mean": float(counts.mean()),
            "std": std,
            "counts": [r.count for r in self._results],
            "masks": [r.mask for r in self._results],
        }
