"""SVHN .mat files and STL-10 binaries: exact layout, labels, and damage."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import torch

from ydrop.data import DatasetFormatError, load_dataset

from _data_formats import stl10_x_bytes, tar_gz


def _write_svhn(path, images_nchw, digits):
    """The official layout: X (32, 32, 3, N) uint8, y (N, 1) with 10 for the digit 0."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.ascontiguousarray(images_nchw.transpose(2, 3, 1, 0))
    y = np.where(digits == 0, 10, digits).astype(np.uint8).reshape(-1, 1)
    scipy.io.savemat(path, {"X": x, "y": y})


@pytest.mark.parametrize("split", ["train", "test", "extra"])
def test_svhn_loads_exactly(tmp_path, split):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 3, 32, 32), dtype=np.uint8)
    digits = np.array([0, 1, 9, 0, 5])
    _write_svhn(tmp_path / "svhn" / f"{split}_32x32.mat", images, digits)
    ds = load_dataset("svhn", tmp_path, split=split, download=False)
    assert ds.images.shape == (5, 3, 32, 32)
    assert ds.labels.tolist() == [0, 1, 9, 0, 5]  # label 10 in the file is the digit 0
    assert torch.equal(ds.images, torch.from_numpy(images.astype(np.float32)) / 255)


def test_svhn_height_width_not_swapped(tmp_path):
    images = np.zeros((1, 3, 32, 32), np.uint8)
    images[0, 2, 3, 30] = 255  # blue, row 3, column 30
    # written by hand in the file's (H, W, C, N) order
    x = np.zeros((32, 32, 3, 1), np.uint8)
    x[3, 30, 2, 0] = 255
    (tmp_path / "svhn").mkdir()
    scipy.io.savemat(tmp_path / "svhn" / "test_32x32.mat", {"X": x, "y": np.array([[3]], np.uint8)})
    ds = load_dataset("svhn", tmp_path, split="test", download=False)
    assert ds.images[0, 2, 3, 30] == 1.0 and ds.images.sum() == 1.0


def test_svhn_damage(tmp_path):
    path = tmp_path / "svhn" / "train_32x32.mat"
    _write_svhn(path, np.zeros((3, 3, 32, 32), np.uint8), np.array([1, 2, 3]))
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(DatasetFormatError, match=r"train_32x32.mat: not a readable MATLAB .mat file"):
        load_dataset("svhn", tmp_path, download=False)
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 3), np.uint8), "y": np.ones((2, 1), np.uint8)})
    with pytest.raises(DatasetFormatError, match=r"'X' holds 3 images but 'y' has shape \(2, 1\)"):
        load_dataset("svhn", tmp_path, download=False)
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[0], [4]], np.uint8)})
    with pytest.raises(DatasetFormatError, match=r"expected 1..10"):
        load_dataset("svhn", tmp_path, download=False)
    scipy.io.savemat(path, {"X": np.zeros((28, 28, 3, 2), np.uint8), "y": np.ones((2, 1), np.uint8)})
    with pytest.raises(DatasetFormatError, match=r"shape \(32, 32, 3, N\)"):
        load_dataset("svhn", tmp_path, download=False)
    scipy.io.savemat(path, {"images": np.zeros((2,), np.uint8)})
    with pytest.raises(DatasetFormatError, match="no variable 'X'"):
        load_dataset("svhn", tmp_path, download=False)


def _stl10_files(rng, n):
    images = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
    labels = rng.integers(0, 10, n)
    return images, labels, stl10_x_bytes(images), (labels + 1).astype(np.uint8).tobytes()


@pytest.mark.parametrize("from_archive", [False, True])
def test_stl10_loads_exactly(tmp_path, from_archive):
    rng = np.random.default_rng(1)
    images, labels, x_bin, y_bin = _stl10_files(rng, 3)
    members = {"stl10_binary/test_X.bin": x_bin, "stl10_binary/test_y.bin": y_bin}
    if from_archive:
        tar_gz(tmp_path / "stl-10" / "stl10_binary.tar.gz", members)
    else:
        for name, content in members.items():
            (tmp_path / "stl-10" / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "stl-10" / name).write_bytes(content)
    ds = load_dataset("stl10", tmp_path, split="test", download=False)
    assert ds.images.shape == (3, 3, 96, 96) and ds.info.in_shape == (3, 96, 96)
    assert torch.equal(ds.labels, torch.from_numpy(labels.astype(np.int64)))
    assert torch.equal(ds.images, torch.from_numpy(images.astype(np.float32)) / 255)


def test_stl10_is_column_major():
    from ydrop.data.stl10 import decode_stl10

    x = np.zeros(3 * 96 * 96, np.uint8)
    x[96 * 96 + 1] = 255  # green channel, second byte: column 0, row 1 in column-major order
    images, labels = decode_stl10(x.tobytes(), bytes([10]), "x", "y")
    assert images[0, 1, 1, 0] == 255 and images.sum() == 255 and labels.tolist() == [9]


def test_stl10_damage(tmp_path):
    rng = np.random.default_rng(2)
    _, _, x_bin, y_bin = _stl10_files(rng, 2)
    folder = tmp_path / "stl-10" / "stl10_binary"
    folder.mkdir(parents=True)
    (folder / "train_X.bin").write_bytes(x_bin[:-100])
    (folder / "train_y.bin").write_bytes(y_bin)
    with pytest.raises(DatasetFormatError, match=r"train_X.bin: 55196 bytes, not a positive multiple of 27648"):
        load_dataset("stl10", tmp_path, download=False)
    (folder / "train_X.bin").write_bytes(x_bin)
    (folder / "train_y.bin").write_bytes(y_bin[:1])
    with pytest.raises(DatasetFormatError, match=r"train_y.bin: 1 labels, but .*train_X.bin holds 2 images"):
        load_dataset("stl10", tmp_path, download=False)
    (folder / "train_y.bin").write_bytes(bytes([0, 3]))
    with pytest.raises(DatasetFormatError, match=r"labels in \[0, 3\], expected 1..10"):
        load_dataset("stl10", tmp_path, download=False)


def test_svhn_reader_accepts_row_labels_and_refuses_the_rest(tmp_path, monkeypatch):
    from ydrop.data.svhn import read_svhn_mat

    path = tmp_path / "s.mat"
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[10, 4]], np.uint8)})
    images, labels = read_svhn_mat(path)  # y stored as (1, N): read as N labels
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [0, 4] and labels.dtype == np.int64
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 2), np.float32), "y": np.ones((2, 1), np.uint8)})
    with pytest.raises(DatasetFormatError, match=r"'X' must be a uint8 array of shape \(32, 32, 3, N\), got float32"):
        read_svhn_mat(path)
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.ones((2, 2), np.uint8)})
    with pytest.raises(DatasetFormatError, match=r"'X' holds 4 images but 'y' has shape \(2, 2\), expected \(4, 1\)"):
        read_svhn_mat(path)
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 1), np.uint8)})
    with pytest.raises(DatasetFormatError, match=r"s.mat: the file has no variable 'y' \(an SVHN file holds 'X' and 'y'\)"):
        read_svhn_mat(path)
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 1), np.uint8), "y": np.array([[11]], np.uint8)})
    with pytest.raises(DatasetFormatError, match=r"'y' holds values in \[11, 11\], expected 1..10 \(10 stands for digit 0\)"):
        read_svhn_mat(path)

    def v73(*_args, **_kwargs):
        raise NotImplementedError("Please use HDF reader for matlab v7.3 files")

    monkeypatch.setattr(scipy.io, "loadmat", v73)
    with pytest.raises(DatasetFormatError, match=r"s.mat: MATLAB v7.3 \(HDF5\) files are not supported"):
        read_svhn_mat(path)
