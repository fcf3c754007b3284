"""Worker of test_ddp.py, started by ``torchrun --nproc_per_node 2`` (gloo, CPU).

Writes a JSON report into the folder given as argv[1] (rank 0 only):

* ``synced``: after each of several DDP steps (``broadcast_buffers=False``), whether
  the Y-Drop ``drop_rate`` buffers of both ranks are identical, and whether the
  parameters are identical after training;
* ``unsynced``: the same run with the cross-rank synchronisation of the Y-Drop layer
  switched off, which must diverge (else the first check proves nothing);
* ``compiled``: the ``synced`` run with ``torch.compile(ddp_model)`` and a Guide
  scoring in a separate pass (the masks drawn by the compiled mask op);
* ``train_run``: per rank, how many files ``train_run`` wrote, its metrics and a hash
  of the trained weights.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import ydrop
from ydrop import distributed as dist_
from ydrop.layers import ydrop as ydrop_layer

STEPS = 5


def _net() -> nn.Module:
    torch.manual_seed(0)  # the same initial weights on both ranks
    return nn.Sequential(nn.Linear(12, 32), nn.ReLU(), ydrop.YDrop(warmup_epochs=0, elasticity=0.2),
                         nn.Linear(32, 32), nn.ReLU(), ydrop.YDrop(warmup_epochs=0, elasticity=0.2),
                         nn.Linear(32, 4))


def _buffers(net: nn.Module) -> list[list[float]]:
    return [m.drop_rate.tolist() for m in net.modules() if isinstance(m, ydrop.YDrop)]


def _train_guided(rank: int, compiled: bool = False) -> dict:
    """STEPS DDP steps on rank-specific data and random streams; buffers compared every step."""
    net = _net()
    model = nn.parallel.DistributedDataParallel(net, broadcast_buffers=False)
    if compiled:
        torch.compiler.reset()
        model = torch.compile(model)
    guide = ydrop.Guide(model, reuse_forward=not compiled)
    guide.set_epoch(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = torch.Generator().manual_seed(100 + rank)
    torch.manual_seed(1000 + rank)  # different dropout masks and bucket draws per rank
    same_buffers = []
    for _ in range(STEPS):
        x = torch.randn(30, 12, generator=data)
        y = torch.randint(0, 4, (30,), generator=data)
        guide.step(x, y)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        gathered = dist_.all_gather_object(_buffers(net))
        same_buffers.append(gathered[0] == gathered[1])
    params = dist_.all_gather_object([p.detach().tolist() for p in net.parameters()])
    moved = any(b != [0.35] * len(b) for b in _buffers(net))  # the EMA did move away from p0
    return {"same_buffers": same_buffers, "same_params": params[0] == params[1], "buffers_moved": moved}


def _train_run(out: Path) -> dict:
    """ydrop.train.train_run under DDP, counting each rank's file writes."""
    from ydrop.train import TrainConfig, run, store

    writes = []
    original = store.atomic_write

    def counting(path, write):
        writes.append(Path(path).name)
        original(path, write)

    store.atomic_write = counting
    models = []
    original_create = run.create
    run.create = lambda *a, **k: models.append(original_create(*a, **k)) or models[-1]
    try:
        config = TrainConfig(method="ydrop", out=str(out), model_kwargs={"hidden": (16,)}, max_epochs=3,
                             device="cpu", method_kwargs={"warmup_epochs": 1})
        result = run.train_run(config, progress=False)
    finally:
        store.atomic_write, run.create = original, original_create
    # The trained model: train_run first builds one on the meta device to check the kwargs.
    trained = next(m for m in models if next(m.parameters()).device.type != "meta")
    weights = torch.cat([t.flatten().float() for t in [*trained.parameters(), *trained.buffers()]])
    return {"writes": writes, "metrics": result.metrics(), "weights": weights.tolist(),
            "world_size": result.world_size}


def main() -> None:
    report_dir = Path(sys.argv[1])
    with dist_.process_group("cpu") as active:
        assert active and dist_.world_size() == 2
        rank = dist_.rank()
        report = {"synced": _train_guided(rank), "compiled": _train_guided(rank, compiled=True)}
        sync = (ydrop_layer.all_reduce_mean, ydrop_layer.broadcast_from_main)
        ydrop_layer.all_reduce_mean = ydrop_layer.broadcast_from_main = lambda t: t
        try:
            report["unsynced"] = _train_guided(rank)
        finally:
            ydrop_layer.all_reduce_mean, ydrop_layer.broadcast_from_main = sync
        report["train_run"] = dist_.all_gather_object(_train_run(report_dir / "runs"))
        if rank == 0:
            (report_dir / "report.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
