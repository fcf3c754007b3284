"""The Guide: one scoring pass per training step for every guided layer.

DESIGN section 1. ``Guide(model)`` finds the guided dropout layers anywhere in a
model; ``guide.step(inputs, target)`` computes each score kind that some layer
needs *once, for all those layers together* (one batched forward and one backward
per kind), then hands every layer its rows; ``guide.set_epoch(epoch)`` drives the
warm-up. Layers scored by "activation" read their own input and need no pass.

Which samples are scored (Y-Drop Eq. 9 and Excitation Dropout sec. 3.2):

* conductance: a layer that only ranks units (Y-Drop) gets
  B_c = max(1, B // n_c) random samples of the batch, so the n_c B_c interpolation
  rows fit in the memory of one batch;
* a layer with per-sample masks (Excitation policy) gets a row for every sample of
  this exact batch; when such a layer shares a score kind with Y-Drop layers, the
  kind is computed once on the whole batch and the Y-Drop layers take their
  random B_c rows of it;
* excitation backprop costs one forward and one backward whatever the layer, so
  it always runs on the whole batch.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any

import torch
from torch import Tensor, nn

from ._validation import check_non_negative_int, check_targets
from .distributed import unwrap_model
from .layers.base import GuidedDropout
from .scores.conductance import _conductance
from .scores._hooks import eval_mode
from .scores.excitation import excitation_backprop

__all__ = ["Guide"]


class Guide:
    """Scores the guided layers of ``model`` before each training step.

    Args:
        model: any ``nn.Module`` holding at least one :class:`~ydrop.layers.GuidedDropout`.
            It must map a batch (B, *) to logits (B, classes).

    Example::

        guide = ydrop.Guide(model)
        for epoch in range(epochs):
            guide.set_epoch(epoch)
            for x, y in loader:
                guide.step(x, y)
                loss = F.cross_entropy(model(x), y)
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        # Score the network inside a DDP wrapper: the scoring pass must not trigger
        # DDP's gradient synchronisation.
        model = unwrap_model(model)
        self.model = model
        self.layers: dict[str, GuidedDropout] = {
            name: module for name, module in model.named_modules() if isinstance(module, GuidedDropout)
        }
        if not self.layers:
            kinds = sorted({type(m).__name__ for m in model.modules()} - {type(model).__name__})
            raise ValueError(
                f"model ({type(model).__name__}) holds no guided dropout layer (ydrop.YDrop, "
                f"ydrop.ExcitationDropout, ydrop.ActivationDropout); its modules are: {', '.join(kinds) or 'none'}"
            )
        self.epoch: int | None = None
        self._warned_no_epoch = False

    def __repr__(self) -> str:
        names = ", ".join(f"{name}: {type(layer).__name__}" for name, layer in self.layers.items())
        return f"Guide(epoch={self.epoch}, layers={{{names}}})"

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` (0-based): layers with ``warmup_epochs > epoch`` stay plain dropout."""
        self.epoch = check_non_negative_int("epoch", epoch)
        for layer in self.layers.values():
            layer.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("epoch") is not None:
            self.set_epoch(state["epoch"])

    def step(self, inputs: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Score this batch and hand every guided layer its scores.

        Args:
            inputs: the batch (B, *) that the next training forward will see.
            target: ground-truth classes, LongTensor (B,).

        Returns:
            ``{layer name: scores (samples, N)}`` for the layers scored at this step
            (empty while every layer is in warm-up or reads its own activations).
        """
        self._warn_if_epoch_never_set()
        active = {name: layer for name, layer in self.layers.items() if layer.needs_guide}
        if not active:
            return {}
        if not isinstance(inputs, Tensor) or inputs.dim() < 1 or inputs.shape[0] < 1:
            raise ValueError(f"inputs must be a non-empty batch tensor (B, ...), got {inputs!r:.80}")
        batch = inputs.shape[0]
        target = check_targets("target", target, batch).to(inputs.device)

        groups: dict[tuple[str, int], list[str]] = defaultdict(list)
        for name, layer in active.items():
            request = layer.score_request()
            steps = request.steps if request.kind == "conductance" else 1
            groups[(request.kind, steps)].append(name)

        given: dict[str, Tensor] = {}
        for (kind, steps), names in groups.items():
            per_sample = any(active[name].score_request().per_sample for name in names)
            subset_size = max(1, batch // steps)
            order = torch.randperm(batch, device=inputs.device)
            rows = order if per_sample or kind == "excitation" else order[:subset_size]
            scores = self._score(kind, steps, inputs[rows], target[rows], [active[n] for n in names])
            for name, layer_scores in zip(names, scores):
                if not active[name].score_request().per_sample and kind == "conductance":
                    layer_scores = layer_scores[:subset_size]
                elif active[name].score_request().per_sample:
                    # Back to the batch order the training forward will use.
                    layer_scores = layer_scores[torch.argsort(order)]
                active[name].set_scores(layer_scores)
                given[name] = layer_scores
        return given

    def _score(self, kind: str, steps: int, inputs: Tensor, target: Tensor, layers: list[GuidedDropout]) -> list[Tensor]:
        if kind == "conductance":
            with eval_mode(self.model):
                return _conductance(self.model, inputs, torch.zeros_like(inputs), target, layers, steps)
        by_layer = excitation_backprop(self.model, inputs, target, layers)
        return [by_layer[layer] for layer in layers]

    def _warn_if_epoch_never_set(self) -> None:
        if self.epoch is None and not self._warned_no_epoch:
            if any(layer.warmup_epochs > 0 for layer in self.layers.values()):
                warnings.warn(
                    "Guide.set_epoch(epoch) was never called, so layers with warm-up "
                    f"({', '.join(n for n, l in self.layers.items() if l.warmup_epochs)}) stay plain "
                    "dropout; call guide.set_epoch(epoch) at the start of every epoch",
                    RuntimeWarning,
                    stacklevel=3,
                )
            self._warned_no_epoch = True
