#!/usr/bin/env python3
"""Guided dropout in your own CNN: a small ResNet trained on CIFAR-10.

The ResNet below is an ordinary PyTorch model (batch norm, residual blocks, an
``nn.Dropout`` before the classifier) that knows nothing of ydrop. Three lines make its
dropout guided:

    ydrop.convert(model, "ydrop")      # every nn.Dropout becomes a ydrop.YDrop, in place
    guide = ydrop.Guide(model)         # finds the guided layers
    guide.step(x, y)                   # before each training forward: scores this batch

and ``guide.set_epoch(epoch)`` at the start of each epoch (Y-Drop is plain dropout for
its first ``warmup_epochs``). The rest is a usual training loop: SGD with momentum,
cosine learning rate, random crop (padding 4) and horizontal flip done on whole batches
of tensors (``ydrop.data.PadCropFlip``), test accuracy at the end.

Run it from the repository root (CIFAR-10, 170 MB, is downloaded into DIR/cifar-10/
when it is not there; ``--no-download`` only reads):

    python examples/resnet_cifar10.py --data-dir DIR --method ydrop --epochs 15
    python examples/resnet_cifar10.py --data-dir DIR --limit 1000 --epochs 1 --warmup-epochs 0   # a quick try

``--method`` is one of dropout (the model as written), ydrop, excitation, activation.
On one CPU thread a full epoch takes about 10 minutes (1.6 s per batch of 128 with
Y-Drop, measured on a busy 2-core machine): use a GPU (``--device auto`` picks it) or
``--limit``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

import ydrop
from ydrop.data import BatchLoader, DatasetNotFoundError, PadCropFlip, load_dataset
from _options import non_negative_int, pick_device, positive_float, positive_int  # examples/_options.py, next to this script

METHODS = ("dropout", "ydrop", "excitation", "activation")
DEVICES = ("auto", "cpu", "cuda")


# ----------------------------------------------------------------------------- the model
class BasicBlock(nn.Module):
    """conv-bn-relu-conv-bn plus a shortcut (a 1x1 conv when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A ResNet for 32x32 images: a 3x3 stem, three stages of residual blocks
    (widths w, 2w, 4w), global average pooling and a dropout + linear head."""

    def __init__(self, num_classes: int = 10, width: int = 16, blocks: int = 1, dropout: float = 0.5) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        stages, c_in = [], width
        for i, c_out in enumerate((width, 2 * width, 4 * width)):
            for j in range(blocks):
                stages.append(BasicBlock(c_in, c_out, stride=2 if i > 0 and j == 0 else 1))
                c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, num_classes)
        )

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))


def build_model(method: str, warmup_epochs: int | None) -> nn.Module:
    """The ResNet with its ``nn.Dropout`` turned into ``method``'s layer."""
    model = ResNet()
    if method != "dropout":  # "dropout": keep the model as written
        kwargs = {} if warmup_epochs is None else {"warmup_epochs": warmup_epochs}
        ydrop.convert(model, method, **kwargs)  # the dropout's p becomes the method's base rate
    return model


# ------------------------------------------------------------------------ training loop
def train_epoch(model, guide, loader, optimizer, scheduler, progress: bool, scored: set[str]) -> int:
    """One epoch; adds the names of the layers the Guide scored to ``scored`` and
    returns the number of steps at which it scored some layer."""
    model.train()
    scored_steps = 0
    bar = tqdm(loader, total=len(loader), desc=f"epoch {loader.epoch}", unit="batch", leave=False,
               disable=not progress)
    for x, y in bar:
        if guide is not None:
            guide.step(x, y)  # scores the batch the next forward sees
            scored.update(guide.scored_layers)
            scored_steps += bool(guide.scored_layers)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return scored_steps


@torch.no_grad()
def accuracy(model: nn.Module, loader: BatchLoader) -> float:
    """Accuracy in percent, in eval mode (every guided layer is then the identity)."""
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += (model(x).argmax(1) == y).sum().item()
        total += y.numel()
    return 100.0 * correct / total


def train(args: argparse.Namespace, device: torch.device) -> float:
    train_set, test_set = load_cifar10(args)
    torch.manual_seed(args.seed)  # the same initial weights for every method
    model = build_model(args.method, args.warmup_epochs).to(device)
    guided = [name for name, m in model.named_modules() if isinstance(m, ydrop.GuidedDropout)]
    print(f"method {args.method}: guided layers {guided or 'none'}; device {device}; "
          f"{len(train_set)} training and {len(test_set)} test images")
    guide = ydrop.Guide(model) if guided else None
    loader = BatchLoader(train_set, args.batch_size, shuffle=True, seed=args.seed, device=device,
                         augment=PadCropFlip(padding=4, flip_p=0.5))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs * len(loader))
    scored, scored_steps = set(), 0
    for epoch in tqdm(range(args.epochs), desc=args.method, unit="epoch", disable=not args.progress):
        if guide is not None:
            guide.set_epoch(epoch)
        loader.set_epoch(epoch)
        scored_steps += train_epoch(model, guide, loader, optimizer, scheduler, args.progress, scored)
    if guide is not None:  # 0 for Activation Dropout, whose layers score their own input
        print(f"guide scored {len(scored)} layer(s) {sorted(scored)} at {scored_steps} of "
              f"{args.epochs * len(loader)} steps")
    return accuracy(model, BatchLoader(test_set, 500, device=device))


# ---------------------------------------------------------------------- data and options
def load_cifar10(args: argparse.Namespace):
    """CIFAR-10 train and test splits (the first ``--limit`` images of each)."""
    try:
        splits = [load_dataset("cifar10", args.data_dir, split, download=args.download, mirror=args.mirror)
                  for split in ("train", "test")]
    except DatasetNotFoundError as exc:
        sys.exit(f"error: {exc.cli_message}")
    if args.limit is not None:
        splits = [s.subset(range(min(args.limit, len(s)))) for s in splits]
    return splits


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, required=True, metavar="DIR",
                   help="folder holding cifar-10/ (downloaded there when missing)")
    p.add_argument("--no-download", dest="download", action="store_false", help="never download, only read")
    p.add_argument("--mirror", metavar="URL", help="a base URL serving cifar-10-python.tar.gz")
    p.add_argument("--method", default="ydrop", choices=METHODS,
                   help="what the model's nn.Dropout becomes (default: %(default)s)")
    p.add_argument("--epochs", type=positive_int, default=15, metavar="N", help="default: %(default)s")
    p.add_argument("--batch-size", type=positive_int, default=128, metavar="N", help="default: %(default)s")
    p.add_argument("--lr", type=positive_float, default=0.05, metavar="LR",
                   help="SGD's initial learning rate, cosine to 0 (default: %(default)s)")
    p.add_argument("--warmup-epochs", type=non_negative_int, metavar="N",
                   help="epochs of plain dropout before guiding (default: the method's, 2 for ydrop)")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="train and test on the first N images of each split (a quick try)")
    p.add_argument("--device", default="auto", choices=DEVICES, help="auto (default): cuda when available")
    p.add_argument("--seed", type=non_negative_int, default=0, metavar="N", help="default: %(default)s")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    args = p.parse_args(argv)
    if args.data_dir.exists() and not args.data_dir.is_dir():
        p.error(f"argument --data-dir: {str(args.data_dir)!r} is a file; give the folder that holds cifar-10/")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    test_accuracy = train(args, device)
    print(f"test accuracy: {test_accuracy:.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
