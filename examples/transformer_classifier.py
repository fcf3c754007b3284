#!/usr/bin/env python3
"""Guided dropout in your own transformer: a sequence classifier with padding masks.

The model below is an ordinary ``nn.TransformerEncoder`` (``batch_first=True``) over
token ids, with a padding mask, masked mean pooling and an ``nn.Dropout`` in its head.
``ydrop.convert`` turns every ``nn.Dropout`` in it (the encoder layers' and the head's)
into guided dropout, and a ``ydrop.Guide`` scores them all in one pass per step.
Two things differ from an image model:

* token ids cannot be interpolated, so the guided layers use ``score="gradxact"``
  (activation x gradient of the true class's logit) rather than conductance;
* the forward takes a padding mask, so the Guide gets it too, by the same keyword:
  ``guide.step(ids, y, src_key_padding_mask=mask)``.

``--checkpointing`` recomputes each encoder layer in the backward
(``torch.utils.checkpoint``) instead of keeping its activations, in training only, as
Hugging Face models do: the Guide scores the model in eval mode, and every guided
layer draws the same mask again in the recomputation (README, Usage).

The data is synthetic and generated here: sequences of 8 to 32 tokens, padded per
batch to the longest one; the class is the one of the marker tokens A, B, C that
occurs most often (a count the model has to learn to compare). The script prints the
test accuracy before and after training (chance is 33 %).

    python examples/transformer_classifier.py --method ydrop --epochs 5
    python examples/transformer_classifier.py --method excitation --compile   # torch.compile the model
    python examples/transformer_classifier.py --checkpointing   # activation checkpointing per encoder layer
    python examples/transformer_classifier.py --limit 256 --epochs 1 --warmup-epochs 0   # a quick try

``--method`` is one of dropout (the model as written), ydrop, excitation, activation.
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from tqdm.auto import tqdm

import ydrop

from _options import non_negative_int, pick_device, positive_float, positive_int  # examples/_options.py, next to this script

METHODS = ("dropout", "ydrop", "excitation", "activation")
DEVICES = ("auto", "cpu", "cuda")
PAD, MARKERS, VOCAB = 0, (1, 2, 3), 16  # id 0 pads; 1, 2, 3 are the markers A, B, C; 4..15 fill
MIN_LEN, MAX_LEN = 8, 32


# ------------------------------------------------------------------------------ the task
def make_task(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` sequences: ids (n, MAX_LEN) padded with PAD, lengths (n,), labels (n,).

    Each token is a marker with probability 1/2 (A, B or C alike), else a filler; the
    label is the marker that occurs most often. Sequences with a tie are drawn again.
    """
    ids, lengths, labels = [], [], []
    while sum(len(y) for y in labels) < n:
        length = torch.randint(MIN_LEN, MAX_LEN + 1, (2 * n,), generator=generator)
        marker = torch.randint(1, 1 + len(MARKERS), (2 * n, MAX_LEN), generator=generator)
        filler = torch.randint(1 + len(MARKERS), VOCAB, (2 * n, MAX_LEN), generator=generator)
        seq = torch.where(torch.rand(2 * n, MAX_LEN, generator=generator) < 0.5, marker, filler)
        seq[torch.arange(MAX_LEN) >= length[:, None]] = PAD
        counts = torch.stack([(seq == m).sum(1) for m in MARKERS], dim=1)
        top2 = counts.topk(2, dim=1).values
        unique = top2[:, 0] > top2[:, 1]
        ids.append(seq[unique]), lengths.append(length[unique]), labels.append(counts[unique].argmax(1))
    return torch.cat(ids)[:n], torch.cat(lengths)[:n], torch.cat(labels)[:n]


def batches(ids: Tensor, lengths: Tensor, labels: Tensor, batch_size: int, device: torch.device,
            generator: torch.Generator | None = None):
    """(ids, padding mask, labels) batches on ``device``, shuffled when a generator is
    given, each cut to its longest sequence; the mask is True at padding."""
    order = torch.randperm(len(ids), generator=generator) if generator is not None else torch.arange(len(ids))
    for start in range(0, len(ids), batch_size):
        index = order[start:start + batch_size]
        longest = int(lengths[index].max())
        x = ids[index, :longest].to(device)
        mask = torch.arange(longest, device=device) >= lengths[index].to(device)[:, None]
        yield x, mask, labels[index].to(device)


# ----------------------------------------------------------------------------- the model
class Classifier(nn.Module):
    """Token and position embeddings, a transformer encoder, masked mean pooling and an
    MLP head with dropout; ``checkpointing``: each encoder layer checkpointed in training."""

    def __init__(self, d_model: int = 32, heads: int = 4, layers: int = 2, classes: int = len(MARKERS),
                 checkpointing: bool = False) -> None:
        super().__init__()
        self.checkpointing = checkpointing
        self.embed = nn.Embedding(VOCAB, d_model, padding_idx=PAD)
        self.position = nn.Parameter(0.02 * torch.randn(1, MAX_LEN, d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=2 * d_model, dropout=0.1,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Dropout(0.5),
                                  nn.Linear(d_model, classes))

    def forward(self, ids: Tensor, src_key_padding_mask: Tensor) -> Tensor:
        h = self.embed(ids) + self.position[:, : ids.shape[1]]
        if self.checkpointing and self.training:  # never in eval, where the Guide scores (README, Usage)
            for layer in self.encoder.layers:
                h = checkpoint(layer, h, None, src_key_padding_mask, use_reentrant=False)
        else:
            h = self.encoder(h, src_key_padding_mask=src_key_padding_mask)
        keep = (~src_key_padding_mask).unsqueeze(-1).to(h.dtype)
        pooled = (h * keep).sum(1) / keep.sum(1).clamp(min=1)
        return self.head(pooled)


def build_model(method: str, warmup_epochs: int | None, checkpointing: bool = False) -> nn.Module:
    """The classifier with its ``nn.Dropout`` modules turned into ``method``'s layers."""
    model = Classifier(checkpointing=checkpointing)
    if method == "dropout":  # the model as written
        return model
    kwargs = {} if warmup_epochs is None else {"warmup_epochs": warmup_epochs}
    if method != "activation":  # Activation Dropout reads its own input and needs no score
        kwargs["score"] = "gradxact"  # conductance would interpolate the token ids
    return ydrop.convert(model, method, **kwargs)  # each dropout's p becomes the base rate


# ------------------------------------------------------------------------ training loop
def train_epoch(model, guide, data, args, device, optimizer, generator, scored: set[str]) -> None:
    """One epoch over ``data``; adds the names of the layers the Guide scored to ``scored``."""
    model.train()
    steps = -(-len(data[0]) // args.batch_size)
    bar = tqdm(batches(*data, args.batch_size, device, generator), total=steps, unit="batch", leave=False,
               disable=not args.progress)
    for ids, mask, y in bar:
        if guide is not None:
            guide.step(ids, y, src_key_padding_mask=mask)  # the forward's other arguments, by keyword
            scored.update(guide.scored_layers)
        loss = F.cross_entropy(model(ids, src_key_padding_mask=mask), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")


@torch.no_grad()
def accuracy(model: nn.Module, data, device: torch.device) -> float:
    """Accuracy in percent, in eval mode (every guided layer is then the identity)."""
    model.eval()
    correct = 0
    for ids, mask, y in batches(*data, 500, device):
        correct += (model(ids, src_key_padding_mask=mask).argmax(1) == y).sum().item()
    return 100.0 * correct / len(data[0])


def run(args: argparse.Namespace, device: torch.device) -> None:
    generator = torch.Generator().manual_seed(args.seed)
    train_set, test_set = make_task(args.limit or 4000, generator), make_task(args.limit or 1000, generator)
    torch.manual_seed(args.seed)  # the same initial weights for every method
    model = build_model(args.method, args.warmup_epochs, args.checkpointing).to(device)
    guided = [name for name, m in model.named_modules() if isinstance(m, ydrop.GuidedDropout)]
    print(f"method {args.method}: {len(guided)} guided layer(s); device {device}; "
          f"{len(train_set[0])} training and {len(test_set[0])} test sequences")
    guide = ydrop.Guide(model) if guided else None  # the Guide takes the model, compiled or not
    net = torch.compile(model) if args.compile else model
    print(f"test accuracy before training: {accuracy(net, test_set, device):.2f} %")
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    scored: set[str] = set()
    for epoch in tqdm(range(args.epochs), desc=args.method, unit="epoch", disable=not args.progress):
        if guide is not None:
            guide.set_epoch(epoch)
        train_epoch(net, guide, train_set, args, device, optimizer, generator, scored)
    if guide is not None:  # 0 for Activation Dropout, whose layers score their own input
        print(f"guide scored {len(scored)} layer(s)")
    print(f"test accuracy after training: {accuracy(net, test_set, device):.2f} %")


# ------------------------------------------------------------------------------ options
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="ydrop", choices=METHODS,
                   help="what the model's nn.Dropout modules become (default: %(default)s)")
    p.add_argument("--epochs", type=positive_int, default=5, metavar="N", help="default: %(default)s")
    p.add_argument("--batch-size", type=positive_int, default=64, metavar="N", help="default: %(default)s")
    p.add_argument("--lr", type=positive_float, default=2e-3, metavar="LR", help="AdamW's (default: %(default)s)")
    p.add_argument("--warmup-epochs", type=non_negative_int, metavar="N",
                   help="epochs of plain dropout before guiding (default: the method's, 2 for ydrop)")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="N training and N test sequences (default: 4000 and 1000)")
    p.add_argument("--compile", action="store_true", help="train and evaluate torch.compile(model)")
    p.add_argument("--checkpointing", action="store_true",
                   help="recompute each encoder layer in the backward (torch.utils.checkpoint), in training only")
    p.add_argument("--device", default="auto", choices=DEVICES, help="auto (default): cuda when available")
    p.add_argument("--seed", type=non_negative_int, default=0, metavar="N", help="default: %(default)s")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    run(args, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
