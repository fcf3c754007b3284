"""PyTorch Lightning: ``GuideCallback`` scores the guided layers of a LightningModule.

Add it to a ``Trainer`` and the Y-Drop / Excitation Dropout layers of the module are
scored before every training batch (``ydrop.Guide.step``) and warmed up by epoch
(``Guide.set_epoch`` at the start of each training epoch)::

    trainer = lightning.Trainer(max_epochs=60, callbacks=[GuideCallback()])
    trainer.fit(module, train_loader, val_loader)

The layers' own state (Y-Drop's EMA ``drop_rate``) is in the module's ``state_dict``,
hence in Lightning checkpoints already; the callback's state (the Guide's epoch and
its step counts) is saved with them and restored by ``trainer.fit(ckpt_path=...)``.
Under Lightning's DDP strategy the Y-Drop layers average their mean scores over the
ranks themselves (see :mod:`ydrop.distributed`).

The hooks only wire (the Lightning habit); scoring lives in :class:`ydrop.Guide`.
Lightning is an optional dependency: ``pip install 'ydrop[lightning]'``.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch
from torch import Tensor, nn

try:
    import lightning.pytorch as pl
except ImportError as exc:  # pragma: no cover - exercised by a test that hides lightning
    raise ImportError(
        "ydrop.integrations.lightning needs PyTorch Lightning (the 'lightning' package, >= 2.0); "
        "install it with: pip install 'ydrop[lightning]'"
    ) from exc

from ..guide import Guide

__all__ = ["GuideCallback", "default_batch_to_xy"]


def default_batch_to_xy(batch: Any) -> tuple[Tensor, Tensor]:
    """``(inputs, targets)`` of a batch given as a tuple or list whose first two items they are."""
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        if len(batch) > 2 and not _class_indices(batch[1]):
            kinds = ", ".join(_describe(item) for item in batch)
            raise ValueError(
                f"GuideCallback reads (inputs, targets) as the first two items of a tuple batch, but this batch has "
                f"{len(batch)} items ({kinds}) and its second is not class indices; pass batch_to_xy=, e.g. "
                "lambda batch: (batch[0], batch[2], {'src_key_padding_mask': batch[1]}) for (inputs, mask, targets)")
        return batch[0], batch[1]
    keys = f" with keys {list(batch)}" if isinstance(batch, dict) else ""
    raise ValueError(
        f"GuideCallback cannot read (inputs, targets) from a batch of type {type(batch).__name__}{keys}; "
        "pass batch_to_xy=lambda batch: (inputs, targets) to the callback, or (inputs, targets, "
        "{name: value}) for the forward's other arguments, e.g. (batch['x'], batch['y'], {'mask': batch['mask']})"
    )


def _class_indices(item: Any) -> bool:
    return isinstance(item, Tensor) and item.dim() == 1 and not item.is_floating_point() and item.dtype != torch.bool


def _describe(item: Any) -> str:
    if isinstance(item, Tensor):
        return f"{str(item.dtype).removeprefix('torch.')} {tuple(item.shape)}"
    return type(item).__name__


def _split_xy(got: Any) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """``batch_to_xy``'s result as ``(inputs, targets, forward_kwargs)``."""
    if isinstance(got, (tuple, list)) and len(got) == 2:
        return got[0], got[1], {}
    if isinstance(got, (tuple, list)) and len(got) == 3 and isinstance(got[2], dict):
        return got[0], got[1], got[2]
    kinds = ", ".join(type(item).__name__ for item in got) if isinstance(got, (tuple, list)) else ""
    raise TypeError(f"batch_to_xy must return (inputs, targets) or (inputs, targets, forward_kwargs), the "
                    f"last a dict of the forward's other arguments; got {type(got).__name__}"
                    f"{f' ({kinds})' if kinds else ''}")


class GuideCallback(pl.Callback):
    """Score the guided layers of the LightningModule before each training batch.

    Args:
        batch_to_xy: maps a training batch to ``(inputs, targets)``, or to ``(inputs,
            targets, forward_kwargs)`` when the forward takes more than the inputs (a
            padding mask: ``{"src_key_padding_mask": batch["mask"]}``, passed to
            ``Guide.step``); default: the batch's first two items.
        network: maps the LightningModule to the network the Guide scores, which must
            map inputs to logits; default: the module itself (its ``forward``).
        **guide_kwargs: passed to :class:`ydrop.Guide`.

    Attributes:
        guide: the :class:`ydrop.Guide` (built at ``setup``).
        batches: training batches seen; ``scored_batches``: those on which at least one
            layer received new scores (``Guide.scored_layers``).
    """

    def __init__(
        self,
        batch_to_xy: Callable[[Any], tuple[Tensor, Tensor]] = default_batch_to_xy,
        network: Callable[[nn.Module], nn.Module] | None = None,
        **guide_kwargs: Any,
    ) -> None:
        if not callable(batch_to_xy):
            raise TypeError(f"batch_to_xy must be a callable batch -> (inputs, targets), got {batch_to_xy!r}")
        if network is not None and not callable(network):
            raise TypeError(f"network must be None or a callable module -> nn.Module, got {network!r}")
        accepted = [name for name in inspect.signature(Guide).parameters if name != "model"]
        unknown = [name for name in guide_kwargs if name not in accepted]
        if unknown:
            raise TypeError(f"GuideCallback got an unknown keyword argument {unknown[0]!r}; besides batch_to_xy and "
                            f"network it takes ydrop.Guide's: {', '.join(accepted)}")
        self.batch_to_xy = batch_to_xy
        self.network = network
        self.guide_kwargs = guide_kwargs
        self.guide: Guide | None = None
        self.batches = 0
        self.scored_batches = 0
        self._pending_state: dict[str, Any] | None = None

    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if self.guide is None:
            network = self.network(pl_module) if self.network else pl_module
            if not isinstance(network, nn.Module):
                raise TypeError(f"network must map the LightningModule to the nn.Module to score, e.g. network=lambda "
                                f"module: module.net; it returned {type(network).__name__} {network!r:.60}")
            self.guide = Guide(network, **self.guide_kwargs)
        self._apply_pending_state()

    def on_train_epoch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self.guide.set_epoch(trainer.current_epoch)

    def on_train_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any,
                             batch_idx: int) -> None:
        inputs, targets, forward_kwargs = _split_xy(self.batch_to_xy(batch))
        self.guide.step(inputs, targets, **forward_kwargs)
        self.batches += 1
        # Not the scores step returns: layers scored in the training forward are not among them.
        self.scored_batches += bool(self.guide.scored_layers)

    def state_dict(self) -> dict[str, Any]:
        return {"guide": self.guide.state_dict() if self.guide is not None else None,
                "batches": self.batches, "scored_batches": self.scored_batches}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Lightning restores callbacks after ``setup``; the state is kept until the
        # Guide exists in case another Lightning version calls this first.
        self._pending_state = dict(state_dict)
        self._apply_pending_state()

    def _apply_pending_state(self) -> None:
        if self._pending_state is None or self.guide is None:
            return
        state, self._pending_state = self._pending_state, None
        if state.get("guide") is not None:
            self.guide.load_state_dict(state["guide"])
        self.batches = state.get("batches", 0)
        self.scored_batches = state.get("scored_batches", 0)
