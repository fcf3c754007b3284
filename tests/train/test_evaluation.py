import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ydrop.train import loss_and_accuracy


def _batches(n_batches=3, size=7, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 5, generator=g), torch.randint(0, classes, (size,), generator=g))
            for _ in range(n_batches)]


def test_mean_loss_and_accuracy_over_all_samples_in_eval_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.5), nn.Linear(8, 4)).train()
    batches = _batches()
    loss, acc = loss_and_accuracy(model, batches)
    assert not model.training  # dropout off: the same figures twice
    assert (loss, acc) == loss_and_accuracy(model, batches)
    x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    with torch.no_grad():
        logits = model(x)
    assert loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert acc == pytest.approx(100.0 * (logits.argmax(1) == y).float().mean().item())


def test_limit_reads_only_the_first_batches_and_heartbeat_is_called_per_batch():
    model = nn.Linear(5, 4)
    batches = _batches(n_batches=4)
    beats = []
    assert loss_and_accuracy(model, batches, limit=2, heartbeat=lambda: beats.append(1)) == loss_and_accuracy(
        model, batches[:2])
    assert len(beats) == 2
