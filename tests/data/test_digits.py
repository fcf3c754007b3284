"""The embedded digits dataset: fixed seeded 1437/360 split, exact pixels, stats from train."""

from __future__ import annotations

import numpy as np
import torch

from ydrop.data import dataset_info, load_dataset


def test_digits_split_and_values():
    from sklearn.datasets import load_digits

    train, test = load_dataset("digits"), load_dataset("digits", split="test")
    assert train.images.shape == (1437, 1, 8, 8) and test.images.shape == (360, 1, 8, 8)
    bunch = load_digits()
    all_images = torch.from_numpy(bunch.images.astype(np.float32)) / 16
    perm = np.random.RandomState(0).permutation(1797)
    test_idx, train_idx = np.sort(perm[:360]), np.sort(perm[360:])
    assert torch.equal(test.images[:, 0], all_images[test_idx])
    assert torch.equal(train.labels, torch.from_numpy(bunch.target[train_idx]).long())
    assert len(set(test_idx) | set(train_idx)) == 1797  # disjoint and complete
    assert train.images.min() == 0 and train.images.max() == 1
    assert test.labels.bincount(minlength=10).min() > 20  # every class present in the test split


def test_digits_info_from_train_split():
    info = dataset_info("digits")
    train = load_dataset("digits")
    assert info.in_shape == (1, 8, 8) and info.num_classes == 10
    assert abs(info.mean[0] - train.images.double().mean().item()) < 1e-9
    assert abs(info.std[0] - train.images.double().std(unbiased=False).item()) < 1e-9
    assert load_dataset("digits", split="test").info == info


def test_digits_needs_no_root_and_ignores_download():
    assert len(load_dataset("digits", root=None, download=False)) == 1437
