"""``train_run(config)``: one seeded, resumable training run (DESIGN section 4 protocol).

Per epoch: ``guide.set_epoch``, the loader's ``set_epoch``, per step ``guide.step(x, y)``
then the loss (+ ``information_beta * information_kl(model)``), backward, step; then
validation loss and accuracy, a checkpoint, early stopping. At the end the best
checkpoint (lowest validation loss) is restored and tested, and ``result.json`` is
written. A finished run is never trained again; an interrupted one resumes from its
last checkpoint and reaches the same metrics (on CPU) as an uninterrupted one.

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
import time
import warnings
from dataclasses import MISSING, asdict, dataclass, fields
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
from ..layers import GuidedDropout, information_kl
from ..models import create
from . import store
from .config import DRY_RUN_BATCHES, TrainConfig
from .lock import LOCK_FILE, FileLock, RunLocked, lock_holder, try_lock

__all__ = ["train_run", "build_model", "load_splits", "RunResult", "EpochCallback", "RunLocked"]

# callback(epoch, record, run_dir) after each epoch's checkpoint is written.
EpochCallback = Callable[[int, dict, Path], None]


@dataclass
class RunResult:
    """What ``result.json`` holds (accuracies in %, losses mean cross-entropy)."""

    config: dict[str, Any]
    history: list[dict[str, float]]  # per epoch: epoch, train_loss, train_acc, val_loss, val_acc, lr, time
    best_epoch: int
    best_val_loss: float
    test_acc: float
    test_loss: float
    epochs: int
    stopped_early: bool
    time_per_epoch: float
    total_time: float
    versions: dict[str, str]
    run_dir: str = ""
    world_size: int = 1  # processes that trained the run (torchrun); results written before count as 1
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


def _sum_over_ranks(*values: float) -> list[float]:
    """Per-rank sums (loss, correct, count) added over all ranks, in float64."""
    total = dist_.all_reduce_sum(torch.tensor(values, dtype=torch.float64))
    return total.tolist()


def _state_copy(model: nn.Module, device: str | None = None) -> dict[str, Any]:
    """A detached copy of ``model.state_dict()`` (on ``device`` if given); entries that
    are not tensors (a layer's ``get_extra_state``) are deep-copied."""
    return {k: (v.detach().to(device) if device else v.detach()).clone() if isinstance(v, torch.Tensor)
            else copy.deepcopy(v) for k, v in model.state_dict().items()}


def _needs_guide(model: nn.Module) -> bool:
    return any(isinstance(m, GuidedDropout) for m in model.modules())


class _EpochSums:
    """Running (loss sum, correct) of an epoch, kept on the device: one host read per
    epoch instead of two per batch, so a GPU is never made to wait inside the loop."""

    def __init__(self) -> None:
        self.sums: Tensor | None = None
        self.count = 0

    def add(self, loss_sum: Tensor, logits: Tensor, y: Tensor) -> None:
        """``loss_sum``: the batch's summed loss (a 0-d tensor)."""
        batch = torch.stack([loss_sum.detach().double(), (logits.detach().argmax(1) == y).sum().double()])
        self.sums = batch if self.sums is None else self.sums + batch
        self.count += y.numel()

    def totals(self) -> tuple[float, float, int]:
        """(loss sum, correct, count), summed over the ranks of a distributed run."""
        loss, correct = self.sums.tolist() if self.sums is not None else (0.0, 0.0)
        if dist_.world_size() > 1:
            return tuple(_sum_over_ranks(loss, correct, self.count))
        return loss, correct, self.count


def _evaluate(model: nn.Module, loader: BatchLoader, limit: int | None = None) -> tuple[float, float]:
    """(mean loss, accuracy %) over the loader, in eval mode."""
    model.eval()
    sums = _EpochSums()
    with torch.no_grad():
        for i, (x, y) in enumerate(loader):
            if limit is not None and i >= limit:
                break
            x, y = dist_.shard_rows(x, y)
            if y.numel() == 0:
                continue  # a batch smaller than the number of ranks
            logits = model(x)
            sums.add(F.cross_entropy(logits, y, reduction="sum"), logits, y)
    total_loss, correct, count = sums.totals()
    return total_loss / max(count, 1), 100.0 * correct / max(count, 1)


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
    full_train = load(c.dataset, root=c.data_dir, split="train", download=c.download, progress=progress)
    test_set = load(c.dataset, root=c.data_dir, split="test", download=c.download, progress=progress)
    train_set, val_set = train_val_split(full_train, val_fraction=c.val_fraction, seed=c.seed)
    return train_set, val_set, test_set, full_train.info


def train_run(
    config: TrainConfig,
    progress: bool = True,
    callbacks: Sequence[EpochCallback] = (),
) -> RunResult:
    """Train (or resume, or load) the run of ``config``; returns its :class:`RunResult`.

    ``callbacks`` are called as ``callback(epoch, record, run_dir)`` after each epoch's
    checkpoint is written (an exception there interrupts the run like a kill would).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    c = config.resolved()
    folder = store.run_dir(c)
    # Rank 0 alone looks at the folder and decides; every rank follows its decision,
    # so no rank can start collectives the others never join.
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
    if decision is not None:  # the stored result
        result = RunResult.from_dict(decision, trained=False)
        result.run_dir = str(folder)
        return result
    try:
        return _train(c, folder, lock, progress, callbacks)
    finally:
        if lock is not None:
            lock.release()


def _open_run(c: TrainConfig, folder: Path) -> tuple[FileLock | None, dict[str, Any] | None]:
    """(lock, None) when the run is to be trained (its config.json written), (None, stored
    result) when it is finished. Raises ValueError for another config in the folder,
    RunLocked when another process is training it."""
    result_path = folder / store.RESULT_FILE
    if result_path.exists():
        return None, _stored_result(result_path, c, folder)
    lock = try_lock(folder / LOCK_FILE)
    if lock is None:
        raise RunLocked(f"run {str(folder)!r} is being trained by another process ({lock_holder(folder / LOCK_FILE)})")
    try:
        if result_path.exists():  # finished by that process while we waited for the lock
            lock.release()
            return None, _stored_result(result_path, c, folder)
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


def _train(c: TrainConfig, folder: Path, lock: FileLock | None, progress: bool,
           callbacks: Sequence[EpochCallback]) -> RunResult:
    """The training itself, on every rank; only rank 0 (``lock`` its lock) writes."""
    result_path = folder / store.RESULT_FILE
    rank, world = dist_.rank(), dist_.world_size()
    main = rank == 0
    progress = progress and main
    device = torch.device(c.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", dist_.local_rank())
    torch.manual_seed(c.seed)
    train_set, val_set, test_set, info = load_splits(c, progress)
    train_loader = BatchLoader(train_set, c.batch_size, shuffle=True, seed=c.seed, device=device,
                               augment=PadCropFlip() if c.augment else None)
    eval_batch = max(c.batch_size, 256)
    val_loader = BatchLoader(val_set, eval_batch, device=device)
    test_loader = BatchLoader(test_set, eval_batch, device=device)

    torch.manual_seed(c.seed)  # the same initial weights on every rank
    model = build_model(c, info).to(device)
    optimizer = _make_optimizer(model, c)
    guide = Guide(model) if _needs_guide(model) else None
    # The training forward goes through DDP (gradients averaged over ranks); scoring,
    # evaluation and checkpoints use the bare network.
    forward = model
    if world > 1:
        forward = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    batch_limit = DRY_RUN_BATCHES if c.dry_run else None
    steps_per_epoch = min(len(train_loader), batch_limit or len(train_loader))
    if c.iterations is not None:
        planned = math.ceil(c.iterations / steps_per_epoch)
        max_epochs = min(planned, c.max_epochs) if c.max_epochs else planned
    else:
        max_epochs = c.max_epochs

    initial_path = folder / store.INITIAL_FILE
    if main and not initial_path.exists():
        store.save_torch(initial_path, _state_copy(model, "cpu"))

    # Training state (restored from the checkpoint when resuming).
    start_epoch, step = 0, 0
    history: list[dict[str, float]] = []
    best = {"val_loss": math.inf, "epoch": -1, "state": None}
    bad_epochs, elapsed = 0, 0.0
    checkpoint_path = folder / store.CHECKPOINT_FILE
    if dist_.broadcast_object(checkpoint_path.exists()):  # rank 0's view, the one that counts
        ckpt = torch.load(checkpoint_path, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if guide is not None and ckpt.get("guide") is not None:
            guide.load_state_dict(ckpt["guide"])
        start_epoch, step, history = ckpt["epoch"] + 1, ckpt["step"], ckpt["history"]
        best, bad_epochs, elapsed = ckpt["best"], ckpt["bad_epochs"], ckpt["elapsed"]
        by_rank = ckpt.get("rng_by_rank") or [ckpt["rng"]]
        if len(by_rank) == world:
            _set_rng_state(by_rank[rank])
        else:  # resumed with another number of processes: a fresh stream per rank
            torch.manual_seed(_rank_seed(c.seed, rank, start_epoch))
    else:
        torch.manual_seed(_rank_seed(c.seed, rank))

    stopped_early = bool(history) and c.patience is not None and bad_epochs >= c.patience
    done = stopped_early or (c.iterations is not None and step >= c.iterations)
    bar = tqdm(total=max_epochs, initial=start_epoch, disable=not progress, unit="epoch", leave=False,
               desc=f"{c.dataset}/{c.model}/{c.method}/seed{c.seed}")
    try:
        epoch = start_epoch
        while not done and (max_epochs is None or epoch < max_epochs):
            started = time.perf_counter()
            model.train()
            if guide is not None:
                guide.set_epoch(epoch)
            train_loader.set_epoch(epoch)
            sums = _EpochSums()
            lr = _lr_at(c, epoch, step)
            for i, (x, y) in enumerate(train_loader):
                if (batch_limit is not None and i >= batch_limit) or (c.iterations is not None and step >= c.iterations):
                    break
                if y.shape[0] < world:
                    continue  # some rank would get no sample; every rank skips it alike
                x, y = dist_.shard_rows(x, y)
                lr = _lr_at(c, epoch, step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                model.train()
                if guide is not None:
                    guide.step(x, y)
                logits = forward(x)
                loss = F.cross_entropy(logits, y)
                if c.method == "information" and c.information_beta:
                    loss = loss + c.information_beta * information_kl(model).to(loss.device)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                if lock is not None:
                    lock.heartbeat()  # an epoch may outlast the staleness limit
                sums.add(loss.detach().double() * y.numel(), logits, y)
            total_loss, correct, count = sums.totals()
            val_loss, val_acc = _evaluate(model, val_loader, batch_limit)
            seconds = time.perf_counter() - started
            elapsed += seconds
            record = dict(epoch=epoch, train_loss=total_loss / max(count, 1), train_acc=100.0 * correct / max(count, 1),
                          val_loss=val_loss, val_acc=val_acc, lr=lr, time=seconds)
            history.append(record)
            if val_loss < best["val_loss"]:
                best = {"val_loss": val_loss, "epoch": epoch,
                        "state": _state_copy(model)}
                bad_epochs = 0
            else:
                bad_epochs += 1
            # A NaN / inf training loss never recovers; the epochs left would only
            # burn time until patience runs out, so stop and test the best epoch.
            diverged = not math.isfinite(record["train_loss"])
            if diverged and main:
                tested = (f"the best epoch so far, {best['epoch']}, is tested" if best["state"] is not None
                          else "no epoch had a finite validation loss; the last weights are tested")
                warnings.warn(
                    f"run {str(folder)!r}: training loss {record['train_loss']} in epoch {epoch}; the run "
                    f"diverged and stops here ({tested})",
                    RuntimeWarning, stacklevel=2)
            stopped_early = diverged or (c.patience is not None and bad_epochs >= c.patience)
            done = stopped_early or (c.iterations is not None and step >= c.iterations)
            rng_by_rank = dist_.all_gather_object(_rng_state()) if world > 1 else None
            if main:
                store.save_torch(checkpoint_path, dict(
                    model=model.state_dict(), optimizer=optimizer.state_dict(),
                    guide=guide.state_dict() if guide is not None else None, rng=_rng_state(),
                    epoch=epoch, step=step, history=history, best=best, bad_epochs=bad_epochs, elapsed=elapsed,
                    rng_by_rank=rng_by_rank,
                ))
            bar.update(1)
            bar.set_postfix(val_loss=f"{val_loss:.4f}", val_acc=f"{val_acc:.2f}")
            for callback in callbacks:
                callback(epoch, record, folder)
            epoch += 1
    finally:
        bar.close()

    if best["state"] is not None:
        model.load_state_dict(best["state"])
    test_loss, test_acc = _evaluate(model, test_loader, batch_limit)
    result = RunResult(
        config=c.to_dict(), history=history, best_epoch=best["epoch"], best_val_loss=best["val_loss"],
        test_acc=test_acc, test_loss=test_loss, epochs=len(history), stopped_early=stopped_early,
        time_per_epoch=elapsed / max(len(history), 1), total_time=elapsed, versions=_versions(),
        run_dir=str(folder), world_size=world, trained=True,
    )
    if main:
        store.write_json(result_path, result.to_dict())
    return result


def _field_defaults() -> dict[str, Any]:
    return {f.name: f.default_factory() if f.default is MISSING else f.default for f in fields(TrainConfig)}


# Fields that do not change what a run computes (so a stored run still counts).
_NEUTRAL = ("out", "data_dir", "download")


def _check_same_config(stored: dict[str, Any], c: TrainConfig, folder: Path) -> None:
    current = c.to_dict()
    # A setting added to TrainConfig after the run was stored counts as its default, so
    # finished runs stay valid when the config grows.
    stored = {**_field_defaults(), **stored}
    differ = sorted(k for k in set(stored) | set(current)
                    if k not in _NEUTRAL and stored.get(k) != current.get(k))
    if differ:
        raise ValueError(
            f"run folder {str(folder)!r} holds a run with another config ("
            + ", ".join(f"{k}: stored {stored.get(k)!r}, now {current.get(k)!r}" for k in differ)
            + "); use another out folder or delete that run"
        )
