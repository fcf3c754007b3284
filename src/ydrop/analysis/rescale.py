"""How much bigger an active unit is at test than in training: the rescale's bias.

Excitation Dropout (Zunino et al., sec. 3, and the authors' code) scales the kept units
of a sample by N / (number kept). With ReLU layers a unit that is off has p_EB = 0, so
Eq. 3 always keeps it, and the count treats it as kept: the sample is scaled as if
fewer units were gone than were, and an active unit is on average *smaller* in
training than at test, where the layer is the identity. Inverted dropout (and
``rescale="inverse"``) has expectation 1 per unit.

:func:`train_test_scale` measures it on a trained model: each guided (or plain
dropout) layer runs its training forward on real batches (scores from a Guide, the
rest of the model in eval mode, on a copy, so nothing of the model changes), and for
every *active* element of its input (x != 0) the ratio output / input (0 where it
was dropped) is averaged. Its mean, ``train_scale``, is the factor by which an
active unit is scaled in training against test (1 at test): the layer above then
sees inputs 1 / ``train_scale`` times larger at test than it was trained on.
Shapes: the layers' inputs (B, *), any ``unit_dim``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._validation import check_positive_int
from ..guide import Guide
from ..layers import Dropout, GuidedDropout, guided_layers
from .metrics import pairs

__all__ = ["ScaleResult", "train_test_scale"]


@dataclass(frozen=True)
class ScaleResult:
    """One layer's training-time scaling of its active units (module docstring).

    active_share: share of the input's elements that are active (x != 0).
    kept_share: share of the active elements kept (not dropped).
    kept_scale: mean factor a kept active element is multiplied by.
    train_scale: mean factor an active element is multiplied by, dropped ones
        counting 0: ``kept_share * kept_scale``; 1 for an unbiased rescale.
    """

    active_share: float
    kept_share: float
    kept_scale: float
    train_scale: float


class _Tally:
    """Running sums over the active elements of one layer's forwards."""

    def __init__(self) -> None:
        self.elements = self.active = self.kept = 0
        self.scale_sum = 0.0

    def __call__(self, module: nn.Module, args: tuple, output: Tensor) -> None:
        if not module.training:  # the Guide's scoring pass (eval mode): not a training forward
            return
        x, output = args[0].detach(), output.detach()
        active = x != 0
        ratio = (output / x.where(active, torch.ones_like(x)))[active].double()
        self.elements += x.numel()
        self.active += int(active.sum())
        self.kept += int((ratio != 0).sum())
        self.scale_sum += float(ratio.sum())

    def result(self) -> ScaleResult:
        active = max(self.active, 1)
        return ScaleResult(active_share=self.active / max(self.elements, 1), kept_share=self.kept / active,
                           kept_scale=self.scale_sum / max(self.kept, 1), train_scale=self.scale_sum / active)


def train_test_scale(model: nn.Module, data: Iterable, repeats: int = 1) -> dict[str, ScaleResult]:
    """``{layer name: ScaleResult}`` for every guided layer and ydrop ``Dropout`` of
    ``model`` (see the module docstring), past their warm-up, over the (x, y) batches
    of ``data`` (targets: the ground truth, as in training), each run ``repeats``
    times (fresh masks). ``model`` itself is left as it was (a copy runs)."""
    repeats = check_positive_int("repeats", repeats)
    twin = copy.deepcopy(model).eval()
    layers = {name: m for name, m in twin.named_modules() if isinstance(m, (GuidedDropout, Dropout))}
    if not layers:
        raise ValueError(f"model ({type(model).__name__}) holds no guided dropout layer or ydrop Dropout to measure")
    tallies = {name: _Tally() for name in layers}
    handles = [m.register_forward_hook(tallies[name]) for name, m in layers.items()]
    try:
        for layer in layers.values():
            layer.train()
        _training_forwards(twin, _guide_past_warmup(twin), data, repeats)
    finally:
        for handle in handles:
            handle.remove()
    return {name: tally.result() for name, tally in tallies.items()}


def _guide_past_warmup(model: nn.Module) -> Guide | None:
    """A Guide for the guided layers of ``model`` (None without any), at an epoch past
    every layer's warm-up, so that the layers' own policies run."""
    if not guided_layers(model):
        return None
    guide = Guide(model, reuse_forward=False)
    guide.set_epoch(max(m.warmup_epochs for m in guide.layers.values()))
    return guide


def _training_forwards(model: nn.Module, guide: Guide | None, data: Iterable, repeats: int) -> None:
    for x, y in pairs(data):
        for _ in range(repeats):
            if guide is not None:
                guide.step(x, y)
            with torch.no_grad():
                model(x)
