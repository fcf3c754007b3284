"""``train_run(config)``: one seeded, resumable training run (DESIGN section 4 protocol).

Per epoch: ``guide.set_epoch``, the loader's ``set_epoch``, per step ``guide.step(x, y)``
then the loss (+ ``information_beta * information_kl(model)``), backward, step; then
validation loss and accuracy, a checkpoint, early stopping. At the end the best
checkpoint (lowest validation loss, or highest accuracy with ``monitor="val_acc"``) is
restored and tested, and ``result.json`` is written. A finished run is never trained
again; an interrupted one resumes from its last checkpoint and reaches the same metrics
(on CPU) as an uninterrupted one.

A run holds a lock file in its folder while it trains (see :mod:`.lock`): a second
process asking for the same run gets :class:`RunLocked` instead of training it twice.

Under ``torchrun`` (an initialised process group) the model is wrapped in
``DistributedDataParallel``: every rank iterates the same batches and trains on its
contiguous share of each (so ``batch_size`` stays the global batch and the protocol
is unchanged), the Guide scores each rank's share and the Y-Drop layers average the
mean scores over ranks. Validation and test sets are split over ranks the same way
and their sums all-reduced, so every rank takes the same early-stopping decisions.
Only rank 0 reads the run's state from disk to decide what to do, writes files and
shows progress; the runs folder must be shared by all ranks (it is on one machine).
A batch smaller than the number of ranks is skipped.
"""

from __future__ import annotations

import copy
import math
import platform
import sys
import time
import warnings
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import __version__
from .. import distributed as dist_
from ..data import BatchLoader, PadCropFlip, load_dataset, train_val_split
from ..guide import Guide
from ..layers import guided_layers, information_kl
from ..models import create
from . import store
from .config import DRY_RUN_BATCHES, NEUTRAL_FIELDS, TrainConfig
from .evaluation import EpochSums, loss_and_accuracy
from .lock import LOCK_FILE, FileLock, RunLocked, is_held, lock_holder, try_lock
from .tensorboard import TENSORBOARD_DIR, TensorBoardLog, require_tensorboard

__all__ = ["train_run", "build_model", "load_splits", "RunResult", "EpochCallback", "RunLocked", "resume_message"]

# callback(epoch, record, run_dir) after each epoch's checkpoint is written.
EpochCallback = Callable[[int, dict, Path], None]


@dataclass
class RunResult:
    """What ``result.json`` holds (accuracies in %, losses mean cross-entropy)."""

    config: dict[str, Any]
    history: list[dict[str, float]]  # per epoch: epoch, train_loss, train_acc, val_loss, val_acc, lr, time
    best_epoch: int  # 0-based index into history (messages and tables count epochs from 1)
    best_val_loss: float  # the best epoch's (by config["monitor"]) validation loss
    test_acc: float
    test_loss: float
    epochs: int
    stopped_early: bool
    time_per_epoch: float
    total_time: float
    versions: dict[str, str]
    run_dir: str = ""
    world_size: int = 1  # processes that trained the run (torchrun); results written before count as 1
    test_size: int | None = None  # images in the test split (None in results written before it was stored)
    trained: bool = True  # False when loaded from an existing result.json

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("trained")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], trained: bool = False) -> "RunResult":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "trained"}
        return cls(**known, trained=trained)

    def metrics(self) -> dict[str, Any]:
        """The deterministic part (no timings): what two runs of one config share."""
        strip = [{k: v for k, v in h.items() if k != "time"} for h in self.history]
        return dict(history=strip, best_epoch=self.best_epoch, best_val_loss=self.best_val_loss,
                    test_acc=self.test_acc, test_loss=self.test_loss, epochs=self.epochs)


def _versions() -> dict[str, str]:
    return {"ydrop": __version__, "torch": torch.__version__, "python": platform.python_version()}


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _rank_seed(seed: int, rank: int, epoch: int = 0) -> int:
    """Seed of the training stream of ``rank`` from ``epoch`` on: ``seed`` itself on rank 0
    at epoch 0 (so one process draws exactly what it always drew), an unrelated stream
    otherwise (so the other ranks' dropout masks are not copies of rank 0's)."""
    if rank == 0 and epoch == 0:
        return seed
    state = np.random.SeedSequence([seed, rank, epoch]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 32 | int(state[1])


def _state_copy(model: nn.Module, device: str | None = None) -> dict[str, Any]:
    """A detached copy of ``model.state_dict()`` (on ``device`` if given); entries that
    are not tensors (a layer's ``get_extra_state``) are deep-copied."""
    return {k: (v.detach().to(device) if device else v.detach()).clone() if isinstance(v, torch.Tensor)
            else copy.deepcopy(v) for k, v in model.state_dict().items()}


def _make_optimizer(model: nn.Module, c: TrainConfig) -> torch.optim.Optimizer:
    if c.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)


def _lr_at(c: TrainConfig, epoch: int, step: int) -> float:
    """Learning rate of global step ``step`` in ``epoch`` (pure function of the two)."""
    lr = c.lr
    if c.lr_step_size is not None:
        lr *= c.lr_gamma ** (epoch // c.lr_step_size)
    if c.lr_drop_iteration is not None and step >= c.lr_drop_iteration:
        lr *= c.lr_gamma
    return lr


def build_model(config: TrainConfig, info: Any, method: str | None = None,
                method_kwargs: dict[str, Any] | None = None) -> nn.Module:
    """The (untrained) model of a run: ``config``'s model for dataset ``info`` (a DatasetInfo),
    with ``config``'s dropout method, or ``method`` / ``method_kwargs`` in its place."""
    return create(config.model, num_classes=info.num_classes, in_shape=info.in_shape,
                  dropout=method or config.method,
                  dropout_kwargs=config.method_kwargs if method_kwargs is None else method_kwargs,
                  **config.model_kwargs)


def load_splits(config: TrainConfig, progress: bool = False,
                load: Callable[..., Any] = load_dataset) -> tuple[Any, Any, Any, Any]:
    """(train, validation, test, DatasetInfo) of a run: its dataset's training split cut
    by the run's ``val_fraction`` and seed (so training and analysis see the same
    validation samples) and the test split. ``load`` reads one split (a cache may
    stand in for ``load_dataset``)."""
    c = config
    where = dict(root=c.data_dir, download=c.download, progress=progress)
    if c.mirror is not None:
        where["mirror"] = c.mirror
    full_train = load(c.dataset, split="train", **where)
    test_set = load(c.dataset, split="test", **where)
    train_set, val_set = train_val_split(full_train, val_fraction=c.val_fraction, seed=c.seed)
    return train_set, val_set, test_set, full_train.info


def train_run(
    config: TrainConfig,
    progress: bool = True,
    callbacks: Sequence[EpochCallback] = (),
    tensorboard: bool = False,
) -> RunResult:
    """Train (or resume, or load) the run of ``config``; returns its :class:`RunResult`.

    ``callbacks`` are called as ``callback(epoch, record, run_dir)`` after each epoch's
    checkpoint is written (an exception there interrupts the run like a kill would).
    ``tensorboard=True`` also writes TensorBoard event files into ``run_dir/tensorboard``
    (see :mod:`.tensorboard`; needs the ``tensorboard`` package).

    The dataset is loaded and the model built on the meta device before anything is
    written, so a run whose data is missing or whose model or method kwargs are wrong
    fails with nothing left on disk (no run folder, no empty dataset folder).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    c = config.resolved()
    folder = store.run_dir(c)
    if tensorboard:
        require_tensorboard()
    splits = None
    # Not for a finished run, nor one another process trains (a grid asks again later).
    if not (folder / store.RESULT_FILE).exists() and not is_held(folder / LOCK_FILE):
        torch.manual_seed(c.seed)
        splits = load_splits(c, progress and dist_.is_main_process())
        with torch.device("meta"):
            build_model(c, splits[3])
    lock, stored = _decide(c, folder)
    if stored is not None:
        result = RunResult.from_dict(stored, trained=False)
        result.run_dir = str(folder)
        return result
    try:
        if splits is None:  # the run another process held (and left) is ours now
            splits = load_splits(c, progress and dist_.is_main_process())
        return _Trainer(c, folder, lock, progress, splits, tensorboard).run(callbacks)
    finally:
        if lock is not None:
            lock.release()


def _decide(c: TrainConfig, folder: Path) -> tuple[FileLock | None, dict[str, Any] | None]:
    """:func:`_open_run` on rank 0, its outcome on every rank (its exception raised there).

    Rank 0 alone looks at the folder and decides; every rank follows its decision,
    so no rank can start collectives the others never join.
    """
    lock, decision = None, None
    if dist_.is_main_process():
        try:
            lock, decision = _open_run(c, folder)
        except (ValueError, RunLocked) as exc:
            decision = exc
    if dist_.world_size() > 1:
        decision = dist_.broadcast_object(decision)
    if isinstance(decision, Exception):
        raise decision
    return lock, decision


def _open_run(c: TrainConfig, folder: Path) -> tuple[FileLock | None, dict[str, Any] | None]:
    """(lock, None) when the run is to be trained (its config.json written), (None, stored
    result) when it is finished. Raises ValueError for another config in the folder,
    RunLocked when another process is training it."""
    result_path = folder / store.RESULT_FILE
    if result_path.exists():
        return None, _stored_result(result_path, c, folder)
    lock = try_lock(folder / LOCK_FILE)
    if lock is None:
        holder = lock_holder(folder / LOCK_FILE)
        raise RunLocked(f"run {str(folder)!r} is being trained by another process ({holder})", folder, holder)
    try:
        if result_path.exists():  # finished by that process while we waited for the lock
            lock.release()
            return None, _stored_result(result_path, c, folder)
        # What a process killed mid-write left (a checkpoint-sized file, maybe): nobody
        # else writes here while we hold the lock, so none of these is being written.
        store.remove_temp_files(folder)
        config_path = folder / store.CONFIG_FILE
        if config_path.exists():
            _check_same_config(store.read_json(config_path), c, folder)
        store.write_json(config_path, c.to_dict())
    except BaseException:
        lock.release()
        raise
    return lock, None


def _stored_result(path: Path, c: TrainConfig, folder: Path) -> dict[str, Any]:
    data = store.read_json(path)
    _check_same_config(data.get("config", {}), c, folder)
    return data


def _say(text: str) -> None:
    """One line for the user on stderr, between the progress bars (not through them)."""
    tqdm.write(text, file=sys.stderr)


def _max_epochs(c: TrainConfig, steps_per_epoch: int) -> int | None:
    """The epoch cap: ``max_epochs``, or the epochs the ``iterations`` of the excitation
    protocol take (whichever is smaller); None for no cap."""
    if c.iterations is None:
        return c.max_epochs
    planned = math.ceil(c.iterations / max(steps_per_epoch, 1))
    return min(planned, c.max_epochs) if c.max_epochs else planned


@dataclass
class _LoopState:
    """What a checkpoint restores: the position of the loop, its history, early stopping."""

    epoch: int = 0  # next epoch to train, 0-based (history records are 0-based too)
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"val_loss": math.inf, "epoch": -1, "state": None})
    bad_epochs: int = 0
    elapsed: float = 0.0
    stopped_early: bool = False


class _Bars:
    """The progress of one run: an epoch bar and, below it, a bar of the batches of the
    current epoch, so a slow epoch is seen moving rather than taken for a hang."""

    def __init__(self, enabled: bool, name: str, max_epochs: int | None, start: int, steps: int) -> None:
        self.epochs = tqdm(total=max_epochs, initial=start, disable=not enabled, unit="epoch", leave=False, desc=name)
        self.batches = tqdm(total=steps, disable=not enabled, unit="batch", leave=False)
        self.max_epochs = max_epochs

    def start_epoch(self, epoch: int) -> None:
        """``epoch`` 0-based; shown from 1, as in every message and table."""
        self.batches.reset()
        self.batches.set_description(f"epoch {epoch + 1}" + (f"/{self.max_epochs}" if self.max_epochs else ""))

    def batch(self) -> None:
        self.batches.update(1)

    def epoch_done(self, record: dict[str, float]) -> None:
        self.epochs.update(1)
        self.epochs.set_postfix(val_loss=f"{record['val_loss']:.4f}", val_acc=f"{record['val_acc']:.2f}")

    def close(self) -> None:
        self.batches.close()
        self.epochs.close()


class _Trainer:
    """One run's training on every rank; only rank 0 (``lock`` its lock) writes files."""

    def __init__(self, c: TrainConfig, folder: Path, lock: FileLock | None, progress: bool,
                 splits: tuple[Any, Any, Any, Any], tensorboard: bool) -> None:
        self.c, self.folder, self.lock = c, folder, lock
        self.rank, self.world = dist_.rank(), dist_.world_size()
        self.main = self.rank == 0
        self.progress = progress and self.main
        self.device = torch.device(c.device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", dist_.local_rank())
        train_set, val_set, test_set, info = splits
        self.test_size = len(test_set)
        self.train_loader = BatchLoader(train_set, c.batch_size, shuffle=True, seed=c.seed, device=self.device,
                                        augment=PadCropFlip() if c.augment else None)
        eval_batch = max(c.batch_size, 256)
        self.val_loader = BatchLoader(val_set, eval_batch, device=self.device)
        self.test_loader = BatchLoader(test_set, eval_batch, device=self.device)

        torch.manual_seed(c.seed)  # the same initial weights on every rank
        self.model = build_model(c, info).to(self.device)
        self.optimizer = _make_optimizer(self.model, c)
        self.guide = Guide(self.model) if guided_layers(self.model) else None
        # The training forward goes through DDP (gradients averaged over ranks); scoring,
        # evaluation and checkpoints use the bare network.
        self.forward = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.batch_limit = DRY_RUN_BATCHES if c.dry_run else None
        self.steps_per_epoch = min(len(self.train_loader), self.batch_limit or len(self.train_loader))
        self.max_epochs = _max_epochs(c, self.steps_per_epoch)
        self.state = _LoopState()
        self.board = None
        self.tensorboard = tensorboard and self.main

    def _heartbeat(self, force: bool = False) -> None:
        """Show other processes the run's owner is alive (rank 0 holds the lock)."""
        if self.lock is not None:
            self.lock.heartbeat(force)

    # ------------------------------------------------------------------ start
    def _start(self) -> bool:
        """Write the initial weights, restore the checkpoint if any (saying so); returns
        whether the run is already done."""
        self._heartbeat(force=True)  # loading the data may have taken a while
        initial_path = self.folder / store.INITIAL_FILE
        if self.main and not initial_path.exists():
            store.save_torch(initial_path, _state_copy(self.model, "cpu"))
        checkpoint_path = self.folder / store.CHECKPOINT_FILE
        if dist_.broadcast_object(checkpoint_path.exists()):  # rank 0's view, the one that counts
            self._resume(torch.load(checkpoint_path, map_location=self.device, weights_only=False))
        else:
            torch.manual_seed(_rank_seed(self.c.seed, self.rank))
        s, c = self.state, self.c
        done = s.stopped_early or (c.iterations is not None and s.step >= c.iterations)
        if self.tensorboard:
            self.board = TensorBoardLog(self.folder / TENSORBOARD_DIR, s.history)
        return done or (self.max_epochs is not None and s.epoch >= self.max_epochs)

    def _resume(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.guide is not None and ckpt.get("guide") is not None:
            self.guide.load_state_dict(ckpt["guide"])
        self.state = _LoopState(epoch=ckpt["epoch"] + 1, step=ckpt["step"], history=ckpt["history"], best=ckpt["best"],
                                bad_epochs=ckpt["bad_epochs"], elapsed=ckpt["elapsed"])
        # The decision the run took after its last epoch. Checkpoints written before it was
        # stored take it again from what they hold (the last epoch's loss, bad_epochs),
        # by the same rule, so a run that diverged is not trained on when resumed.
        stopped = ckpt.get("stopped_early")
        if stopped is None:
            stopped = bool(self.state.history) and _stops(self.c, self.state.history[-1], self.state.bad_epochs)
        self.state.stopped_early = bool(stopped)
        by_rank = ckpt.get("rng_by_rank") or [ckpt["rng"]]
        if len(by_rank) == self.world:
            _set_rng_state(by_rank[self.rank])
        else:  # resumed with another number of processes: a fresh stream per rank
            torch.manual_seed(_rank_seed(self.c.seed, self.rank, self.state.epoch))
        if self.main:
            _say(resume_message(self.folder, self.state.epoch, self.max_epochs, self.state.stopped_early))

    # ------------------------------------------------------------------ epochs
    def run(self, callbacks: Sequence[EpochCallback]) -> RunResult:
        done = self._start()
        c = self.c
        bars = _Bars(self.progress, f"{c.dataset}/{c.model}/{c.method}/seed{c.seed}", self.max_epochs,
                     self.state.epoch, self.steps_per_epoch)
        try:
            while not done:
                record = self._train_epoch(bars)
                done = self._end_epoch(record)
                bars.epoch_done(record)
                if self.board is not None:
                    self.board.log_epoch(record, self.model)
                for callback in callbacks:
                    callback(record["epoch"], record, self.folder)
                self.state.epoch += 1
                done = done or (self.max_epochs is not None and self.state.epoch >= self.max_epochs)
        finally:
            bars.close()
            if self.board is not None:
                self.board.close()
        return self._finish()

    def _train_epoch(self, bars: _Bars) -> dict[str, float]:
        c, s, model = self.c, self.state, self.model
        started = time.perf_counter()
        model.train()
        if self.guide is not None:
            self.guide.set_epoch(s.epoch)
        self.train_loader.set_epoch(s.epoch)
        sums = EpochSums()
        lr = _lr_at(c, s.epoch, s.step)
        bars.start_epoch(s.epoch)
        for i, (x, y) in enumerate(self.train_loader):
            if (self.batch_limit is not None and i >= self.batch_limit) or (c.iterations is not None and s.step >= c.iterations):
                break
            if y.shape[0] < self.world:
                continue  # some rank would get no sample; every rank skips it alike
            lr = self._train_step(*dist_.shard_rows(x, y), sums)
            bars.batch()
        total_loss, correct, count = sums.totals()
        val_loss, val_acc = loss_and_accuracy(model, self.val_loader, self.batch_limit, self._heartbeat)
        seconds = time.perf_counter() - started
        s.elapsed += seconds
        return dict(epoch=s.epoch, train_loss=total_loss / max(count, 1), train_acc=100.0 * correct / max(count, 1),
                    val_loss=val_loss, val_acc=val_acc, lr=lr, time=seconds)

    def _train_step(self, x: Tensor, y: Tensor, sums: EpochSums) -> float:
        c, s = self.c, self.state
        lr = _lr_at(c, s.epoch, s.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        if self.guide is not None:
            self.guide.step(x, y)
        logits = self.forward(x)
        loss = F.cross_entropy(logits, y)
        if c.method == "information" and c.information_beta:
            loss = loss + c.information_beta * information_kl(self.model).to(loss.device)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        s.step += 1
        self._heartbeat()  # an epoch may outlast the staleness limit
        sums.add(loss.detach().double() * y.numel(), logits, y)
        return lr

    def _end_epoch(self, record: dict[str, float]) -> bool:
        """Record the epoch, track the best one, write the checkpoint; returns whether
        the run stops here (early stopping, divergence, or its iterations done)."""
        c, s = self.c, self.state
        s.history.append(record)
        if _improves(c.monitor, record, s.best):
            s.best = {"val_loss": record["val_loss"], "val_acc": record["val_acc"], "epoch": record["epoch"],
                      "state": _state_copy(self.model)}
            s.bad_epochs = 0
        else:
            s.bad_epochs += 1
        if not math.isfinite(record["train_loss"]) and self.main:
            _warn_diverged(self.folder, record, s.best)
        s.stopped_early = _stops(c, record, s.bad_epochs)
        rng_by_rank = dist_.all_gather_object(_rng_state()) if self.world > 1 else None
        if self.main:
            store.save_torch(self.folder / store.CHECKPOINT_FILE, dict(
                model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
                guide=self.guide.state_dict() if self.guide is not None else None, rng=_rng_state(),
                epoch=record["epoch"], step=s.step, history=s.history, best=s.best, bad_epochs=s.bad_epochs,
                elapsed=s.elapsed, rng_by_rank=rng_by_rank, stopped_early=s.stopped_early,
            ))
            self._heartbeat(force=True)
        return s.stopped_early or (c.iterations is not None and s.step >= c.iterations)

    # ------------------------------------------------------------------ end
    def _finish(self) -> RunResult:
        s = self.state
        if s.best["state"] is not None:
            self.model.load_state_dict(s.best["state"])
        test_loss, test_acc = loss_and_accuracy(self.model, self.test_loader, self.batch_limit, self._heartbeat)
        result = RunResult(
            config=self.c.to_dict(), history=s.history, best_epoch=s.best["epoch"], best_val_loss=s.best["val_loss"],
            test_acc=test_acc, test_loss=test_loss, epochs=len(s.history), stopped_early=s.stopped_early,
            time_per_epoch=s.elapsed / max(len(s.history), 1), total_time=s.elapsed, versions=_versions(),
            run_dir=str(self.folder), world_size=self.world, trained=True, test_size=self.test_size,
        )
        if self.main:
            store.write_json(self.folder / store.RESULT_FILE, result.to_dict())
        return result


def _improves(monitor: str, record: dict[str, float], best: dict[str, Any]) -> bool:
    """Whether the epoch of ``record`` beats the best one so far: a lower validation loss
    (``monitor="val_loss"``; a NaN loss never does) or a higher validation accuracy."""
    if monitor == "val_acc":
        # No val_acc before the first epoch (and in checkpoints from before monitor).
        return record["val_acc"] > best.get("val_acc", -math.inf)
    return record["val_loss"] < best["val_loss"]


def _stops(c: TrainConfig, record: dict[str, float], bad_epochs: int) -> bool:
    """Whether the run stops after the epoch of ``record``: it diverged, or early stopping's
    patience ran out."""
    # A NaN / inf training loss never recovers; the epochs left would only burn time
    # until patience runs out, so stop and test the best epoch.
    diverged = not math.isfinite(record["train_loss"])
    return diverged or (c.patience is not None and bad_epochs >= c.patience)


def _warn_diverged(folder: Path, record: dict[str, float], best: dict[str, Any]) -> None:
    tested = (f"the best epoch so far, epoch {best['epoch'] + 1}, is tested" if best["state"] is not None
              else "no epoch had a finite validation loss; the last weights are tested")
    warnings.warn(
        f"run {str(folder)!r}: training loss {record['train_loss']} in epoch {record['epoch'] + 1}; the run "
        f"diverged and stops here ({tested})",
        RuntimeWarning, stacklevel=4)


def resume_message(folder: Path, next_epoch: int, max_epochs: int | None, stopped: bool = False) -> str:
    """What a resumed run says: epochs counted from 1, as in every message and table.
    ``stopped``: the checkpoint's last epoch ended the run (divergence, early stopping)."""
    if stopped:
        return f"resuming {folder}: the run stopped after epoch {next_epoch} (in its checkpoint); testing its best epoch"
    if max_epochs is not None and next_epoch >= max_epochs:
        return f"resuming {folder}: all {max_epochs} epochs are in its checkpoint; testing its best epoch"
    of = f" of {max_epochs}" if max_epochs is not None else ""
    done = "epoch 1 is" if next_epoch == 1 else f"epochs 1-{next_epoch} are"
    return f"resuming {folder} from epoch {next_epoch + 1}{of} ({done} in its checkpoint)"


def _field_defaults() -> dict[str, Any]:
    return {f.name: f.default_factory() if f.default is MISSING else f.default for f in fields(TrainConfig)}


def _check_same_config(stored: dict[str, Any], c: TrainConfig, folder: Path) -> None:
    current = c.to_dict()
    # A setting added to TrainConfig after the run was stored counts as its default, so
    # finished runs stay valid when the config grows.
    stored = {**_field_defaults(), **stored}
    differ = sorted(k for k in set(stored) | set(current)
                    if k not in NEUTRAL_FIELDS and stored.get(k) != current.get(k))
    if differ:
        raise ValueError(
            f"run folder {str(folder)!r} holds a run with another config ("
            + ", ".join(f"{k}: stored {stored.get(k)!r}, now {current.get(k)!r}" for k in differ)
            + "); use another out folder or delete that run"
        )
