"""load_dataset / dataset_info / ImageDataset argument errors name the argument and list what is allowed."""

from __future__ import annotations

import pytest
import torch

import ydrop.data as data
from ydrop.data import DATASET_NAMES, DatasetInfo, ImageDataset, dataset_info, load_dataset


def test_public_api_is_explicit():
    assert sorted(data.__all__) == sorted(set(data.__all__))
    for name in data.__all__:
        assert hasattr(data, name)


def test_unknown_name_lists_allowed():
    with pytest.raises(ValueError, match=r"name must be one of 'mnist', 'fashion-mnist', .*'image-folder'; got 'imagenet'"):
        load_dataset("imagenet", "/tmp")


def test_bad_split_lists_allowed(tmp_path):
    with pytest.raises(ValueError, match=r"split for 'svhn' must be one of 'train', 'test', 'extra'; got 'val'"):
        load_dataset("svhn", tmp_path, split="val")
    with pytest.raises(ValueError, match=r"split for 'digits' must be one of 'train', 'test'; got 'extra'"):
        load_dataset("digits", split="extra")


def test_root_required_and_folder_options_only_for_folders():
    with pytest.raises(ValueError, match=r"root is required for name='cifar10'.*cifar-10/.*got root=None"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match="image_size and grayscale apply only to name='image-folder'"):
        load_dataset("mnist", "/tmp", image_size=32)
    with pytest.raises(ValueError, match="mirror must be a base URL"):
        load_dataset("mnist", "/tmp", mirror="")


def test_dataset_info_for_every_fixed_dataset():
    for name in DATASET_NAMES:
        if name == "image-folder":
            with pytest.raises(ValueError, match="no fixed info"):
                dataset_info(name)
            continue
        info = dataset_info(name)
        assert info.name == name and len(info.mean) == len(info.std) == info.in_shape[0]
        assert info.class_names is None or len(info.class_names) == info.num_classes
    assert dataset_info("cifar100").num_classes == 100 and dataset_info("stl10").in_shape == (3, 96, 96)


def test_image_dataset_validation():
    info = DatasetInfo("t", 2, (1, 2, 2), (0.5,), (0.5,))
    with pytest.raises(ValueError, match=r"per-image shape \(1, 3, 3\), but info.in_shape is \(1, 2, 2\)"):
        ImageDataset(torch.zeros(2, 1, 3, 3), torch.zeros(2, dtype=torch.long), info)
    with pytest.raises(ValueError, match="images hold 2 samples but labels hold 3"):
        ImageDataset(torch.zeros(2, 1, 2, 2), torch.zeros(3, dtype=torch.long), info)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 1\] for 't', found 2"):
        ImageDataset(torch.zeros(1, 1, 2, 2), torch.tensor([2]), info)
    with pytest.raises(ValueError, match="images must be a float32 tensor"):
        ImageDataset(torch.zeros(1, 1, 2, 2, dtype=torch.uint8), torch.tensor([0]), info)
    with pytest.raises(ValueError, match="std values must be finite and > 0"):
        DatasetInfo("t", 2, (1, 2, 2), (0.5,), (0.0,))
    ds = ImageDataset(torch.zeros(2, 1, 2, 2), torch.tensor([0, 1]), info, split="train")
    image, label = ds[1]
    assert image.shape == (1, 2, 2) and label == 1 and "n=2" in repr(ds)


@pytest.mark.parametrize("args, error, message", [
    (("t", 0, (1, 2, 2), (0.5,), (0.5,)), ValueError, r"num_classes must be an integer >= 1, got 0"),
    (("t", True, (1, 2, 2), (0.5,), (0.5,)), ValueError, r"num_classes must be an integer >= 1, got True"),
    (("t", 2, (1, 2), (0.5,), (0.5,)), ValueError, r"in_shape must be three positive integers \(C, H, W\), got \(1, 2\)"),
    (("t", 2, (1, 0, 2), (0.5,), (0.5,)), ValueError, r"in_shape must be three positive integers"),
    (("t", 2, (2, 2, 2), (0.5,), (0.5, 0.5)), ValueError, r"mean must have one value per channel \(2\), got \(0.5,\)"),
    (("t", 2, (1, 2, 2), (float("nan"),), (0.5,)), ValueError, r"mean values must be finite, got \(nan,\)"),
    (("t", 2, (1, 2, 2), (0.5,), (float("inf"),)), ValueError, r"std values must be finite and > 0, got \(inf,\)"),
    (("t", 2, (1, 2, 2), (0.5,), (0.5,), ("a",)), ValueError, r"class_names must have num_classes=2 entries, got 1"),
])
def test_dataset_info_refuses(args, error, message):
    with pytest.raises(error, match=message):
        DatasetInfo(*args)


def test_dataset_info_normalises_fields():
    info = DatasetInfo("t", 2, [1, 2, 2], [1], [2], class_names=[0, "b"])
    assert info.in_shape == (1, 2, 2) and info.mean == (1.0,) and info.std == (2.0,)
    assert isinstance(info.mean[0], float) and info.class_names == ("0", "b")


def test_image_dataset_refuses_bad_info_and_labels():
    info = DatasetInfo("t", 2, (1, 2, 2), (0.5,), (0.5,))
    with pytest.raises(TypeError, match="info must be a DatasetInfo, got dict"):
        ImageDataset(torch.zeros(1, 1, 2, 2), torch.tensor([0]), {})
    with pytest.raises(ValueError, match=r"images must be a float32 tensor of shape \(N, C, H, W\), got list"):
        ImageDataset([0.0], torch.tensor([0]), info)
    with pytest.raises(ValueError, match=r"labels must be an int64 tensor of shape \(N,\), got torch.int32 tensor of shape \(1,\)"):
        ImageDataset(torch.zeros(1, 1, 2, 2), torch.tensor([0], dtype=torch.int32), info)
    with pytest.raises(ValueError, match=r"labels must be an int64 tensor of shape \(N,\), got list"):
        ImageDataset(torch.zeros(1, 1, 2, 2), [0], info)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 1\] for 't', found -1"):
        ImageDataset(torch.zeros(2, 1, 2, 2), torch.tensor([-1, 5]), info)
    empty = ImageDataset(torch.zeros(0, 1, 2, 2), torch.zeros(0, dtype=torch.long), info)
    assert len(empty) == 0
