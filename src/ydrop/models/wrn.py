"""Wide Residual Networks (Zagoruyko & Komodakis, *Wide Residual Networks*, BMVC 2016).

WRN-d-k: a 3x3 stem conv with 16 channels, then three groups of n = (d - 4) / 6
pre-activation basic blocks with 16k, 32k, 64k channels (strides 1, 2, 2), then
batch norm, ReLU, global average pooling and a linear classifier. Each block is
BN-ReLU-conv3x3-BN-ReLU-**dropout**-conv3x3 plus the shortcut (a 1x1 conv on the
pre-activated input when the shape changes), as in the authors' code. The
dropout receives a (B, C, H, W) map and, for this library's layers (the
baselines' ``"dropout"`` too), acts on whole channels. WRN-28-10 has 12 blocks,
so 12 dropout modules. Zagoruyko & Komodakis used element-wise dropout with
p = 0.3 (their 4.17 % on CIFAR-10, Excitation Dropout sec. 5): for that baseline
pass ``dropout=torch.nn.Dropout, dropout_kwargs={"p": 0.3}``, not
``dropout="dropout"``, which drops whole channels, a stronger regulariser.
Excitation Dropout sec. 5 replaces it with Activation Dropout.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ._common import DropoutMaker, DropoutSlots, dropout_positions, scaled

__all__ = ["WideBasicBlock", "WideResNet"]


class WideBasicBlock(nn.Module):
    """Pre-activation basic block with dropout between its two convolutions."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, dropout: nn.Module) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU()
        self.dropout = dropout
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = (
            nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)
            if in_planes != out_planes or stride != 1 else None
        )

    def forward(self, x: Tensor) -> Tensor:
        activated = self.relu1(self.bn1(x))
        y = self.conv2(self.dropout(self.relu2(self.bn2(self.conv1(activated)))))
        return y + (x if self.shortcut is None else self.shortcut(activated))


def _check_depth(depth: Any) -> None:
    """Refuse a depth that is not 6n + 4 blocks' worth of layers, n >= 1."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError(f"depth of a wide ResNet must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...), got {depth!r}")


def _check_widen_factor(widen_factor: Any) -> None:
    """Refuse a widen factor k that is not an integer >= 1."""
    if isinstance(widen_factor, bool) or not isinstance(widen_factor, int) or widen_factor < 1:
        raise ValueError(f"widen_factor of a wide ResNet must be an integer >= 1, got {widen_factor!r}")


def _wide_group(
    in_planes: int, planes: int, stride: int, slots: list[bool], make_dropout: DropoutMaker
) -> nn.Sequential:
    """One group of ``len(slots)`` blocks with ``planes`` output channels; the first
    block takes ``in_planes`` channels and applies ``stride``. Block b gets
    ``make_dropout(planes)`` where ``slots[b]`` is true, else an ``nn.Identity``."""
    blocks = []
    for b, slot in enumerate(slots):
        # Each block's dropout is built just before the block itself: the order in which
        # modules draw their initial weights from torch's generator, kept for seeded runs.
        dropout = make_dropout(planes) if slot else nn.Identity()
        blocks.append(WideBasicBlock(in_planes if b == 0 else planes, planes, stride if b == 0 else 1, dropout))
    return nn.Sequential(*blocks)


class WideResNet(DropoutSlots, nn.Module):
    """WRN-depth-widen_factor (see the module docstring).

    Args:
        depth: 6n + 4, n >= 1 (28).
        widen_factor: k (10).
        num_classes, in_channels: output classes and input channels.
        make_dropout: builds one dropout module per block (given its channels).
        dropout_at: "all", "first", "last", "none" or block indices.
        width: multiplies every channel count (tiny test variants).
    """

    def __init__(
        self,
        depth: int = 28,
        widen_factor: int = 10,
        num_classes: int = 10,
        in_channels: int = 3,
        make_dropout: DropoutMaker | None = None,
        dropout_at: Any = "all",
        width: float = 1.0,
        name: str | None = None,
    ) -> None:
        super().__init__()
        _check_depth(depth)
        _check_widen_factor(widen_factor)
        make_dropout = make_dropout or DropoutMaker("dropout")
        self.name = name or f"wrn-{depth}-{widen_factor}"
        self.depth, self.widen_factor = depth, widen_factor
        blocks_per_group = (depth - 4) // 6
        positions = dropout_positions(dropout_at, 3 * blocks_per_group)
        stem = scaled(16, width)
        widths = [scaled(16 * widen_factor, width), scaled(32 * widen_factor, width), scaled(64 * widen_factor, width)]
        self.conv1 = nn.Conv2d(in_channels, stem, 3, padding=1, bias=False)
        self.dropout_paths = []
        previous = stem
        for group, (planes, stride) in enumerate(zip(widths, (1, 2, 2)), start=1):
            # Global block indices of this group: dropout_at counts blocks across groups.
            first = (group - 1) * blocks_per_group
            slots = [index in positions for index in range(first, first + blocks_per_group)]
            setattr(self, f"block{group}", _wide_group(previous, planes, stride, slots, make_dropout))
            self.dropout_paths += [f"block{group}.{b}.dropout" for b, slot in enumerate(slots) if slot]
            previous = planes
        self.bn = nn.BatchNorm2d(previous)
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(previous, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # The authors' initialisation, on the network's own layers (dropout
        # modules keep theirs).
        for name, module in self.named_modules():
            if ".dropout" in f".{name}":
                continue
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.fc(self.flatten(self.avgpool(self.relu(self.bn(x)))))
