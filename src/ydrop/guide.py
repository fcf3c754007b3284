"""The Guide: one scoring pass per training step for every guided layer.

DESIGN section 1. ``Guide(model)`` finds the guided layers anywhere in a model;
``step(inputs, target)`` computes each score kind (from the registry) once for all
layers that need it and hands each its rows; ``set_epoch`` drives the warm-up. A kind
with ``whole_batch=False`` gives a layer that only ranks its units B_c = max(1, B //
n_c) random samples (Y-Drop Eq. 9), per-sample policies every sample.

Inside the training forward: where a kind says how (``along``, ``anchor``) and the
model's plan (``scores/plan.py``) has a chain above the anchor, nothing below it
training differently, ``step`` runs no pass: a hook on the anchor hands the
activation the next training forward computes anyway to ``along``, which scores the
layers through the chain (eval mode) before the first of them runs. Excitation and
gradxact anchor at the lowest layer's input; conductance at the affine stem's output
(on Eq. 2's path an affine map's outputs interpolate those at the two ends; at the
zero baseline one end is its bias), so a user's hook that changes the stem's output
is not seen. The hooks stay (``close()`` removes them), run eagerly (a graph break), and
adding one resets torch.compile's caches: a compiled model recompiles once, not each step.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ._forward import ScoringForward, check_forward_kwargs
from ._validation import check_bool, check_mapping, check_module, check_non_negative_int, check_score_rows, check_targets
from .distributed import unwrap_model
from .layers.base import GuidedDropout, guided_layers
from .scores import eval_mode, score_kind
from .scores.plan import lowest_anchor, stem_anchor

if TYPE_CHECKING:
    from ._tap import Tap

__all__ = ["Guide"]


class Guide:
    """Scores the guided layers of ``model`` before each training step (README, Usage).

    Args:
        model: any ``nn.Module`` mapping a batch (B, *) to logits (B, classes) and
            holding guided layers, also inside ``DistributedDataParallel`` or
            ``torch.compile`` (the Guide scores the module inside: no gradient
            synchronisation, no tracing).
        reuse_forward: score inside the training forward where the model allows it
            (module docstring); False always runs the separate pass (then a compiled
            model's forward has no graph break: README, torch.compile).
        to_logits: maps the model's output to the logits, for a model that returns a
            tuple or a dict (``lambda out: out["logits"]``); None: the output is them.
    """

    def __init__(self, model: nn.Module, reuse_forward: bool = True, to_logits: Callable | None = None) -> None:
        self.model = model = unwrap_model(check_module("model", model))
        self.layers = guided_layers(model)
        if not self.layers:
            kinds = ", ".join(sorted({type(m).__name__ for m in model.modules()} - {type(model).__name__}))
            raise ValueError(f"model ({type(model).__name__}) holds no guided dropout layer (ydrop.YDrop, ydrop."
                             f"ExcitationDropout, ydrop.ActivationDropout); its modules are: {kinds or 'none'}")
        self.reuse_forward = check_bool("reuse_forward", reuse_forward)
        self._forward = ScoringForward(model, to_logits)
        self.epoch: int | None = None
        self.scored_layers: list[str] = []  # the layers the last step scores (by a pass or in the forward)
        self._taps: dict[tuple[int, bool], Tap] = {}
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
        if check_mapping("state", state).get("epoch") is not None:
            self.set_epoch(state["epoch"])

    def close(self) -> None:
        """Remove the Guide's hooks from the model (a later ``step`` adds them back)."""
        for tap in self._taps.values():
            tap.handle.remove()
        self._taps.clear()

    def step(self, inputs: Tensor, target: Tensor, **forward_kwargs: Any) -> dict[str, Tensor]:
        """Score ``inputs`` (B, *), the batch the next training forward sees, for
        ``target`` (B,) (class range checked on the rows a pass reads), and hand
        every guided layer its scores. ``forward_kwargs``: the other arguments of that
        forward (``src_key_padding_mask=mask``), its tensors batch first (``_forward.py``).

        Returns ``{layer name: scores (samples, N)}`` of the layers scored by a pass
        at this step; those scored inside the training forward are not listed, but
        every layer that gets new scores for this step is in :attr:`scored_layers`.
        """
        self._warn_if_epoch_never_set()
        for tap in self._taps.values():  # armed at the last step but never fired: stale
            tap.callbacks.clear()
        self.scored_layers = []
        active = {name: layer for name, layer in self.layers.items() if layer.needs_guide}
        for name, layer in self.layers.items():
            if name not in active:
                layer.keep_scores()
        if not active:
            return {}
        if not isinstance(inputs, Tensor) or inputs.dim() < 1 or inputs.shape[0] < 1:
            raise ValueError(f"inputs must be a non-empty batch tensor (B, ...), got {inputs!r:.80}")
        target = check_targets("target", target, inputs.shape[0]).to(inputs.device)
        kwargs = check_forward_kwargs(self.model, forward_kwargs, inputs.shape[0])
        self.scored_layers = list(active)
        given: dict[str, Tensor] = {}
        for kind, names, per_sample, subset in self._groups(active, inputs):
            given.update(self._score_group(kind, names, per_sample, subset, inputs, target, kwargs))
        return given

    def _groups(self, active: dict[str, GuidedDropout], inputs: Tensor) -> list[tuple]:
        """(score kind, layer names, their ``per_sample``, samples) per pass: the layers
        grouped by (kind, steps); a group with a layer that only ranks its units takes
        B_c = max(1, B // steps) random samples (Eq. 9), all drawn before any group is
        scored (whose policies draw too: Y-Drop's bucket rates), else None: every sample."""
        groups: dict[tuple[str, int], list[tuple[str, bool]]] = defaultdict(list)
        for name, layer in active.items():
            request = layer.score_request()
            groups[(request.kind, request.steps)].append((name, request.per_sample))
        batch, drawn = inputs.shape[0], []
        for (kind, steps), members in groups.items():
            names, per_sample = [name for name, _ in members], [each for _, each in members]
            every = score_kind(kind).whole_batch or all(per_sample)
            drawn.append((kind, names, per_sample, None if every else
                          torch.randperm(batch, device=inputs.device)[: max(1, batch // steps)]))
        return drawn

    def _score_group(self, kind_name: str, names: list[str], per_sample: list[bool], subset: Tensor | None,
                     inputs: Tensor, target: Tensor, kwargs: dict[str, Any]):
        kind = score_kind(kind_name)
        layers = [self.layers[name] for name in names]
        rows = subset if subset is not None and not any(per_sample) else None
        hand_out = partial(self._hand_out, names, per_sample, subset if rows is None else None)
        if self._arm(kind, layers, inputs, target, rows, hand_out, self._scoring_model(kwargs, None, len(inputs))):
            return {}
        chosen, chosen_target = (inputs, target) if rows is None else (inputs[rows], target[rows])
        with eval_mode(self.model):
            scores = kind.fn(self._scoring_model(kwargs, rows, len(chosen)), chosen, chosen_target, layers)
        return hand_out([check_score_rows(kind_name, scores, layer, name, len(chosen))
                         for name, layer in zip(names, layers)])

    def _hand_out(self, names: list[str], per_sample: list[bool], subset: Tensor | None,
                  scores: list[Tensor]) -> dict[str, Tensor]:
        """Give each layer ``names[i]`` its ``scores[i]``; a ranking layer
        (``per_sample[i]`` false) scored on the whole batch takes the random ``subset``."""
        given = {name: layer_scores if subset is None or each else layer_scores.index_select(0, subset)
                 for name, each, layer_scores in zip(names, per_sample, scores)}
        for name, layer_scores in given.items():
            self.layers[name].set_scores(layer_scores)
        return given

    def _scoring_model(self, kwargs: dict[str, Any], rows: Tensor | None, count: int) -> nn.Module:
        """The model as the scores call it: itself, or with ``kwargs`` (their ``rows``) and to_logits."""
        return self._forward.bind(kwargs, rows, count) if kwargs or self._forward.to_logits else self.model

    def _arm(self, kind, layers: list[GuidedDropout], inputs: Tensor, target: Tensor, rows: Tensor | None,
             hand_out: Callable[[list[Tensor]], Any], model: nn.Module) -> bool:
        """Arm the hook that scores ``layers`` inside the next training forward
        (module docstring); False when the kind or the model does not allow it."""
        if not self.reuse_forward or kind.along is None:
            return False
        at_stem = kind.anchor == "stem"
        found = (stem_anchor if at_stem else lowest_anchor)(model, layers, inputs)
        if found is None or not found.same_in_training:
            return False
        anchor, chain = found.module, found.chain
        batch = inputs.shape[0]
        scored_target = target if rows is None else target.index_select(0, rows)

        def score(value: Tensor) -> None:
            if value.shape[0] != batch:
                raise ValueError(f"guide.step was given a batch of {batch} samples but the next training forward has "
                                 f"{value.shape[0]} rows; call guide.step(inputs, target) with its batch, batch first")
            value = value.detach() if rows is None else value.detach().index_select(0, rows)
            hand_out(kind.along(chain, value, scored_target, layers, anchor))

        key = (id(anchor), not at_stem)
        if key not in self._taps:
            from ._tap import Tap  # here, not at `import ydrop`: it loads torch's compiler (seconds)

            self._taps[key] = Tap(anchor, read_input=not at_stem, owner=self)
        self._taps[key].callbacks.append(score)  # groups sharing an anchor (e.g. two n_c) each get one
        for layer in layers:  # their random draws now, as a pass's set_scores takes them: not in the forward
            layer.expect_scores()
        return True

    def _warn_if_epoch_never_set(self) -> None:
        warming = [name for name, layer in self.layers.items() if layer.warmup_epochs]
        if self.epoch is None and not self._warned_no_epoch and warming:
            warnings.warn(f"Guide.set_epoch(epoch) was never called, so layers with warm-up ({', '.join(warming)}) "
                          "stay plain dropout; call guide.set_epoch(epoch) at the start of every epoch",
                          RuntimeWarning, stacklevel=3)
        self._warned_no_epoch = True
