"""Find the modules above a layer when they form a chain.

Excitation Dropout (Zunino et al., Fig. 1) scores a layer with the activations of
the training forward up to that layer and a partial pass above it. That is only
possible when the model's output is a plain composition of modules applied to the
layer's output, i.e. the layer sits in (nested) ``nn.Sequential`` containers and
the outermost of them returns the model's output. Custom ``forward`` code between
the layer and the output (residual additions, functional ops) breaks the chain.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._hooks import capture_outputs, eval_mode

__all__ = ["chain_above", "modules_above", "is_plain_sequential"]


def is_plain_sequential(module: nn.Module) -> bool:
    # Container hooks would not run when the tail's modules are called one by one.
    hooked = module._forward_hooks or module._forward_pre_hooks
    return type(module).forward is nn.Sequential.forward and not hooked


def modules_above(model: nn.Module, layer: nn.Module) -> tuple[list[nn.Module], nn.Module] | None:
    """(the modules after ``layer`` in its nested plain ``nn.Sequential``
    containers, the outermost of those containers), or None when ``layer`` is not
    inside one. Read from the module tree alone: whether the outermost container's
    output is the model's output is for the caller to check."""
    parents: dict[int, tuple[nn.Module, str] | None] = {}
    for parent in model.modules():
        for name, child in parent.named_children():
            # A module held twice has no single place in the network.
            parents[id(child)] = None if id(child) in parents else (parent, name)
    tail: list[nn.Module] = []
    node = layer
    while node is not model and parents.get(id(node)) is not None:
        parent, name = parents[id(node)]
        if not is_plain_sequential(parent):
            break
        names = list(parent._modules)
        tail += [m for m in list(parent._modules.values())[names.index(name) + 1:] if m is not None]
        node = parent
    return None if node is layer else (tail, node)


def chain_above(model: nn.Module, layer: nn.Module, probe: Tensor) -> nn.Sequential | None:
    """``nn.Sequential(nn.Identity(), *modules)`` with the modules that map ``layer``'s
    output to ``model``'s output, or None when they do not form a chain.

    The leading ``nn.Identity`` stands for ``layer``'s output. When ``layer`` sits in
    ``nn.Sequential`` containers inside a model with its own ``forward``, one forward
    of ``probe`` (a batch of one sample; eval mode, no gradient) checks that the
    outermost container's output *is* the model's output.
    """
    above = modules_above(model, layer)
    if above is None:
        return None
    tail, node = above
    chain = nn.Sequential(nn.Identity(), *tail)
    if node is model:
        return chain
    with torch.no_grad(), eval_mode(model), capture_outputs([node, layer]) as captured:
        output = model(probe)
    ran_once = all(len(calls) == 1 for calls in captured)
    return chain if ran_once and captured[0][0] is output else None
