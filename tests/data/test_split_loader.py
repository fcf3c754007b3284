"""train_val_split, normalize and BatchLoader."""

from __future__ import annotations

import pytest
import torch

from ydrop.data import BatchLoader, DatasetInfo, ImageDataset, PadCropFlip, dataset_info, normalize, train_val_split


def _dataset(n=103, c=3, size=4):
    info = DatasetInfo("toy", 5, (c, size, size), (0.5,) * c, (0.25,) * c)
    images = torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(0))
    images[:, :, 0, 0] = torch.arange(n).view(n, 1) / 1000  # sample id readable from a pixel
    return ImageDataset(images, torch.arange(n) % 5, info, split="train")


def _ids(x):
    return (x[:, 0, 0, 0] * 1000).round().long()


def test_split_sizes_disjoint_seeded():
    ds = _dataset()
    train, val = train_val_split(ds, 0.25, seed=3)
    assert (len(train), len(val)) == (77, 26) and (train.split, val.split) == ("train", "val")
    ids_t, ids_v = set(_ids(train.images).tolist()), set(_ids(val.images).tolist())
    assert not ids_t & ids_v and ids_t | ids_v == set(range(103))
    assert torch.equal(train.labels, _ids(train.images) % 5)  # images and labels stay paired
    again, _ = train_val_split(ds, 0.25, seed=3)
    other, _ = train_val_split(ds, 0.25, seed=4)
    assert torch.equal(again.images, train.images) and not torch.equal(other.images, train.images)
    assert train.info is ds.info


def test_split_errors():
    ds = _dataset(n=3)
    with pytest.raises(ValueError, match=r"val_fraction must be a number in \(0, 1\), got 1.0"):
        train_val_split(ds, 1.0)
    with pytest.raises(ValueError, match="leaves 0 for validation"):
        train_val_split(ds, 0.1)


def test_normalize_per_channel():
    info = DatasetInfo("t", 2, (2, 1, 1), (0.1, 0.5), (0.5, 0.25))
    x = torch.tensor([[[[0.6]], [[1.0]]]])
    assert torch.allclose(normalize(x, info), torch.tensor([[[[1.0]], [[2.0]]]]))
    assert normalize(x[0], info).shape == (2, 1, 1)
    with pytest.raises(ValueError, match="images have 3 channels but info .mnist. has statistics for 1"):
        normalize(torch.zeros(1, 3, 2, 2), dataset_info("mnist"))


def test_loader_batches_lengths_and_normalisation():
    ds = _dataset()
    loader = BatchLoader(ds, batch_size=10)
    batches = list(loader)
    assert len(loader) == len(batches) == 11 and batches[-1][0].shape == (3, 3, 4, 4)
    assert len(BatchLoader(ds, 10, drop_last=True)) == 10 == len(list(BatchLoader(ds, 10, drop_last=True)))
    x = torch.cat([b[0] for b in batches])
    assert torch.allclose(x, (ds.images - 0.5) / 0.25) and torch.equal(torch.cat([b[1] for b in batches]), ds.labels)
    raw = next(iter(BatchLoader(ds, 10, normalize=False)))[0]
    assert torch.equal(raw, ds.images[:10])


def test_loader_shuffle_is_function_of_seed_and_epoch():
    ds = _dataset()
    def order(loader):
        return torch.cat([_ids(x * 0.25 + 0.5) for x, _ in loader])

    a = BatchLoader(ds, 16, shuffle=True, seed=1)
    first, second = order(a), order(a)  # each loop is a new epoch
    assert sorted(first.tolist()) == list(range(103)) and not torch.equal(first, second)
    resumed = BatchLoader(ds, 16, shuffle=True, seed=1)
    resumed.set_epoch(1)
    assert torch.equal(order(resumed), second) and resumed.epoch == 2
    assert not torch.equal(order(BatchLoader(ds, 16, shuffle=True, seed=2)), first)
    assert torch.equal(order(BatchLoader(ds, 16, shuffle=False)), torch.arange(103))


def test_loader_augmentation_reproducible():
    ds = _dataset()
    def run(epoch):
        loader = BatchLoader(ds, 32, shuffle=True, seed=0, augment=PadCropFlip(padding=1))
        loader.set_epoch(epoch)
        return torch.cat([x for x, _ in loader])

    assert torch.equal(run(3), run(3)) and not torch.equal(run(3), run(4))


def test_loader_argument_errors():
    ds = _dataset()
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        BatchLoader(ds, 0)
    with pytest.raises(ValueError, match="device must be a torch device"):
        BatchLoader(ds, 4, device="gpu0")
    with pytest.raises(TypeError, match="dataset must be an ImageDataset"):
        BatchLoader([1, 2], 4)
    with pytest.raises(ValueError, match="epoch must be an integer >= 0, got -1"):
        BatchLoader(ds, 4).set_epoch(-1)
