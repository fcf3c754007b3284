"""Helpers for ``torch.distributed``: no-ops in a single process.

Y-Drop ranks units by their *mean* conductance over the batch and draws one pair of
bucket rates per step; both feed the EMA buffer ``drop_rate``. Under
``DistributedDataParallel`` every rank sees another shard of the batch and has its
own random stream, so without communication the ranks would rank different units,
draw different rates and their buffers would drift apart. The Y-Drop layer therefore
averages the mean scores over ranks (:func:`all_reduce_mean`) and takes rank 0's rate
draws (:func:`broadcast_from_main`). Excitation and Activation Dropout act per sample
and need neither.

Every function here returns its input untouched (and costs nothing) when
``torch.distributed`` is unavailable or no process group is initialised, so the
library's single-process behaviour and results do not change.

:func:`process_group` starts the process group of a ``torchrun`` launch: gloo on the
CPU, nccl on CUDA.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "is_distributed",
    "rank",
    "world_size",
    "local_rank",
    "is_main_process",
    "all_reduce_mean",
    "all_reduce_sum",
    "broadcast_from_main",
    "broadcast_object",
    "all_gather_object",
    "launched_by_torchrun",
    "process_group",
    "unwrap_model",
    "shard_rows",
]

T = TypeVar("T")


def is_distributed() -> bool:
    """True inside an initialised process group (even a group of one)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 in a single process)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes in the group (1 in a single process)."""
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """Rank on this machine (``LOCAL_RANK`` set by torchrun; 0 otherwise): picks the GPU."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """True on rank 0, the process that writes files and prints."""
    return rank() == 0


def all_reduce_mean(tensor: Tensor) -> Tensor:
    """The element-wise mean of ``tensor`` over all ranks (a new tensor; the input unchanged).

    Every rank receives the same bits, so decisions taken from the result (which units
    are strong) agree everywhere. Single process: returns ``tensor`` itself.
    """
    if world_size() == 1:
        return tensor
    total = tensor.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total.div_(world_size())


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """The element-wise sum of ``tensor`` over all ranks (a new tensor). Single process: ``tensor``."""
    if world_size() == 1:
        return tensor
    total = tensor.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def broadcast_from_main(tensor: Tensor) -> Tensor:
    """Rank 0's value of ``tensor`` on every rank (a new tensor). Single process: ``tensor``."""
    if world_size() == 1:
        return tensor
    shared = tensor.detach().clone()
    dist.broadcast(shared, src=0)
    return shared


def broadcast_object(obj: T) -> T:
    """Rank 0's ``obj`` (any picklable value) on every rank: one decision for all."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` in a single process)."""
    if world_size() == 1:
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def launched_by_torchrun() -> bool:
    """True when the environment of a torchrun worker (RANK, WORLD_SIZE, MASTER_ADDR) is set."""
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


@contextlib.contextmanager
def process_group(device: str = "auto") -> Iterator[bool]:
    """Initialise the process group of a torchrun launch for the block; yields whether one is active.

    ``device``: "cpu" selects gloo, "cuda" nccl (and the GPU ``LOCAL_RANK``), "auto"
    nccl when CUDA is available. Outside torchrun, or when the caller already
    initialised a group, nothing is started or destroyed.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be one of 'auto', 'cpu', 'cuda'; got {device!r}")
    if is_distributed() or not launched_by_torchrun() or not dist.is_available():
        yield is_distributed()
        return
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    try:
        yield True
        # Every rank reaches this point before any tears the group down: a gloo rank
        # that exits while its peer still talks to it aborts ("terminate called
        # without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


def unwrap_model(model: nn.Module) -> nn.Module:
    """The network inside ``DistributedDataParallel`` / ``DataParallel`` and
    ``torch.compile`` wrappers (in any nesting); else ``model``."""
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    while True:
        if isinstance(model, wrappers):
            model = model.module
        elif _is_compile_wrapper(model):
            model = next(model.children())
        else:
            return model


def _is_compile_wrapper(model: nn.Module) -> bool:
    """Whether ``model`` is what ``torch.compile(module)`` returns: a wrapper whose
    one child is the original module (told by its class, torch has no public name
    for it; ``module.compile()`` compiles in place and needs no unwrapping)."""
    kind = type(model)
    return kind.__name__ == "OptimizedModule" and kind.__module__.startswith("torch._dynamo")


def shard_rows(*tensors: Tensor) -> tuple[Tensor, ...]:
    """This rank's contiguous share of the rows of each tensor (all of them in a single process).

    Every rank iterates the same batches (same seed); rank r keeps the r-th of
    ``world_size()`` nearly equal slices, so the ranks together see the batch exactly
    once. A slice may be empty when a batch has fewer rows than there are ranks.
    """
    if world_size() == 1:
        return tensors
    return tuple(torch.tensor_split(t, world_size())[rank()] for t in tensors)
