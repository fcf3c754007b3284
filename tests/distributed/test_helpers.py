"""ydrop.distributed in a single process: every helper is a no-op, nothing is started."""

import pytest
import torch
from torch import nn

from ydrop import distributed as d


def test_single_process_helpers_return_their_input():
    assert (d.is_distributed(), d.rank(), d.world_size(), d.is_main_process()) == (False, 0, 1, True)
    t = torch.arange(6.0).reshape(3, 2)
    assert d.all_reduce_mean(t) is t and d.all_reduce_sum(t) is t and d.broadcast_from_main(t) is t
    assert d.shard_rows(t, t[:, 0])[0] is t
    assert d.broadcast_object({"a": 1}) == {"a": 1} and d.all_gather_object(3) == [3]


def test_process_group_outside_torchrun_starts_nothing(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with d.process_group("cpu") as active:
        assert active is False and not d.is_distributed()
    with pytest.raises(ValueError, match="device must be one of 'auto', 'cpu', 'cuda'; got 'tpu'"):
        with d.process_group("tpu"):
            pass


def test_unwrap_model_sees_through_wrappers():
    net = nn.Linear(2, 2)
    assert d.unwrap_model(nn.DataParallel(net)) is net and d.unwrap_model(net) is net
