"""CIFAR-10/100 pickles: extracted folder, tar.gz read in memory or extracted, and damage."""

from __future__ import annotations

import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch

from ydrop.data import DatasetFormatError, load_dataset
from ydrop.data.archive import extract_tar_members
from ydrop.data.cifar import read_cifar_batch

from _data_formats import cifar_batch_bytes, tar_gz

N = 4  # images per batch file


def _batch(rng, label_key="labels", num_classes=10, n=N):
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = rng.integers(0, num_classes, n)
    return data, labels, cifar_batch_bytes(data, labels, label_key)


@pytest.fixture
def cifar10_members():
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batches = {name: _batch(rng) for name in names}
    members = {f"cifar-10-batches-py/{name}": b[2] for name, b in batches.items()}
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({"label_names": ["airplane"] * 10}, protocol=2)
    return batches, members


def _expected(batches, names):
    data = np.concatenate([batches[n][0] for n in names]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([batches[n][1] for n in names])
    return torch.from_numpy(data.astype(np.float32)) / 255, torch.from_numpy(labels.astype(np.int64))


def _check(ds, batches, split):
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    images, labels = _expected(batches, names)
    assert ds.images.shape == (len(names) * N, 3, 32, 32)
    assert torch.equal(ds.images, images) and torch.equal(ds.labels, labels)


def test_layout_is_red_then_green_then_blue():
    data = np.zeros((1, 3072), np.uint8)
    data[0, :1024] = 10  # red plane
    data[0, 1024 + 32 * 2 + 5] = 200  # green, row 2, column 5
    images, labels = read_cifar_batch(cifar_batch_bytes(data, [7]), "mem", "labels", 10)
    assert images.shape == (1, 3, 32, 32) and labels.tolist() == [7]
    assert (images[0, 0] == 10).all() and images[0, 1, 2, 5] == 200 and images[0, 1].sum() == 200


@pytest.mark.parametrize("split", ["train", "test"])
def test_extracted_folder(tmp_path, cifar10_members, split):
    batches, members = cifar10_members
    for name, content in members.items():
        (tmp_path / "cifar-10" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "cifar-10" / name).write_bytes(content)
    _check(load_dataset("cifar10", tmp_path, split=split, download=False), batches, split)


def test_archive_read_in_memory_without_writing(tmp_path, cifar10_members):
    batches, members = cifar10_members
    tar_gz(tmp_path / "cifar-10" / "cifar-10-python.tar.gz", members)
    before = sorted(p.name for p in (tmp_path / "cifar-10").iterdir())
    _check(load_dataset("cifar10", tmp_path, split="train", download=False), batches, "train")
    assert sorted(p.name for p in (tmp_path / "cifar-10").iterdir()) == before  # nothing extracted


def test_archive_extracted_when_download_allowed(tmp_path, cifar10_members):
    batches, members = cifar10_members
    tar_gz(tmp_path / "cifar-10" / "cifar-10-python.tar.gz", members)
    _check(load_dataset("cifar10", tmp_path, split="test", download=True), batches, "test")
    extracted = tmp_path / "cifar-10" / "cifar-10-batches-py"
    assert sorted(p.name for p in extracted.iterdir()) == ["test_batch"]  # only what the split needs
    assert not list(extracted.glob(".*"))  # no temporary file left


def test_read_only_folder_is_never_written(tmp_path, cifar10_members):
    batches, members = cifar10_members
    folder = tmp_path / "cifar-10"
    tar_gz(folder / "cifar-10-python.tar.gz", members)
    folder.chmod(0o555)  # like the shared data copy; the check holds even when running as root
    try:
        _check(load_dataset("cifar10", tmp_path, split="test", download=True), batches, "test")
        assert [p.name for p in folder.iterdir()] == ["cifar-10-python.tar.gz"]
    finally:
        folder.chmod(0o755)


def test_archive_falls_back_to_memory_when_extraction_fails(tmp_path, cifar10_members, monkeypatch):
    batches, members = cifar10_members
    tar_gz(tmp_path / "cifar-10" / "cifar-10-python.tar.gz", members)

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("ydrop.data.registry.extract_tar_members", read_only)
    _check(load_dataset("cifar10", tmp_path, split="test", download=True), batches, "test")


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar100(tmp_path, split):
    rng = np.random.default_rng(5)
    data, labels, content = _batch(rng, "fine_labels", 100, n=6)
    tar_gz(tmp_path / "cifar-100" / "cifar-100-python.tar.gz", {f"cifar-100-python/{split}": content,
                                                                 "cifar-100-python/meta": b"x"})
    ds = load_dataset("cifar100", tmp_path, split=split, download=False)
    assert ds.info.num_classes == 100 and ds.info.class_names[:2] == ("apple", "aquarium_fish")
    assert torch.equal(ds.labels, torch.from_numpy(labels.astype(np.int64)))
    assert torch.equal(ds.images, torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.float32)) / 255)


def test_bytes_keys_accepted():
    data = np.ones((2, 3072), np.uint8)
    content = pickle.dumps({b"data": data, b"labels": [1, 2]}, protocol=2)
    images, labels = read_cifar_batch(content, "mem", "labels", 10)
    assert labels.tolist() == [1, 2] and images.shape == (2, 3, 32, 32)


def test_bad_pickle(tmp_path):
    rng = np.random.default_rng(1)
    _, _, content = _batch(rng)
    with pytest.raises(DatasetFormatError, match=r"test_batch: not a readable CIFAR batch pickle"):
        read_cifar_batch(content[: len(content) // 2], "x/test_batch", "labels", 10)
    with pytest.raises(DatasetFormatError, match=r"not a readable CIFAR batch pickle"):
        read_cifar_batch(b"garbage", "x/test_batch", "labels", 10)


def test_pickle_with_foreign_global_is_refused():
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo should-never-run",))

    content = pickle.dumps({"data": Evil(), "labels": []}, protocol=2)
    with pytest.raises(DatasetFormatError, match=r"refers to (posix|nt|os)\.system"):
        read_cifar_batch(content, "evil", "labels", 10)


def test_label_count_and_range_and_shape():
    data = np.zeros((3, 3072), np.uint8)
    with pytest.raises(DatasetFormatError, match="3 images but 2 entries in 'labels'"):
        read_cifar_batch(cifar_batch_bytes(data, [0, 1]), "f", "labels", 10)
    with pytest.raises(DatasetFormatError, match=r"values in \[0, 10\], expected \[0, 9\]"):
        read_cifar_batch(cifar_batch_bytes(data, [0, 1, 10]), "f", "labels", 10)
    with pytest.raises(DatasetFormatError, match=r"shape \(N, 3072\), got uint8 array of shape \(3, 3000\)"):
        read_cifar_batch(cifar_batch_bytes(np.zeros((3, 3000), np.uint8), [0, 1, 2]), "f", "labels", 10)
    with pytest.raises(DatasetFormatError, match="no 'fine_labels' entry"):
        read_cifar_batch(cifar_batch_bytes(data, [0, 1, 2]), "f", "fine_labels", 100)


def test_damaged_archive(tmp_path, cifar10_members):
    _, members = cifar10_members
    archive = tar_gz(tmp_path / "cifar-10" / "cifar-10-python.tar.gz", members)
    archive.write_bytes(archive.read_bytes()[:3000])
    with pytest.raises(DatasetFormatError, match=r"cifar-10-python.tar.gz: not a readable tar archive"):
        load_dataset("cifar10", tmp_path, split="test", download=False)
    tar_gz(archive, {"cifar-10-batches-py/data_batch_1": b"x"})
    with pytest.raises(DatasetFormatError, match=r"lacks the member\(s\) cifar-10-batches-py/test_batch"):
        load_dataset("cifar10", tmp_path, split="test", download=False)


def test_links_in_archive_are_refused(tmp_path):
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
        evil = tarfile.TarInfo("../escape")
        evil.size = 1
        tar.addfile(evil, io.BytesIO(b"x"))
    with pytest.raises(DatasetFormatError, match="is a symbolic link, expected a regular file"):
        extract_tar_members(archive, ["cifar-10-batches-py/test_batch"], tmp_path / "out")
    assert not (tmp_path / "escape").exists() and not (tmp_path / "out" / "cifar-10-batches-py" / "test_batch").exists()
    with pytest.raises(ValueError, match="outside"):
        extract_tar_members(archive, ["../escape"], tmp_path / "out")
    assert not (tmp_path / "escape").exists()


def test_batch_entries_of_the_wrong_kind():
    data = np.zeros((2, 3072), np.uint8)
    with pytest.raises(DatasetFormatError, match=r"f: 'data' must be a uint8 array of shape \(N, 3072\), got list"):
        read_cifar_batch(cifar_batch_bytes([0, 1], [0, 1]), "f", "labels", 10)
    with pytest.raises(DatasetFormatError, match=r"got float32 array of shape \(2, 3072\)"):
        read_cifar_batch(cifar_batch_bytes(data.astype(np.float32), [0, 1]), "f", "labels", 10)
    with pytest.raises(DatasetFormatError, match=r"f: 'labels' is not a list of integers"):
        read_cifar_batch(cifar_batch_bytes(data, [0, 1], extra={"labels": ["a", "b"]}), "f", "labels", 10)
    with pytest.raises(DatasetFormatError, match=r"f: 2 images but 4 entries in 'labels'"):
        read_cifar_batch(cifar_batch_bytes(data, [0, 1], extra={"labels": [[0, 1], [1, 0]]}), "f", "labels", 10)
    with pytest.raises(DatasetFormatError, match=r"'labels' holds values in \[-1, 0\], expected \[0, 9\]"):
        read_cifar_batch(cifar_batch_bytes(data, [-1, 0]), "f", "labels", 10)
    with pytest.raises(DatasetFormatError, match=r"no 'data' entry \(it has 'labels'\)"):
        read_cifar_batch(pickle.dumps({"labels": [0]}, protocol=2), "f", "labels", 10)
