"""ydrop.integrations.lightning.GuideCallback on a tiny LightningModule (CPU, a few steps)."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import ydrop

pl = pytest.importorskip("lightning.pytorch")
# Lightning 2.6 on torch 2.13 warns about its own use of a torch pytree API.
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated")
from ydrop.integrations.lightning import GuideCallback  # noqa: E402

WARMUP = 1
EPOCHS = 3
BATCHES = 4  # per epoch


class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), ydrop.YDrop(warmup_epochs=WARMUP, num_units=16,
                                                                          elasticity=0.1),
                                 nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader():
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(16 * BATCHES, 8, generator=g), torch.randint(0, 3, (16 * BATCHES,), generator=g))
    return DataLoader(data, batch_size=16)


def trainer(callbacks, epochs=EPOCHS):
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks)


def test_layers_scored_each_batch_after_warmup_and_checkpoint_round_trip(tmp_path):
    module, callback = Tiny(), GuideCallback()
    layer = module.net[2]
    scored_in = []  # the epoch of every scoring the layer received
    original = layer.set_scores
    layer.set_scores = lambda scores: (scored_in.append(layer.epoch), original(scores))[1]
    fit = trainer([callback])
    fit.fit(module, loader())

    assert scored_in == [e for e in range(WARMUP, EPOCHS) for _ in range(BATCHES)]  # none in warm-up
    assert not layer.in_warmup and layer.epoch == EPOCHS - 1
    assert callback.batches == EPOCHS * BATCHES and callback.scored_batches == (EPOCHS - WARMUP) * BATCHES
    assert not torch.allclose(layer.drop_rate, torch.full_like(layer.drop_rate, layer.p0))  # the EMA moved

    path = tmp_path / "last.ckpt"
    fit.save_checkpoint(path)
    saved = torch.load(path, weights_only=False)["callbacks"][callback.state_key]
    assert saved == callback.state_dict() and saved["guide"] == {"epoch": EPOCHS - 1}

    restored_module, restored = Tiny(), GuideCallback()
    assert restored_module.net[2].in_warmup
    trainer([restored]).fit(restored_module, loader(), ckpt_path=path)  # max_epochs reached: restore only
    assert restored.state_dict() == callback.state_dict()
    assert torch.equal(restored_module.net[2].drop_rate, layer.drop_rate)
    assert restored_module.net[2].epoch == EPOCHS - 1 and not restored_module.net[2].in_warmup


def test_bad_batch_and_arguments_are_named():
    with pytest.raises(ValueError, match="batch_to_xy"):
        GuideCallback().batch_to_xy({"x": 1})
    with pytest.raises(TypeError, match="batch_to_xy must be a callable"):
        GuideCallback(batch_to_xy=3)
    with pytest.raises(TypeError, match=r"unknown keyword argument 'reuse'; .*Guide's: reuse_forward, to_logits"):
        GuideCallback(reuse=False)
    with pytest.raises(TypeError, match=r"network must map the LightningModule to the nn.Module .*returned int 3"):
        GuideCallback(network=lambda module: 3).setup(None, Tiny(), "fit")


def test_a_three_item_batch_reads_its_first_two_only_when_the_second_is_class_indices():
    x, y, mask = torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), torch.zeros(4, 5, dtype=torch.bool)
    read = GuideCallback().batch_to_xy
    assert read((x, y, torch.arange(4)))[1] is y  # (inputs, targets, sample index): the common case
    with pytest.raises(ValueError, match=r"3 items \(float32 \(4, 3\), bool \(4, 5\), int64 \(4,\)\).*batch_to_xy="):
        read((x, mask, y))


def test_ydrop_imports_without_lightning():
    # A stand-in for an environment without the extra: the import system refuses lightning.
    code = (
        "import sys\n"
        "sys.modules['lightning'] = None; sys.modules['lightning.pytorch'] = None\n"
        "import ydrop, ydrop.train, ydrop.cli, ydrop.integrations\n"
        "try:\n"
        "    import ydrop.integrations.lightning\n"
        "except ImportError as exc:\n"
        "    print('refused:', exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr
    assert "refused:" in proc.stdout and "pip install 'ydrop[lightning]'" in proc.stdout


class Keyword(pl.LightningModule):
    """A dict batch and a forward that needs a second argument (the Guide refuses to score without it)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Linear(8, 16)
        self.head = nn.Sequential(nn.ReLU(), ydrop.YDrop(warmup_epochs=0, elasticity=0.1), nn.Linear(16, 3))

    def forward(self, x, scale):
        return self.head(self.stem(x) * scale.unsqueeze(1))

    def training_step(self, batch, batch_idx):
        return F.cross_entropy(self(batch["x"], scale=batch["scale"]), batch["y"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_dict_batch_gives_the_guide_the_forward_arguments():
    g = torch.Generator().manual_seed(2)
    rows = [{"x": torch.randn(8, generator=g), "scale": torch.rand((), generator=g) + 0.5,
             "y": torch.randint(0, 3, (), generator=g)} for _ in range(32)]
    module = Keyword()
    with pytest.raises(ValueError, match=r"batch of type dict with keys \['x', 'scale', 'y'\].*batch_to_xy"):
        trainer([GuideCallback()], epochs=1).fit(module, DataLoader(rows, batch_size=16))
    callback = GuideCallback(batch_to_xy=lambda b: (b["x"], b["y"], {"scale": b["scale"]}))
    trainer([callback], epochs=1).fit(module, DataLoader(rows, batch_size=16))
    assert callback.scored_batches == 2 and module.head[1].mean_score.numel() == 16
    with pytest.raises(TypeError, match=r"batch_to_xy must return \(inputs, targets\) or .*got tuple \(Tensor, "):
        bad = GuideCallback(batch_to_xy=lambda b: (b["x"], b["y"], b["scale"]))
        trainer([bad], epochs=1).fit(Keyword(), DataLoader(rows, batch_size=16))
