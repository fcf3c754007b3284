"""The network's affine stem, for conductance without running it again.

Conductance (Y-Drop, Eq. 2) runs the points x' + a (x - x') of the path through
the network. When the first module on the input is affine (a Linear or Conv
reading the input itself or a view of it, ``nn.Flatten``), its outputs on the path
are f(x') + a (f(x) - f(x')): the same points, interpolated between the stem's
outputs at the two ends. The training forward computes f(x) for the whole batch
anyway, so the Guide takes the scored samples' rows of it and runs the pass over
the modules above the stem only (on FC_1 this skips 13 rows through the 784 x 1024
weight, 0.5 ms of a 4.7 ms pass). With the zero baseline the Guide uses, f(x') is
the stem's bias, exactly: no product at all.

Shapes: the stem's output (B, *) in, the rows f(0) (1, *) out.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._chain import chain_above, modules_above
from ._hooks import eval_mode
from ._path import AFFINE, broadcast_bias

__all__ = ["affine_stem", "stem_output_at_zero"]


def affine_stem(model: nn.Module, probe: Tensor) -> tuple[nn.Module, nn.Sequential] | None:
    """(stem, chain): the first module ``model`` calls, when it is affine and reads
    the input or a view of it, and ``nn.Sequential(nn.Identity(), *modules above it)``
    mapping its output to the model's output (``chain_above``); None otherwise.

    One forward of ``probe`` (a batch of one sample; eval mode, no gradient) finds it.
    """
    # The stem must sit in nn.Sequential containers (``chain_above``): read from the
    # module tree, which spares other models the probe's forward.
    if not any(type(m) in AFFINE and modules_above(model, m) is not None for m in model.modules()):
        return None
    probe = probe.detach().clone()  # its own storage: views of it have it as their base
    unchanged = probe._version
    calls: list[tuple[nn.Module, object, int]] = []

    def record(module, args):
        # The probe's version too: an in-place op before the stem changes what it reads.
        calls.append((module, args[0] if len(args) == 1 else None, probe._version))

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [leaf.register_forward_pre_hook(record) for leaf in leaves]
    try:
        with torch.no_grad(), eval_mode(model):
            model(probe)
    finally:
        for handle in handles:
            handle.remove()
    # Leaves called before the stem must pass the input on unchanged (nn.Identity,
    # nn.Flatten): the stem then reads the input itself or a view of it.
    for module, first_input, version in calls:
        reads_input = isinstance(first_input, Tensor) and (first_input is probe or first_input._base is probe)
        if not reads_input or version != unchanged:
            return None
        if type(module) in AFFINE:  # exact types: a subclass may compute otherwise
            chain = chain_above(model, module, probe)
            return None if chain is None else (module, chain)
    return None


def stem_output_at_zero(stem: nn.Module, outputs: Tensor) -> Tensor:
    """The stem's output for a zero input, (1, *outputs.shape[1:]): its bias broadcast
    (zero times any weight is zero, and a Conv pads zeros with zeros or copies of
    them), or zeros without a bias."""
    shape = (1,) + outputs.shape[1:]
    if stem.bias is None:
        return outputs.new_zeros(shape)
    # A view of the bias, not a sum with zeros: the pass only reads its start point,
    # and the start is not part of any graph.
    return broadcast_bias(stem, len(shape)).detach().to(outputs.dtype).expand(shape)
