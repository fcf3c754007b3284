"""The feed-forward and convolutional networks of the two papers.

Y-Drop (Georgiou et al., section 5 "Architectures", Table 2):

* FC_1..FC_4 (MNIST): ReLU MLPs 2x1024, 3x2048, 4x4096, 4x8192 and a classifier.
* S_1..S_4 (CIFAR-10): the cuda-convnet ``layers-80sec.cfg`` CNN (Krizhevsky) with
  FC heads 2x1024, 3x2048, 4x4096, 6x4096. Its three 5x5 convolutions (32, 32, 64
  filters, padding 2) are conv-maxpool-relu, conv-relu-avgpool, conv-relu-avgpool
  with 3x3 pools of stride 2. cuda-convnet sizes a pool's output as
  ceil((in - 3) / 2) + 1 (``ceil_mode=True``), so 32 -> 16 -> 8 -> 4 and the head
  sees 64 * 4 * 4 = 1024 features. The authors' own PyTorch configs
  (``layers-80sec_deep*.json``) use 2x2/2 max pools, which also give 4 x 4: both
  readings give the same head. The head's parameter counts are then
  S_1 2.11M, S_2 10.51M, S_3 54.58M, S_4 88.15M against Table 2's 2, 10, 54, 87:
  the difference S_4 - S_3 = 2 * (4096^2 + 4096) = 33.6M (Table: 33M) does not
  depend on the flattened size F, but rounding S_3 to 54M and S_4 to 87M needs
  F in [760, 866], which no 64 x k x k map gives; k = 3 (F = 576, floor-mode
  pools) gives S_1 1.65M (-17%), so F = 1024 (k = 4) is the closest choice and
  the one the authors ran. Table 2 rounds to whole millions (FC_1, fixed by the
  paper at 784-1024-1024-10, has 1.86M for its "2").
* M_1, M_2 (STL-10, SVHN, CIFAR-100): three 5x5 convolutions with 96, 128, 256
  filters, stride 1, padding 2, batch norm, ReLU, 3x3/2 max pooling, then FC heads
  2x2048 and 3x4096.

Excitation Dropout (Zunino et al., Table 1):

* CNN-2: conv 96/128/256 5x5 pad 2 + ReLU + 3x3/2 max pool each, fc 2048, fc 2048,
  classifier. Pools use ``ceil_mode=True`` (Caffe and cuda-convnet size pools that
  way; the net comes from Srivastava et al. via Morerio et al.), as do M_1/M_2,
  which are the same network with batch norm.

And the fine-tuned ImageNet models of Excitation Dropout, written here like
torchvision's (no weights are ever downloaded): VGG-16, VGG-19 and AlexNet. Their
dropout sits after each hidden FC activation (fc6, fc7), the Caffe placement the
paper refers to; torchvision's AlexNet puts it before fc6 and fc7 instead.
VGG's module indices match torchvision's, so its state dicts load.

Dropout goes after the activation of every hidden FC layer (``dropout_at``
selects a subset), one fresh module per place.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from torch import nn

from ._common import (
    ClassifierNet,
    DropoutMaker,
    dropout_positions,
    fc_head,
    head_dropout_paths,
    output_shape,
    scaled,
)

__all__ = [
    "FC_HIDDEN",
    "S_HIDDEN",
    "M_HIDDEN",
    "CNN2_HIDDEN",
    "VGG_CONFIGS",
    "mlp",
    "layers80sec_features",
    "m_features",
    "cnn2_features",
    "vgg_features",
    "alexnet_features",
    "head_net",
]

FC_HIDDEN = {"fc1": (1024,) * 2, "fc2": (2048,) * 3, "fc3": (4096,) * 4, "fc4": (8192,) * 4}
S_HIDDEN = {"s1": (1024,) * 2, "s2": (2048,) * 3, "s3": (4096,) * 4, "s4": (4096,) * 6}
M_HIDDEN = {"m1": (2048,) * 2, "m2": (4096,) * 3}
CNN2_HIDDEN = (2048, 2048)
IMAGENET_HIDDEN = (4096, 4096)

# torchvision's VGG configurations: channels, "M" = 2x2 max pool.
VGG_CONFIGS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}


# ------------------------------------------------------------------ feature parts
def layers80sec_features(in_channels: int, width: float = 1.0) -> nn.Sequential:
    """cuda-convnet layers-80sec: conv-maxpool-relu, conv-relu-avgpool, conv-relu-avgpool."""
    c1, c2, c3 = (scaled(c, width) for c in (32, 32, 64))
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, 5, padding=2), nn.MaxPool2d(3, 2, ceil_mode=True), nn.ReLU(),
        nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(c2, c3, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),
    )


def _conv_pool_stack(in_channels: int, channels: Sequence[int], batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    previous = in_channels
    for c in channels:
        layers.append(nn.Conv2d(previous, c, 5, padding=2))
        if batch_norm:
            layers.append(nn.BatchNorm2d(c))
        layers += [nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True)]
        previous = c
    return nn.Sequential(*layers)


def m_features(in_channels: int, width: float = 1.0) -> nn.Sequential:
    """Y-Drop's M: conv 96/128/256 5x5 + batch norm + ReLU + 3x3/2 max pool."""
    return _conv_pool_stack(in_channels, [scaled(c, width) for c in (96, 128, 256)], batch_norm=True)


def cnn2_features(in_channels: int, width: float = 1.0) -> nn.Sequential:
    """Excitation Dropout's CNN-2 (Table 1): conv 96/128/256 5x5 pad 2 + ReLU + 3x3/2 max pool."""
    return _conv_pool_stack(in_channels, [scaled(c, width) for c in (96, 128, 256)], batch_norm=False)


def vgg_features(config: Sequence[int | str], in_channels: int, width: float = 1.0,
                 batch_norm: bool = False) -> nn.Sequential:
    """torchvision's VGG feature extractor (3x3 convs, padding 1, 2x2 max pools)."""
    layers: list[nn.Module] = []
    previous = in_channels
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        c = scaled(int(item), width)
        layers.append(nn.Conv2d(previous, c, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(c))
        layers.append(nn.ReLU())
        previous = c
    return nn.Sequential(*layers)


def alexnet_features(in_channels: int, width: float = 1.0) -> nn.Sequential:
    """torchvision's AlexNet feature extractor: its one-GPU channels (64, 192, 384,
    256, 256), not the 2012 / Caffe net's (96, 256, 384, 384, 256 with grouped
    convolutions and LRN) that Excitation Dropout fine-tunes, and its own module
    names: neither torchvision's nor Caffe's pretrained weights load without
    renaming keys (the head here is ``classifier.0/3/6``)."""
    c1, c2, c3, c4, c5 = (scaled(c, width) for c in (64, 192, 384, 256, 256))
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c4, c5, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
    )


# ------------------------------------------------------------------------ networks
def head_net(
    name: str,
    features: Callable[[], nn.Module] | None,
    in_shape: tuple[int, ...],
    hidden: Sequence[int],
    num_classes: int,
    make_dropout: DropoutMaker,
    dropout_at: Any = "all",
    avgpool: Callable[[], nn.Module] | None = None,
) -> ClassifierNet:
    """features -> (avgpool) -> flatten -> FC head with dropout after each hidden ReLU.

    The head's input size comes from a dry run of the feature part on the meta
    device (or ``prod(in_shape)`` without features).
    """
    if features is None:
        flat = math.prod(in_shape)
        feature_module: nn.Module = nn.Identity()
    else:
        def trunk() -> nn.Module:
            return nn.Sequential(features(), avgpool() if avgpool else nn.Identity())

        flat = math.prod(output_shape(trunk, in_shape, name))
        feature_module = features()
    positions = dropout_positions(dropout_at, len(hidden))
    classifier = fc_head(flat, hidden, num_classes, make_dropout, positions)
    net = ClassifierNet(name, feature_module, classifier, avgpool() if avgpool else None)
    net.dropout_paths = head_dropout_paths(positions)
    return net


def mlp(name: str, in_shape: tuple[int, ...], hidden: Sequence[int], num_classes: int,
        make_dropout: DropoutMaker, dropout_at: Any = "all") -> ClassifierNet:
    """Y-Drop's FC_k: flatten, then ReLU layers of the given widths and a classifier."""
    return head_net(name, None, in_shape, hidden, num_classes, make_dropout, dropout_at)


def init_torchvision_style(net: ClassifierNet) -> ClassifierNet:
    """torchvision's VGG initialisation, on the convs, batch norms and the head's
    Linear layers only (dropout modules keep their own initialisation)."""
    for module in net.features.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    for module in net.classifier:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, 0.01)
            nn.init.zeros_(module.bias)
    return net
