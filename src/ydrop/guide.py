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

Excitation backprop without a second pass below the layers (Excitation Dropout,
Fig. 1): when the lowest Excitation layer sits in ``nn.Sequential`` containers whose
outermost one returns the model's output, the other Excitation layers are among the
modules above it, and nothing below it behaves differently in training (no dropout
of any kind, no batch norm), the Guide runs no pass at ``step``. The lowest layer's
next training forward sends its own input through the modules above it (eval mode)
and backpropagates the EB rule once, reading p_EB at itself and at every Excitation
layer above, which get their scores before their own forward. The part below is not
run again and the scores equal the separate pass's. Every ``ydrop.models`` network
takes this path except WRN (residual additions), M_1 and M_2 (batch norm). Other
models, or ``reuse_forward=False``, get the separate pass (one eval-mode forward and
one EB backward for all layers). Scoring an upper layer on the training forward's
activations instead (already dropped and rescaled by the lower layer) trains badly:
digits, FC 64-256-256-10 with two Excitation layers, 18 % and 29 % test accuracy on
two seeds against 91 % and 93 %.

Conductance without running the stem again: when the model's first module (the
stem) is a Linear or Conv reading the input or a view of it, the modules above it
form a chain holding every conductance layer, and no module outside that chain
behaves differently in training (no dropout or batch norm on the input), the Guide
runs no pass at ``step`` either.
It arms a hook on the stem: the next training forward computes the stem's output
for the whole batch anyway, and the stem is affine, so interpolating the scored
samples' rows of that output from the stem's bias (its output for the zero
baseline) gives the very points the separate pass sends through the stem. The pass
then runs, in eval mode, over the chain above the stem only, before the first
guided layer's forward; the scores equal the separate pass's up to float rounding
(``scores/_stem.py``). The FC_k networks of ``ydrop.models`` take this path; the
CNNs (a ``forward`` of their own between the convolutions and the classifier) take
the separate pass. Under autocast the stem's output is cast, so the hook runs the
separate pass on the inputs, as ``step`` would have.

Y-Drop layers with ``score_every = k`` ask for scores on one Guide step in k; on a
step where no layer asks, the pass is skipped.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from ._validation import check_non_negative_int, check_targets
from .distributed import unwrap_model
from .layers.base import GuidedDropout
from .layers.factory import DROPOUT_METHODS
from .scores.conductance import _conductance, _expand_baseline
from .scores._hooks import eval_mode
from .scores._chain import chain_above
from .scores._chain_backward import global_forward_hooks
from .scores._stem import affine_stem, stem_output_at_zero
from .scores.excitation import _excitation_backprop, chain_input_excitation

__all__ = ["Guide"]


class Guide:
    """Scores the guided layers of ``model`` before each training step.

    Args:
        model: any ``nn.Module`` holding at least one :class:`~ydrop.layers.GuidedDropout`.
            It must map a batch (B, *) to logits (B, classes).
        reuse_forward: score inside the training forward when the modules above a
            layer (Excitation Backprop) or above the model's affine stem
            (conductance) form a chain (see the module docstring); False always
            runs the separate pass.

    Example::

        guide = ydrop.Guide(model)
        for epoch in range(epochs):
            guide.set_epoch(epoch)
            for x, y in loader:
                guide.step(x, y)
                loss = F.cross_entropy(model(x), y)
    """

    def __init__(self, model: nn.Module, reuse_forward: bool = True) -> None:
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
        if not isinstance(reuse_forward, bool):
            raise TypeError(f"reuse_forward must be True or False, got {reuse_forward!r}")
        self.reuse_forward = reuse_forward
        # Per layer name: the modules above it as a chain, or None (separate pass).
        self._chains: dict[str, nn.Sequential | None] = {}
        # The affine stem and the chain above it (conductance from the training
        # forward), looked up at the first step that needs it; None: there is none.
        self._stem_looked_up = False
        self._stem_found: tuple[nn.Module, nn.Sequential, frozenset[int]] | None = None
        self._stem_hook: RemovableHandle | None = None
        self.epoch: int | None = None
        # Names of the layers the last step scores (by its pass or in the forward).
        self.scored_layers: list[str] = []
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
            ``{layer name: scores (samples, N)}`` for the layers scored by a pass at
            this step (empty while every layer is in warm-up, reuses its scores or
            reads its own activations). Layers scored during the training forward
            (the fast paths of the module docstring) are not listed; every layer
            that gets new scores for this step, either way, is in
            :attr:`scored_layers`.

        Nothing here reads a device tensor back to the host, so a GPU never waits.
        """
        self._warn_if_epoch_never_set()
        # Scores armed by the last step but never computed (no training forward
        # since) belong to that step's batch, not this one's.
        self._disarm_stem()
        self.scored_layers = []
        active = {name: layer for name, layer in self.layers.items() if layer.needs_guide}
        for name, layer in self.layers.items():
            if name not in active:
                layer.keep_scores()
        if not active:
            return {}
        if not isinstance(inputs, Tensor) or inputs.dim() < 1 or inputs.shape[0] < 1:
            raise ValueError(f"inputs must be a non-empty batch tensor (B, ...), got {inputs!r:.80}")
        batch = inputs.shape[0]
        # Shape and dtype only; the class range is checked on the device by the pass.
        target = check_targets("target", target, batch).to(inputs.device)
        self.scored_layers = list(active)

        groups: dict[tuple[str, int], list[str]] = defaultdict(list)
        for name, layer in active.items():
            request = layer.score_request()
            groups[(request.kind, request.steps if request.kind == "conductance" else 1)].append(name)
        if self._score_excitation_in_forward(groups.get(("excitation", 1), []), inputs, target):
            del groups[("excitation", 1)]

        given: dict[str, Tensor] = {}
        for (kind, steps), names in groups.items():
            per_sample = [active[name].score_request().per_sample for name in names]
            # Y-Drop ranks on B_c random samples (Eq. 9); per-sample policies and
            # excitation backprop take the whole batch in order.
            subset = None
            if kind == "conductance" and not all(per_sample):
                subset = torch.randperm(batch, device=inputs.device)[: max(1, batch // steps)]
            rows = subset if subset is not None and not any(per_sample) else None
            hand_out = partial(self._hand_out, names, per_sample, subset, rows, target)
            if kind == "conductance" and self._score_conductance_in_forward(names, steps, inputs, target, rows, hand_out):
                continue
            chosen = (inputs, target) if rows is None else (inputs[rows], target[rows])
            given.update(hand_out(*self._score(kind, steps, *chosen, [active[name] for name in names])))
        return given

    def _hand_out(
        self, names: list[str], per_sample: list[bool], subset: Tensor | None, rows: Tensor | None,
        target: Tensor, scores: list[Tensor], classes: int,
    ) -> dict[str, Tensor]:
        """Give each layer ``names[i]`` its ``scores[i]``, computed on the batch's
        ``rows`` (None: all of them): a layer that ranks on the random ``subset``
        (``per_sample[i]`` false) but was scored on every row takes the subset's rows."""
        if rows is not None:  # the pass checked its rows' targets; check the whole batch too
            check_targets("target", target, target.shape[0], num_classes=classes)
        given = {}
        for name, each, layer_scores in zip(names, per_sample, scores):
            if subset is not None and rows is None and not each:
                layer_scores = layer_scores[subset]
            self.layers[name].set_scores(layer_scores)
            given[name] = layer_scores
        return given

    def _score_conductance_in_forward(
        self, names: list[str], steps: int, inputs: Tensor, target: Tensor, rows: Tensor | None, hand_out,
    ) -> bool:
        """Arm the model's affine stem (``_stem``) to score the conductance of every
        layer in ``names`` from its own output, on the batch's ``rows`` (None: all),
        during the next training forward, then ``hand_out`` the scores. False
        when the model has no such stem or a layer is not above it."""
        found = self._stem(inputs)
        if found is None:
            return False
        stem, chain, inside = found
        layers = [self.layers[name] for name in names]
        if not all(id(layer) in inside for layer in layers):
            return False
        if stem._forward_hooks or stem._forward_pre_hooks or global_forward_hooks():
            return False  # a hook may change what the stem returns: no longer affine
        batch = inputs.shape[0]
        scored_target = target if rows is None else target[rows]

        def on_stem_output(module: nn.Module, _args, output: Tensor) -> None:
            if not module.training:  # an evaluation forward before the training one
                return
            self._disarm_stem()
            if output.shape[0] != batch:
                raise ValueError(
                    f"guide.step was given a batch of {batch} samples but the next training forward "
                    f"has {output.shape[0]}; call guide.step(inputs, target) with the forward's batch"
                )
            if output.dtype != stem.weight.dtype:
                # Autocast cast the stem: score the way guide.step would have, by
                # a separate pass on the inputs, in the forward's autocast state.
                scored_inputs = inputs if rows is None else inputs[rows]
                hand_out(*self._score("conductance", steps, scored_inputs, scored_target, layers))
                return
            points = output.detach() if rows is None else output.detach()[rows]
            with eval_mode(self.model):
                scores, classes = _conductance(
                    chain, points, stem_output_at_zero(stem, points).expand_as(points), scored_target, layers, steps
                )
            hand_out(scores, classes)

        self._stem_hook = stem.register_forward_hook(on_stem_output)
        return True

    def _stem(self, inputs: Tensor) -> tuple[nn.Module, nn.Sequential, frozenset[int]] | None:
        """The model's affine stem, the chain above it and the ids of the chain's
        modules, when conductance can be scored from the stem's output in the
        training forward (see the module docstring), else None. Found once."""
        if not self.reuse_forward:
            return None
        if not self._stem_looked_up:
            found = affine_stem(self.model, inputs[:1])
            if found is not None:
                stem, chain = found
                inside = frozenset(id(m) for m in chain.modules())
                outside = [m for m in self.model.modules() if id(m) not in inside and m is not stem]
                if any(_trains_differently(m) for m in outside):
                    found = None
                else:
                    found = (stem, chain, inside)
            self._stem_found, self._stem_looked_up = found, True
        return self._stem_found

    def _disarm_stem(self) -> None:
        if self._stem_hook is not None:
            self._stem_hook.remove()
            self._stem_hook = None

    def _score_excitation_in_forward(self, names: list[str], inputs: Tensor, target: Tensor) -> bool:
        """Arm the lowest Excitation layer ``names[k]`` whose modules above form a
        chain holding all the other layers (and with nothing below it that trains
        differently) to score every one of them from its own input, in one EB pass
        over the chain, during the next training forward. False when none can."""
        for name in names:
            chain = self._chain(name, inputs)
            if chain is None:
                continue
            inside = {id(m) for m in chain.modules()}
            others = [self.layers[other] for other in names if other != name]
            if all(id(layer) in inside for layer in others):
                self.layers[name].score_in_forward(partial(_score_chain, chain, others, target))
                return True
        return False

    def _chain(self, name: str, inputs: Tensor) -> nn.Sequential | None:
        """The modules above layer ``name`` as a chain when its Excitation Backprop can
        run inside the training forward (see the module docstring), else None."""
        if not self.reuse_forward:
            return None
        if name not in self._chains:
            layer = self.layers[name]
            chain = chain_above(self.model, layer, inputs[:1])
            if chain is not None:
                above = {id(m) for m in chain.modules()} | {id(layer)}
                if any(_trains_differently(m) for m in self.model.modules() if id(m) not in above):
                    chain = None
            self._chains[name] = chain
        return self._chains[name]

    def _score(
        self, kind: str, steps: int, inputs: Tensor, target: Tensor, layers: list[GuidedDropout]
    ) -> tuple[list[Tensor], int]:
        """One pass: the scores of ``layers`` and the model's number of classes."""
        with eval_mode(self.model):
            if kind == "conductance":
                return _conductance(self.model, inputs, _expand_baseline(None, inputs), target, layers, steps)
            return _excitation_backprop(self.model, inputs, target, layers)

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


def _score_chain(chain: nn.Sequential, others: list[GuidedDropout], target: Tensor, inputs: Tensor) -> Tensor:
    """Score function of the lowest Excitation layer: its own p_EB, returned, and the
    p_EB of the layers above it, handed to them before their own forward runs."""
    own, *above = chain_input_excitation(chain, inputs, target, others)
    for layer, scores in zip(others, above):
        layer.set_scores(scores)
    return own


# Modules whose training forward differs from their eval forward (and so from the
# activations the separate, eval-mode scoring pass sees): torch's dropout and batch
# norm, and every dropout method of the factory (so a new method is covered).
_TRAIN_MODE_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.dropout._DropoutNd, nn.modules.batchnorm._NormBase, GuidedDropout,
    *(method for method in DROPOUT_METHODS.values() if isinstance(method, type)),
)


def _trains_differently(module: nn.Module) -> bool:
    return isinstance(module, _TRAIN_MODE_TYPES)
