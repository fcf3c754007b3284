"""The real MNIST, Fashion-MNIST and CIFAR-10 files of ``<repo>/../shared/data``.

Skipped only when that folder (or the dataset's sub-folder) is absent. Loaded with
download=False, so nothing is written into the shared folder.
"""

from __future__ import annotations

import pytest

from ydrop.data import dataset_info, load_dataset

from _data_formats import SHARED_DATA

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _need(sub):
    return pytest.mark.skipif(not (SHARED_DATA / sub).is_dir(), reason=f"{SHARED_DATA / sub} is absent")


@_need("mnist")
def test_real_mnist():
    train = load_dataset("mnist", SHARED_DATA, "train", download=False)
    test = load_dataset("mnist", SHARED_DATA, "test", download=False)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.labels.bincount().tolist() == MNIST_TRAIN_COUNTS
    assert test.labels.bincount().tolist() == MNIST_TEST_COUNTS
    assert train.labels[:5].tolist() == [5, 0, 4, 1, 9] and test.labels[:3].tolist() == [7, 2, 1]
    # the published normalisation statistics are those of the train pixels
    assert abs(train.images.mean().item() - dataset_info("mnist").mean[0]) < 1e-4
    assert abs(train.images.std().item() - dataset_info("mnist").std[0]) < 1e-4


@_need("fashion-mnist")
def test_real_fashion_mnist():
    train = load_dataset("fashion-mnist", SHARED_DATA, "train", download=False)
    test = load_dataset("fashion-mnist", SHARED_DATA, "test", download=False)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.labels.bincount().tolist() == [6000] * 10 and test.labels.bincount().tolist() == [1000] * 10
    assert train.labels[:3].tolist() == [9, 0, 0]  # ankle boot, T-shirt, T-shirt
    assert abs(train.images.mean().item() - 0.2860) < 1e-4 and abs(train.images.std().item() - 0.3530) < 1e-4


@_need("cifar-10")
def test_real_cifar10_test_batch():
    # only test_batch: read from the 170 MB archive in memory (about 1-2 s, nothing extracted)
    test = load_dataset("cifar10", SHARED_DATA, "test", download=False)
    assert test.images.shape == (10000, 3, 32, 32)
    assert test.labels.bincount().tolist() == [1000] * 10
    assert test.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert abs(test.images[:, 0].mean().item() - 0.4942) < 2e-3  # red mean of the test split
