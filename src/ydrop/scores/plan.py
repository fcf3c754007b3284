"""One structural plan per (model, scored layers): what the passes and the Guide reuse.

Read through public APIs (the module tree, ``iter(nn.Sequential)``, forward hooks on
one probe forward of a single sample), cached weakly by model and by the ids of its
modules (a module swapped in gives a new plan); hooks are not part of it.
``lowest_anchor``: the scored layer in plain ``nn.Sequential`` containers whose
outermost one returns the logits, the other scored layers after it (residual or
functional code above it leaves the generic pass). ``stem_anchor``: the model's first
module, when an exact Linear / Conv reading the input (or an ``nn.Flatten`` /
``nn.Identity`` view of it) with such a chain above holding every scored layer.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._hooks import eval_mode

__all__ = ["Anchor", "lowest_anchor", "stem_anchor", "chain_leaves", "identity_in_eval", "trains_differently",
           "recorded_calls"]

AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TORCH_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
_NORMS_WITH_STATS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def identity_in_eval(module: nn.Module) -> bool:
    """Whether ``module``'s eval forward returns its input: nn.Identity, torch's dropout, ydrop's
    guided layers, its plain and curriculum dropout and information dropout's "identity" eval."""
    from ..layers import CurriculumDropout, Dropout, GuidedDropout, InformationDropout  # ``layers`` imports ``scores``

    plain = isinstance(module, InformationDropout) and module.eval_output == "identity"
    return plain or isinstance(module, (nn.Identity, *_TORCH_DROPOUTS, GuidedDropout, Dropout, CurriculumDropout))


def trains_differently(module: nn.Module) -> bool:
    """Whether ``module``'s training forward differs from its eval one: dropout of any
    kind (torch's and every method of ydrop's factory) and batch norm."""
    from ..layers import GuidedDropout
    from ..layers.factory import DROPOUT_METHODS

    ours = tuple(method for method in DROPOUT_METHODS.values() if isinstance(method, type))
    return isinstance(module, (*_TORCH_DROPOUTS, *_NORMS_WITH_STATS, GuidedDropout, *ours))


@dataclass(frozen=True)
class Anchor:
    """A module whose activation the passes may start from, ``chain`` the modules
    mapping its output to the logits in call order (holding every other scored
    layer), ``same_in_training`` whether nothing outside them trains differently."""

    module: nn.Module
    chain: tuple[nn.Module, ...]
    same_in_training: bool


_PLANS: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


def lowest_anchor(model: nn.Module, layers: list[nn.Module], probe: Tensor) -> Anchor | None:
    """The scored layer whose chain above holds every other one, if any.
    ``probe``: the batch whose first sample runs when the module tree cannot tell."""
    return _cached(model, layers, probe, "lowest")


def stem_anchor(model: nn.Module, layers: list[nn.Module], probe: Tensor) -> Anchor | None:
    """The affine stem, when the modules above it form a chain holding every scored layer."""
    return _cached(model, layers, probe, "stem")


def _cached(model: nn.Module, layers: list[nn.Module], probe: Tensor, which: str) -> Anchor | None:
    tree = tuple(id(module) for module in model.modules())
    key = (which, tuple(id(layer) for layer in layers))
    cached = _PLANS.setdefault(model, {})
    if cached.get("tree") != tree:  # a module was swapped: the older plans no longer hold
        cached.clear()
        cached["tree"] = tree
    if key not in cached:
        find = _find_lowest if which == "lowest" else _find_stem
        with torch.no_grad(), eval_mode(model):
            cached[key] = find(model, layers, probe.detach()[:1])
    return cached[key]


def _find_lowest(model: nn.Module, layers: list[nn.Module], probe: Tensor) -> Anchor | None:
    for layer in layers:
        chain = chain_above(model, layer, probe)
        if chain is not None and _holds(chain, layers, layer):
            return Anchor(layer, chain, _outside_same(model, chain + (layer,)))
    return None


def _find_stem(model: nn.Module, layers: list[nn.Module], probe: Tensor) -> Anchor | None:
    # Only an affine module in a plain nn.Sequential can have a chain above it (no probe needed to tell).
    if not any(type(m) in AFFINE and _in_plain_sequential(model, m) for m in model.modules()):
        return None
    stem = _affine_stem(model, probe)
    chain = None if stem is None else chain_above(model, stem, probe)
    if chain is None or not _holds(chain, layers):
        return None
    return Anchor(stem, chain, _outside_same(model, chain + (stem,)))


def _in_plain_sequential(model: nn.Module, module: nn.Module) -> bool:
    return any(_plain_sequential(parent) and any(child is module for child in parent.children())
               for parent in model.modules())


def _holds(chain: tuple[nn.Module, ...], layers: list[nn.Module], skip: nn.Module | None = None) -> bool:
    inside = {id(module) for top in chain for module in top.modules()}
    return all(id(layer) in inside for layer in layers if layer is not skip)


def _outside_same(model: nn.Module, kept: tuple[nn.Module, ...]) -> bool:
    inside = {id(module) for top in kept for module in top.modules()}
    return not any(trains_differently(m) for m in model.modules() if id(m) not in inside)


def _plain_sequential(module: nn.Module) -> bool:
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def chain_above(model: nn.Module, layer: nn.Module, probe: Tensor) -> tuple[nn.Module, ...] | None:
    """The modules that map ``layer``'s output to ``model``'s output, in call order,
    when ``layer`` sits in plain ``nn.Sequential`` containers whose outermost one
    returns the model's output (checked by a forward of ``probe`` when that container
    is not the model itself); None otherwise."""
    parents: dict[int, nn.Module | None] = {}
    for parent in model.modules():
        for child in parent.children():
            parents[id(child)] = None if id(child) in parents else parent  # shared: no single place
    tail: list[nn.Module] = []
    node = layer
    while node is not model:
        parent = parents.get(id(node))
        if parent is None or not _plain_sequential(parent):
            break
        members = list(parent)  # call order, repeats included
        if sum(member is node for member in members) != 1:
            return None
        tail += members[members.index(node) + 1:]
        node = parent
    if node is layer:
        return None
    if node is not model and not _returns_model_output(model, node, layer, probe):
        return None
    return tuple(tail)


def recorded_calls(model: nn.Module, modules: list[nn.Module], probe: Tensor) -> tuple[list[tuple], object]:
    """Run ``probe`` through ``model``: each call of ``modules`` (module, first input, output) in order; the output."""
    calls: list[tuple] = []

    def record(module, args, output):
        calls.append((module, args[0] if len(args) == 1 else None, output))

    handles = [module.register_forward_hook(record) for module in modules]
    try:
        output = model(probe)
    finally:
        for handle in handles:
            handle.remove()
    return calls, output


def _returns_model_output(model: nn.Module, node: nn.Module, layer: nn.Module, probe: Tensor) -> bool:
    calls, output = recorded_calls(model, [node, layer], probe)
    node_outputs = [out for module, _, out in calls if module is node]
    return len(calls) == 2 and len(node_outputs) == 1 and node_outputs[0] is output


def _affine_stem(model: nn.Module, probe: Tensor) -> nn.Module | None:
    """The first leaf the model calls, when it is an exact Linear / Conv reading
    ``probe`` itself or through exact ``nn.Flatten`` / ``nn.Identity`` leaves."""
    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    expected: object = probe
    for module, first_input, output in recorded_calls(model, leaves, probe)[0]:
        if first_input is not expected:
            return None
        if type(module) in AFFINE:
            return module
        if type(module) not in (nn.Flatten, nn.Identity):
            return None
        expected = output
    return None


def chain_leaves(chain: tuple[nn.Module, ...], supported) -> list[nn.Module] | None:
    """``chain`` with its plain ``nn.Sequential`` containers opened, when
    ``supported(leaf)`` holds for every leaf; else None."""
    leaves: list[nn.Module] = []
    for module in chain:
        if _plain_sequential(module):
            inner = chain_leaves(tuple(module), supported)
            if inner is None:
                return None
            leaves += inner
        elif supported(module):
            leaves.append(module)
        else:
            return None
    return leaves
