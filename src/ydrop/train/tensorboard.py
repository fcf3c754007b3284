"""TensorBoard event files of a training run (``train_run(..., tensorboard=True)``,
``ydrop train/compare --tensorboard``).

A run writes into ``<run folder>/tensorboard/``, so ``tensorboard --logdir runs`` shows
every run of a grid side by side under its own path. Steps are epochs counted from 1,
as in the tables and messages. Per epoch:

- ``loss/train``, ``loss/validation``, ``accuracy/train``, ``accuracy/validation`` (%),
  ``lr`` (the learning rate of the epoch's last step), ``time/epoch_seconds``;
- for each module of the network with a ``drop_rate`` tensor (Y-Drop's EMA of its
  units' drop rates, or any layer that keeps one): ``drop_rate_mean/<module>`` and the
  histogram ``drop_rate/<module>`` of its units' rates.

The layers are read generically (any tensor attribute named ``drop_rate``), so a new
method that keeps one is logged without a change here. The logic is in pure helpers
(:func:`epoch_scalars`, :func:`drop_rates`); :class:`TensorBoardLog` only writes them.
A resumed run appends to the same folder; a run resumed with logging switched on
first writes the scalars of the epochs in its checkpoint's history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from torch import Tensor, nn

__all__ = ["TENSORBOARD_DIR", "INSTALL_HINT", "require_tensorboard", "drop_rates", "epoch_scalars", "TensorBoardLog"]

TENSORBOARD_DIR = "tensorboard"
INSTALL_HINT = "pip install 'ydrop[tensorboard]' (or: pip install tensorboard)"


def require_tensorboard() -> Any:
    """``torch.utils.tensorboard.SummaryWriter``; ImportError with the install hint when the
    ``tensorboard`` package is missing (checked before a run starts, not after its first epoch)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ImportError(f"TensorBoard logging needs the tensorboard package, which is not installed: "
                          f"{INSTALL_HINT}") from exc
    return SummaryWriter


def drop_rates(model: nn.Module) -> dict[str, Tensor]:
    """``{module name: drop_rate}`` of every submodule holding a non-empty ``drop_rate``
    tensor (a lazy Y-Drop layer has an empty one until its first guided step)."""
    rates = {}
    for name, module in model.named_modules():
        rate = getattr(module, "drop_rate", None)
        if isinstance(rate, Tensor) and rate.numel() > 0:
            rates[name or type(module).__name__] = rate.detach()
    return rates


_SCALARS = (("loss/train", "train_loss"), ("loss/validation", "val_loss"), ("accuracy/train", "train_acc"),
            ("accuracy/validation", "val_acc"), ("lr", "lr"), ("time/epoch_seconds", "time"))


def epoch_scalars(record: dict[str, float]) -> dict[str, float]:
    """The scalars of one history record (those it holds), by TensorBoard tag."""
    return {tag: float(record[key]) for tag, key in _SCALARS if key in record}


class TensorBoardLog:
    """Writes a run's epochs into ``folder``; ``history``: the epochs already trained
    (written first when the folder is new, so a resumed run's curves start at epoch 1)."""

    def __init__(self, folder: str | Path, history: Iterable[dict[str, float]] = ()) -> None:
        writer_class = require_tensorboard()
        folder = Path(folder)
        fresh = not folder.exists()
        self.writer = writer_class(log_dir=str(folder))
        if fresh:
            for record in history:
                self._scalars(record)
        self.writer.flush()

    def _scalars(self, record: dict[str, float]) -> None:
        step = int(record["epoch"]) + 1
        for tag, value in epoch_scalars(record).items():
            self.writer.add_scalar(tag, value, step)

    def log_epoch(self, record: dict[str, float], model: nn.Module) -> None:
        """The epoch's scalars and the drop rates of ``model``'s layers, flushed to disk."""
        self._scalars(record)
        step = int(record["epoch"]) + 1
        for name, rate in drop_rates(model).items():
            rate = rate.float().cpu()
            self.writer.add_scalar(f"drop_rate_mean/{name}", rate.mean().item(), step)
            self.writer.add_histogram(f"drop_rate/{name}", rate, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
