"""TensorBoard event files of a run: what they hold, and how a resumed run continues them."""

import pytest
import torch
from torch import nn

from ydrop.train import run_dir, train_run
from ydrop.train.tensorboard import TENSORBOARD_DIR, drop_rates, epoch_scalars

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def _events(folder):
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    return events


def test_a_run_logs_its_epochs_and_the_drop_rates_of_its_guided_layers(tiny):
    config = tiny(method="ydrop", method_kwargs={"warmup_epochs": 1}, max_epochs=3, model_kwargs={"hidden": (16, 8)})
    result = train_run(config, progress=False, tensorboard=True)
    events = _events(run_dir(config.resolved()) / TENSORBOARD_DIR)
    scalars = events.Tags()["scalars"]
    for tag in ("loss/train", "loss/validation", "accuracy/train", "accuracy/validation", "lr"):
        assert tag in scalars
        assert [e.step for e in events.Scalars(tag)] == [1, 2, 3]  # epochs counted from 1
    assert [e.value for e in events.Scalars("accuracy/validation")] == pytest.approx(
        [h["val_acc"] for h in result.history])
    # both Y-Drop layers (16 and 8 units): the mean of the EMA and its histogram per epoch
    guided = sorted(tag.split("/", 1)[1] for tag in scalars if tag.startswith("drop_rate_mean/"))
    assert len(guided) == 2 and sorted(events.Tags()["histograms"]) == [f"drop_rate/{n}" for n in guided]
    counts = sorted(events.Histograms(f"drop_rate/{n}")[-1].histogram_value.num for n in guided)
    assert counts == [8, 16]
    means = [e.value for e in events.Scalars(f"drop_rate_mean/{guided[0]}")]
    assert means[0] == pytest.approx(0.35, abs=1e-6) and means[-1] != means[0]  # p0, then the EMA moved


def test_a_resumed_run_writes_the_epochs_of_its_checkpoint_first(tiny):
    class Stop(Exception):
        pass

    def stop_after_first(epoch, record, folder):
        raise Stop

    config = tiny(method="dropout", max_epochs=3)
    with pytest.raises(Stop):
        train_run(config, progress=False, callbacks=[stop_after_first])  # trained without logging
    train_run(config, progress=False, tensorboard=True)
    events = _events(run_dir(config.resolved()) / TENSORBOARD_DIR)
    assert [e.step for e in events.Scalars("loss/train")] == [1, 2, 3]


def test_drop_rates_reads_any_module_with_a_drop_rate_tensor():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("drop_rate", torch.full((4,), 0.2))

    class Lazy(nn.Module):
        drop_rate = torch.empty(0)  # not allocated yet: nothing to log

    model = nn.Sequential(nn.Linear(3, 4), Custom(), Lazy(), nn.Dropout(0.5))
    assert list(drop_rates(model)) == ["1"]
    assert epoch_scalars({"epoch": 0, "train_loss": 1.0, "val_acc": 50.0}) == {"loss/train": 1.0,
                                                                             "accuracy/validation": 50.0}
