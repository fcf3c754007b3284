"""Where each dataset's files live: names, md5 checksums, mirrors and metadata.

The md5 checksums are the official ones that torchvision publishes (those of MNIST,
Fashion-MNIST and the CIFAR-10 members are also recorded in ``shared/data/SOURCES.md``).

On-disk layout under a data directory ``root`` (official file names)::

    root/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz    (or the same without .gz)
    root/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz   (or without .gz)
    root/cifar-10/cifar-10-batches-py/{data_batch_1..5,test_batch}  or  root/cifar-10/cifar-10-python.tar.gz
    root/cifar-100/cifar-100-python/{train,test}                   or  root/cifar-100/cifar-100-python.tar.gz
    root/svhn/{train,test,extra}_32x32.mat
    root/stl-10/stl10_binary/{train,test}_{X,y}.bin                or  root/stl-10/stl10_binary.tar.gz
"""

from __future__ import annotations

from dataclasses import dataclass

from .dataset import DatasetInfo

__all__ = ["Remote", "DirectSpec", "ArchiveSpec", "SPECS", "MIRRORS", "INFOS"]


@dataclass(frozen=True)
class Remote:
    """A file as published: its name (on the mirror and on disk) and md5."""

    filename: str
    md5: str


@dataclass(frozen=True)
class DirectSpec:
    """A dataset whose files are downloaded one by one (MNIST-like, SVHN).

    ``splits`` maps a split to its files; ``accept_uncompressed`` lets a local
    ``name`` stand for ``name.gz``.
    """

    folder: str
    splits: dict[str, tuple[Remote, ...]]
    accept_uncompressed: bool = False


@dataclass(frozen=True)
class ArchiveSpec:
    """A dataset published as one ``.tar.gz`` (CIFAR, STL-10).

    ``splits`` maps a split to the archive members it needs; a member is looked
    for first as an extracted file ``folder/member``, then inside the archive.
    """

    folder: str
    archive: Remote
    splits: dict[str, tuple[str, ...]]


def _idx_files(md5s: dict[str, str]) -> dict[str, tuple[Remote, ...]]:
    return {
        split: (
            Remote(f"{prefix}-images-idx3-ubyte.gz", md5s[f"{prefix}-images"]),
            Remote(f"{prefix}-labels-idx1-ubyte.gz", md5s[f"{prefix}-labels"]),
        )
        for split, prefix in (("train", "train"), ("test", "t10k"))
    }


SPECS: dict[str, DirectSpec | ArchiveSpec] = {
    "mnist": DirectSpec(
        folder="mnist",
        splits=_idx_files({
            "train-images": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels": "ec29112dd5afa0611ce80d1b7f02629c",
        }),
        accept_uncompressed=True,
    ),
    "fashion-mnist": DirectSpec(
        folder="fashion-mnist",
        splits=_idx_files({
            "train-images": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels": "bb300cfdad3c16e7a12a480ee83cd310",
        }),
        accept_uncompressed=True,
    ),
    "cifar10": ArchiveSpec(
        folder="cifar-10",
        archive=Remote("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
        splits={
            "train": tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)),
            "test": ("cifar-10-batches-py/test_batch",),
        },
    ),
    "cifar100": ArchiveSpec(
        folder="cifar-100",
        archive=Remote("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),
        splits={"train": ("cifar-100-python/train",), "test": ("cifar-100-python/test",)},
    ),
    "svhn": DirectSpec(
        folder="svhn",
        splits={
            "train": (Remote("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),),
            "test": (Remote("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"),),
            "extra": (Remote("extra_32x32.mat", "a93ce644f1a588dc4d68dda5feec44a7"),),
        },
    ),
    "stl10": ArchiveSpec(
        folder="stl-10",
        archive=Remote("stl10_binary.tar.gz", "91f7769df0f17e558f3565bffb0c7dfb"),
        splits={
            "train": ("stl10_binary/train_X.bin", "stl10_binary/train_y.bin"),
            "test": ("stl10_binary/test_X.bin", "stl10_binary/test_y.bin"),
        },
    ),
}

# Base URLs tried in order; a file's URL is base + "/" + its file name. Replace an
# entry (or pass ``mirror=`` to ``load_dataset``) to download from elsewhere.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist", "http://yann.lecun.com/exdb/mnist"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",),
    "cifar10": ("https://www.cs.toronto.edu/~kriz",),
    "cifar100": ("https://www.cs.toronto.edu/~kriz",),
    "svhn": ("http://ufldl.stanford.edu/housenumbers",),
    "stl10": ("http://ai.stanford.edu/~acoates/stl10",),
}

_DIGIT_NAMES = tuple(str(d) for d in range(10))
_CIFAR100_CLASSES = tuple(
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly "
    "camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup "
    "dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower "
    "leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid "
    "otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road "
    "rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower "
    "sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale "
    "willow_tree wolf woman worm".split()
)

# Per-channel mean and std of the training pixels on the [0, 1] scale: the values
# commonly published for each dataset (MNIST, Fashion-MNIST and CIFAR-10 are checked
# against the real files by tests/data/test_real_data.py).
INFOS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", 10, (1, 28, 28), (0.1307,), (0.3081,), _DIGIT_NAMES),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist", 10, (1, 28, 28), (0.2860,), (0.3530,),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "cifar10": DatasetInfo(
        "cifar10", 10, (3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    ),
    "cifar100": DatasetInfo(
        "cifar100", 100, (3, 32, 32), (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), _CIFAR100_CLASSES,
    ),
    "svhn": DatasetInfo("svhn", 10, (3, 32, 32), (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), _DIGIT_NAMES),
    "stl10": DatasetInfo(
        "stl10", 10, (3, 96, 96), (0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713),
        ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"),
    ),
}
