"""Downloads from a local HTTP server: md5 check, atomic write, mirrors, offline errors.

Every request goes to 127.0.0.1 (a server started by the test, or a closed port).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import ydrop.data as data
from ydrop.data import DatasetNotFoundError, download_file, load_dataset
from ydrop.data.download import DownloadError
from ydrop.data.specs import SPECS, DirectSpec, Remote

from _data_formats import SHARED_DATA, cifar_batch_bytes, idx_bytes, md5, random_idx_split, tar_gz, write_bytes


@pytest.fixture
def fake_mnist(http_server, monkeypatch):
    """Tiny MNIST files on the server, with the spec's md5s replaced by theirs."""
    base, www = http_server
    rng = np.random.default_rng(0)
    x, y = random_idx_split(rng, 6)
    images = write_bytes(www / "t10k-images-idx3-ubyte.gz", idx_bytes(x))
    labels = write_bytes(www / "t10k-labels-idx1-ubyte.gz", idx_bytes(y))
    real = SPECS["mnist"]
    splits = dict(real.splits, test=(Remote(images.name, md5(images)), Remote(labels.name, md5(labels))))
    monkeypatch.setitem(SPECS, "mnist", DirectSpec(real.folder, splits, real.accept_uncompressed))
    return base, www, x, y


def test_good_download_loads(tmp_path, fake_mnist):
    base, _, x, y = fake_mnist
    root = tmp_path / "data"
    ds = load_dataset("mnist", root, split="test", mirror=base, progress=False)
    assert torch.equal(ds.labels, torch.from_numpy(y.astype(np.int64)))
    assert torch.equal(ds.images[:, 0], torch.from_numpy(x.astype(np.float32)) / 255)
    assert sorted(p.name for p in (root / "mnist").iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_module_level_mirror_setting(tmp_path, fake_mnist, unreachable_url, monkeypatch):
    base, *_ = fake_mnist
    monkeypatch.setitem(data.MIRRORS, "mnist", (unreachable_url, base + "/"))
    ds = load_dataset("mnist", tmp_path, split="test", progress=False)  # first mirror refused, second used
    assert len(ds) == 6


def test_wrong_checksum_is_refused_and_leaves_nothing(tmp_path, fake_mnist):
    base, www, *_ = fake_mnist
    (www / "t10k-labels-idx1-ubyte.gz").write_bytes(b"tampered")
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("mnist", tmp_path, split="test", mirror=base, progress=False)
    message = str(err.value)
    assert "t10k-labels-idx1-ubyte.gz: md5 mismatch: expected" in message and "discarded" in message
    assert [p.name for p in (tmp_path / "mnist").iterdir()] == ["t10k-images-idx3-ubyte.gz"]  # no label file, no .part


def test_download_file_directly(tmp_path, http_server):
    base, www = http_server
    (www / "blob.bin").write_bytes(b"abc" * 1000)
    dest = tmp_path / "sub" / "blob.bin"
    assert download_file([f"{base}/blob.bin"], dest, md5(www / "blob.bin"), progress=False) == dest
    assert dest.read_bytes() == b"abc" * 1000
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file([f"{base}/missing.bin"], tmp_path / "missing.bin", "0" * 32, progress=False)
    with pytest.raises(DownloadError, match="md5 mismatch"):
        download_file([f"{base}/blob.bin"], tmp_path / "other.bin", "0" * 32, progress=False)
    with pytest.raises(DownloadError, match="HTTP 404"):  # the folders it made for nothing are removed
        download_file([f"{base}/missing.bin"], tmp_path / "new" / "deeper" / "x.bin", "0" * 32, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub", "www"]


def test_unreachable_server_lists_expected_files(tmp_path, unreachable_url):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("mnist", tmp_path, split="train", mirror=unreachable_url, progress=False)
    message = str(err.value)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        assert str(tmp_path / "mnist" / name) in message
        assert f"{unreachable_url}/{name}" in message
    assert "cannot connect" in message and "f68b3c2dcbeaaa9fbdd348bbdeb94873" in message
    assert list(tmp_path.iterdir()) == []  # not even an empty mnist/ folder


def test_silent_server_times_out(tmp_path, no_proxy, monkeypatch):
    import socket

    monkeypatch.setattr("ydrop.data.download.DOWNLOAD_TIMEOUT", 0.3)
    with socket.socket() as silent:  # accepts connections (kernel backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(DatasetNotFoundError, match="timed out"):
            load_dataset("mnist", tmp_path, split="test", mirror=url, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_offline_error_names_official_urls(tmp_path):
    x, y = random_idx_split(np.random.default_rng(1), 2)
    write_bytes(tmp_path / "fashion-mnist" / "t10k-images-idx3-ubyte.gz", idx_bytes(x))
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("fashion-mnist", tmp_path, split="test", download=False)
    message = str(err.value)
    assert "t10k-images-idx3-ubyte.gz (or t10k-images-idx3-ubyte, uncompressed)  [found]" in message
    assert "t10k-labels-idx1-ubyte.gz (or t10k-labels-idx1-ubyte, uncompressed)  [missing]" in message
    assert "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-labels-idx1-ubyte.gz" in message
    assert "download=False" in message
    with pytest.raises(FileNotFoundError):  # catchable as the built-in error too
        load_dataset("svhn", tmp_path, split="extra", download=False)


def test_offline_archive_error_offers_both_forms(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("stl10", tmp_path, split="test", download=False)
    message = str(err.value)
    assert str(tmp_path / "stl-10" / "stl10_binary" / "test_X.bin") in message
    assert str(tmp_path / "stl-10" / "stl10_binary.tar.gz") in message
    assert "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz (md5 91f7769df0f17e558f3565bffb0c7dfb)" in message


def test_archive_download_then_extract(tmp_path, http_server, monkeypatch):
    from ydrop.data.specs import ArchiveSpec

    base, www = http_server
    data_ = np.arange(2 * 3072).reshape(2, 3072).astype(np.uint8)
    archive = tar_gz(www / "cifar-10-python.tar.gz", {"cifar-10-batches-py/test_batch": cifar_batch_bytes(data_, [4, 2])})
    real = SPECS["cifar10"]
    monkeypatch.setitem(SPECS, "cifar10", ArchiveSpec(real.folder, Remote(archive.name, md5(archive)), real.splits))
    ds = load_dataset("cifar10", tmp_path, split="test", mirror=base, progress=False)
    assert ds.labels.tolist() == [4, 2]
    assert (tmp_path / "cifar-10" / "cifar-10-batches-py" / "test_batch").is_file()
    archive.unlink()  # second load reads the extracted file, no network needed
    assert load_dataset("cifar10", tmp_path, split="test", download=False).labels.tolist() == [4, 2]


@pytest.mark.parametrize("mask", [0o022, 0o077], ids=lambda m: f"umask{m:03o}")
def test_downloaded_and_extracted_files_get_the_mode_open_would_give_them(tmp_path, http_server, umask, mask):
    """Not mkstemp's 0600, so a group can share a data folder when the umask says so."""
    import stat

    from ydrop.data.archive import extract_tar_members

    base, www = http_server
    archive = tar_gz(www / "a.tar.gz", {"inner/member.bin": b"xyz"})
    umask(mask)
    dest = download_file([f"{base}/a.tar.gz"], tmp_path / "data" / "a.tar.gz", md5(archive), progress=False)
    (member,) = extract_tar_members(dest, ["inner/member.bin"], tmp_path / "data")
    assert stat.S_IMODE(dest.stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE(member.stat().st_mode) == 0o666 & ~mask


def _aged(path, seconds):
    stamp = path.stat().st_mtime - seconds
    os.utime(path, (stamp, stamp))
    return path


def test_a_download_removes_the_part_files_killed_downloads_of_its_file_left(tmp_path, http_server):
    import fcntl

    base, www = http_server
    (www / "blob.bin").write_bytes(b"abc" * 1000)
    folder = tmp_path / "data"
    folder.mkdir()
    killed = [_aged(write_bytes(folder / name, b"x" * 500), 60) for name in
              (".blob.bin.k3j4h5g6.part", ".blob.bin.abcd1234.part")]  # mkstemp's names and ours
    other_file = _aged(write_bytes(folder / ".other.bin.abcd1234.part", b"x"), 60)
    just_created = write_bytes(folder / ".blob.bin.00000000.part", b"")  # a writer may not hold it yet
    live = _aged(write_bytes(folder / ".blob.bin.11111111.part", b"x"), 60)
    with open(live, "rb+") as writer:
        fcntl.flock(writer, fcntl.LOCK_EX)  # another process is downloading it now
        download_file([f"{base}/blob.bin"], folder / "blob.bin", md5(www / "blob.bin"), progress=False)
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["blob.bin", other_file.name, just_created.name, live.name])
    assert not any(p.exists() for p in killed)


def test_an_interrupted_download_leaves_no_empty_folder(tmp_path, no_proxy):
    import signal
    import socket

    def interrupt(signum, frame):
        raise KeyboardInterrupt  # what Ctrl-C raises

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with socket.socket() as silent:  # accepts the connection, never answers: the download hangs
            silent.bind(("127.0.0.1", 0))
            silent.listen(1)
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            with pytest.raises(KeyboardInterrupt):
                download_file([f"http://127.0.0.1:{silent.getsockname()[1]}/x.bin"], tmp_path / "new" / "deeper" / "x.bin",
                              "0" * 32, progress=False, timeout=30)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert list(tmp_path.iterdir()) == []  # neither the .part file nor the folders made for it


def test_extraction_removes_the_part_files_killed_extractions_left(tmp_path):
    from ydrop.data.archive import extract_tar_members

    archive = tar_gz(tmp_path / "a.tar.gz", {"inner/member.bin": b"xyz"})
    inner = tmp_path / "out" / "inner"
    inner.mkdir(parents=True)
    left = _aged(write_bytes(inner / ".member.bin.k3j4h5g6.part", b"xy"), 60)
    assert extract_tar_members(archive, ["inner/member.bin"], tmp_path / "out") == [inner / "member.bin"]
    assert sorted(p.name for p in inner.iterdir()) == ["member.bin"] and not left.exists()


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="shared/data/mnist is absent")
def test_real_file_passes_official_md5(tmp_path, http_server):
    base, www = http_server
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (www / name).write_bytes((SHARED_DATA / "mnist" / name).read_bytes())
    ds = load_dataset("mnist", tmp_path, split="test", mirror=base, progress=False)
    assert ds.images.shape == (10000, 1, 28, 28) and ds.labels[:3].tolist() == [7, 2, 1]
