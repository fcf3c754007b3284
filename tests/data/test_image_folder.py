"""Image folders: class and split layouts, resizing, greyscale, and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ydrop.data import DatasetFormatError, DatasetNotFoundError, load_dataset


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    pixels = {}
    for cls, names in (("cat", ["b.png", "a.png"]), ("ant", ["x.png"]), ("dog", ["v1/f0.png", "v1/f1.png"])):
        for name in names:
            arr = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            _png(tmp_path / "imgs" / cls / name, arr)
            pixels[f"{cls}/{name}"] = arr
    (tmp_path / "imgs" / "cat" / "notes.txt").write_text("not an image")
    _png(tmp_path / "imgs" / "cat" / ".hidden.png", np.zeros((8, 8, 3), np.uint8))
    return tmp_path / "imgs", pixels


def test_class_layout_exact(folder):
    root, pixels = folder
    ds = load_dataset("image-folder", root, image_size=8)
    assert ds.info.class_names == ("ant", "cat", "dog") and ds.info.num_classes == 3
    assert ds.labels.tolist() == [0, 1, 1, 2, 2]  # sorted classes, sorted files, recursive
    order = ["ant/x.png", "cat/a.png", "cat/b.png", "dog/v1/f0.png", "dog/v1/f1.png"]
    expected = torch.stack([torch.from_numpy(pixels[k]).permute(2, 0, 1) for k in order]).float() / 255
    assert torch.equal(ds.images, expected)


def test_resize_and_grayscale(folder):
    root, _ = folder
    ds = load_dataset("image-folder", root, image_size=(5, 12), grayscale=True)
    assert ds.images.shape == (5, 1, 5, 12) and ds.info.in_shape == (1, 5, 12)
    assert ds.images.min() >= 0 and ds.images.max() <= 1 and len(ds.info.mean) == 1
    assert load_dataset("image-folder", root).images.shape == (5, 3, 64, 64)  # default size


def test_split_layout(tmp_path):
    for split, n in (("train", 2), ("test", 1)):
        for cls in ("a", "b"):
            for i in range(n):
                _png(tmp_path / split / cls / f"{i}.png", np.full((4, 4, 3), 9, np.uint8))
    assert len(load_dataset("image-folder", tmp_path, split="train", image_size=4)) == 4
    test = load_dataset("image-folder", tmp_path, split="test", image_size=4)
    assert len(test) == 2 and test.split == "test" and test.info.class_names == ("a", "b")
    with pytest.raises(ValueError, match=r"split must be one of the split folders .*'test', 'train'.*got 'val'"):
        load_dataset("image-folder", tmp_path, split="val")


def test_class_layout_has_no_test_split(folder):
    root, _ = folder
    with pytest.raises(ValueError, match="only split is 'train'.*train_val_split"):
        load_dataset("image-folder", root, split="test")


def test_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="is not a folder"):
        load_dataset("image-folder", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="has no class sub-folders"):
        load_dataset("image-folder", tmp_path / "empty")
    (tmp_path / "f" / "a").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match=r"class folder .*/f/a holds no image files"):
        load_dataset("image-folder", tmp_path / "f")
    (tmp_path / "f" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DatasetFormatError, match=r"broken.png: cannot decode the image"):
        load_dataset("image-folder", tmp_path / "f")
    with pytest.raises(ValueError, match=r"image_size must be an integer >= 1 .*got 0"):
        load_dataset("image-folder", tmp_path / "f", image_size=0)
