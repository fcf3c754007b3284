"""IDX reading (MNIST, Fashion-MNIST): exact values, gz and raw, and every kind of damage."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from ydrop.data import DatasetFormatError, load_dataset
from ydrop.data.idx import read_idx, read_idx_images, read_idx_labels

from _data_formats import idx_bytes, random_idx_split, write_bytes, write_mnist


@pytest.fixture
def mnist_root(tmp_path):
    rng = np.random.default_rng(0)
    splits = {"train": random_idx_split(rng, 12), "test": random_idx_split(rng, 5)}
    for split, (x, y) in splits.items():
        write_mnist(tmp_path / "mnist", split, x, y, gz=True)
    return tmp_path, splits


@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_gz_loads_exactly(mnist_root, split):
    root, splits = mnist_root
    x, y = splits[split]
    ds = load_dataset("mnist", root, split=split, download=False)
    assert ds.images.shape == (len(y), 1, 28, 28) and ds.images.dtype == torch.float32
    assert ds.labels.dtype == torch.int64
    assert torch.equal(ds.labels, torch.from_numpy(y.astype(np.int64)))
    assert torch.equal(ds.images, torch.from_numpy(x[:, None].astype(np.float32)) / 255)
    assert ds.info.name == "mnist" and ds.info.in_shape == (1, 28, 28) and ds.split == split


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_uncompressed_variant_loads(tmp_path, name):
    x, y = random_idx_split(np.random.default_rng(1), 7)
    write_mnist(tmp_path / name, "test", x, y, gz=False)
    ds = load_dataset(name, tmp_path, split="test", download=False)
    assert torch.equal(ds.labels, torch.from_numpy(y.astype(np.int64)))
    assert torch.equal((ds.images * 255).round().to(torch.uint8)[:, 0], torch.from_numpy(x))
    assert ds.info.class_names[0] == ("0" if name == "mnist" else "T-shirt/top")


def test_read_idx_generic_types(tmp_path):
    path = tmp_path / "a.idx"
    # int32 big-endian, 2 dims
    values = (np.arange(6).reshape(2, 3) - 3).astype(">i4")
    path.write_bytes(bytes([0, 0, 0x0C, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + values.tobytes())
    magic, array = read_idx(path)
    assert magic == 0x00000C02 and array.tolist() == [[-3, -2, -1], [0, 1, 2]]


def test_truncated_idx(tmp_path):
    x, _ = random_idx_split(np.random.default_rng(2), 4)
    path = write_bytes(tmp_path / "train-images-idx3-ubyte", idx_bytes(x)[:-10])
    with pytest.raises(DatasetFormatError, match=r"train-images-idx3-ubyte: truncated.*\(4, 28, 28\) = 3136 bytes.*3126"):
        read_idx_images(path)


def test_trailing_data_idx(tmp_path):
    path = write_bytes(tmp_path / "labels", idx_bytes(np.zeros(3, np.uint8)) + b"xx")
    with pytest.raises(DatasetFormatError, match="trailing data"):
        read_idx_labels(path)


def test_truncated_header(tmp_path):
    path = write_bytes(tmp_path / "x", idx_bytes(np.zeros((2, 2, 2), np.uint8))[:9])
    with pytest.raises(DatasetFormatError, match="truncated header"):
        read_idx(path)
    write_bytes(path, b"\x00\x00")
    with pytest.raises(DatasetFormatError, match="too short"):
        read_idx(path)


def test_wrong_magic(tmp_path):
    bad = write_bytes(tmp_path / "bad", b"\x12\x34\x56\x78" + bytes(20))
    with pytest.raises(DatasetFormatError, match=r"bad magic number 0x12345678"):
        read_idx(bad)
    # a valid label file where an image file is expected
    labels = write_bytes(tmp_path / "labels.gz", idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(DatasetFormatError, match=r"magic number 0x00000801, expected 0x00000803"):
        read_idx_images(labels)


def test_corrupted_gzip(tmp_path):
    content = gzip.compress(idx_bytes(np.arange(4000, dtype=np.uint8).reshape(10, 20, 20) % 7), mtime=0)
    flipped = bytearray(content)
    flipped[len(flipped) // 2] ^= 0xFF
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(bytes(flipped))
    with pytest.raises(DatasetFormatError, match=r"train-images-idx3-ubyte.gz: (corrupted gzip|the gzip stream)"):
        read_idx(path)
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(DatasetFormatError, match=r"train-images-idx3-ubyte.gz: the gzip stream is truncated"):
        read_idx(path)
    path.write_bytes(b"<html>not found</html>")
    with pytest.raises(DatasetFormatError, match="not a gzip file"):
        read_idx(path)


def test_count_mismatch_and_bad_labels(tmp_path):
    rng = np.random.default_rng(3)
    x, y = random_idx_split(rng, 6)
    write_mnist(tmp_path / "mnist", "train", x, y[:5])
    with pytest.raises(DatasetFormatError, match="holds 6 images but .*train-labels-idx1-ubyte.gz holds 5 labels"):
        load_dataset("mnist", tmp_path, download=False)
    write_mnist(tmp_path / "mnist", "train", x, np.full(6, 10, np.uint8))
    with pytest.raises(DatasetFormatError, match=r"label 10 found, expected 0..9"):
        load_dataset("mnist", tmp_path, download=False)
    write_mnist(tmp_path / "mnist", "train", x[:, :20, :20], y)
    with pytest.raises(DatasetFormatError, match=r"images of size \(20, 20\), expected \(28, 28\)"):
        load_dataset("mnist", tmp_path, download=False)


def test_damaged_file_error_suggests_fresh_download(tmp_path):
    x, y = random_idx_split(np.random.default_rng(4), 3)
    images, _ = write_mnist(tmp_path / "mnist", "test", x, y)
    images.write_bytes(images.read_bytes()[:-5])
    with pytest.raises(DatasetFormatError) as err:
        load_dataset("mnist", tmp_path, split="test", download=False)
    assert str(images) in str(err.value) and "delete it" in str(err.value)
