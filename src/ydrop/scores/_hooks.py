"""Helpers shared by every score: argument checks, and context managers that undo
themselves in ``finally``, so that a scoring call never leaves a hook registered or
a module in the wrong train/eval state, also when the model raises (Captum's habit).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import CheckpointError

from .._validation import CHECKPOINT_ADVICE, check_layer_list, check_module, check_targets, name_hint

LayerSpec = nn.Module | str

__all__ = ["LayerSpec", "prepare_call", "resolve_layers", "eval_mode", "capture_outputs", "target_gradients"]


def prepare_call(model: nn.Module, inputs: Tensor, target, layers) -> tuple[Tensor, list[nn.Module]]:
    """The checks of a public score function: ``inputs`` a (B, *) tensor; returns the
    (B,) class indices on the inputs' device and the resolved modules."""
    if not isinstance(inputs, Tensor) or inputs.dim() < 1:
        shape = f" of shape {tuple(inputs.shape)}" if isinstance(inputs, Tensor) else ""
        raise ValueError(f"inputs must be a tensor of shape (B, ...), got {type(inputs).__name__}{shape}")
    target = check_targets("target", target, inputs.shape[0]).to(inputs.device)
    return target, [module for _, module in resolve_layers(model, layers)]


def resolve_layers(model: nn.Module, layers: LayerSpec | Sequence[LayerSpec]) -> list[tuple[str, nn.Module]]:
    """Normalise ``layers`` (a module, a qualified name, or a list of them) to
    ``[(name, module), ...]``, refusing anything that is not inside ``model``."""
    layers = [layers] if isinstance(layers, (nn.Module, str)) else check_layer_list(layers)
    if not layers:
        raise ValueError("layers must name at least one submodule of the model, got an empty list")
    by_identity = {id(module): name for name, module in check_module("model", model).named_modules()}
    by_name = dict(model.named_modules())
    resolved: list[tuple[str, nn.Module]] = []
    for index, layer in enumerate(layers):
        if isinstance(layer, str) and layer in by_name:
            resolved.append((layer, by_name[layer]))
        elif isinstance(layer, nn.Module) and id(layer) in by_identity:
            resolved.append((by_identity[id(layer)], layer))
        elif isinstance(layer, str):
            raise ValueError(f"layers[{index}] = {layer!r} is not the name of a submodule of the model; "
                             f"{name_hint(layer, list(by_name))}")
        elif isinstance(layer, nn.Module):
            raise ValueError(f"layers[{index}] = {layer.__class__.__name__}({layer.extra_repr()}) "
                             "is not a submodule of the model")
        else:
            raise TypeError(f"layers[{index}] must be an nn.Module or a submodule name, got {type(layer).__name__}")
    return resolved


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode (dropout off, batch norm on running
    statistics) and restore each module's own flag afterwards."""
    modules = list(model.modules())
    flags = [module.training for module in modules]
    try:
        model.eval()
        yield model
    finally:
        for module, flag in zip(modules, flags):
            module.training = flag


@contextmanager
def capture_outputs(modules: Sequence[nn.Module]) -> Iterator[list[list[Tensor]]]:
    """Record each module's output on every call, in call order: one list per
    module, one entry per call (weight sharing). Only tensor outputs are supported."""
    captured: list[list[Tensor]] = [[] for _ in modules]

    def make_hook(slot: list[Tensor]):
        def hook(module, _inputs, output):
            if not isinstance(output, Tensor):
                raise TypeError(f"{module.__class__.__name__} returned {type(output).__name__}; "
                                "scores need a layer whose output is a single tensor")
            slot.append(output)

        return hook

    handles = []
    try:
        for module, slot in zip(modules, captured):
            handles.append(module.register_forward_hook(make_hook(slot)))
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def target_gradients(logits: Tensor, outputs: Sequence[Tensor], cotangent: Tensor) -> tuple[Tensor | None, ...]:
    """``autograd.grad(logits, outputs, cotangent)``, None for an output the logits do
    not depend on (all None if no output feeds them); a checkpointed block's
    mismatched recomputation is explained."""
    if not logits.requires_grad:
        return (None,) * len(outputs)
    try:
        return torch.autograd.grad(logits, outputs, cotangent, allow_unused=True)
    except CheckpointError as error:
        raise ValueError(f"a checkpointed block of the model recomputed a different forward than the scoring "
                         f"pass ran; {CHECKPOINT_ADVICE}") from error
