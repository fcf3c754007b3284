"""``create(name, ...)``: the papers' models by name, with the dropout method as an argument."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ._common import (
    DropoutMaker,
    check_hidden,
    check_in_shape,
    check_num_classes,
    check_width_multiplier,
    scaled,
)
from .nets import (
    CNN2_HIDDEN,
    FC_HIDDEN,
    IMAGENET_HIDDEN,
    M_HIDDEN,
    S_HIDDEN,
    VGG_CONFIGS,
    alexnet_features,
    cnn2_features,
    head_net,
    init_torchvision_style,
    layers80sec_features,
    m_features,
    mlp,
    vgg_features,
)
from .wrn import WideResNet

__all__ = ["create", "list_models", "load_state_dict_file", "MODELS"]

MNIST_SHAPE = (1, 28, 28)
CIFAR_SHAPE = (3, 32, 32)
IMAGENET_SHAPE = (3, 224, 224)


@dataclass(frozen=True)
class ModelSpec:
    """How to build one named model.

    ``build(name, num_classes, in_shape, make_dropout, **options)``; ``options``
    holds every keyword the model accepts, with its default.
    """

    build: Callable[..., nn.Module]
    in_shape: tuple[int, ...]
    description: str
    image: bool = True
    options: dict[str, Any] = field(default_factory=dict)


def _head_options(hidden: tuple[int, ...]) -> dict[str, Any]:
    return {"hidden": hidden, "width_multiplier": 1.0, "dropout_at": "all"}


def _scaled_hidden(hidden: Any, width_multiplier: Any) -> tuple[tuple[int, ...], float]:
    multiplier = check_width_multiplier(width_multiplier)
    return tuple(scaled(w, multiplier) for w in check_hidden(hidden)), multiplier


def _build_mlp(name, num_classes, in_shape, make_dropout, hidden, width_multiplier, dropout_at):
    hidden, _ = _scaled_hidden(hidden, width_multiplier)
    return mlp(name, in_shape, hidden, num_classes, make_dropout, dropout_at)


def _features_builder(features: Callable[..., nn.Module]):
    def build(name, num_classes, in_shape, make_dropout, hidden, width_multiplier, dropout_at):
        hidden, width = _scaled_hidden(hidden, width_multiplier)
        return head_net(name, lambda: features(in_shape[0], width), in_shape, hidden, num_classes,
                        make_dropout, dropout_at)
    return build


def _build_vgg(name, num_classes, in_shape, make_dropout, hidden, width_multiplier, dropout_at, batch_norm):
    if not isinstance(batch_norm, bool):
        raise ValueError(f"batch_norm must be True or False, got {batch_norm!r}")
    hidden, width = _scaled_hidden(hidden, width_multiplier)
    net = head_net(name, lambda: vgg_features(VGG_CONFIGS[name], in_shape[0], width, batch_norm), in_shape,
                   hidden, num_classes, make_dropout, dropout_at, avgpool=lambda: nn.AdaptiveAvgPool2d((7, 7)))
    return init_torchvision_style(net)


def _build_alexnet(name, num_classes, in_shape, make_dropout, hidden, width_multiplier, dropout_at):
    hidden, width = _scaled_hidden(hidden, width_multiplier)
    return head_net(name, lambda: alexnet_features(in_shape[0], width), in_shape, hidden, num_classes,
                    make_dropout, dropout_at, avgpool=lambda: nn.AdaptiveAvgPool2d((6, 6)))


def _build_wrn(name, num_classes, in_shape, make_dropout, width_multiplier, dropout_at, depth, widen_factor):
    width = check_width_multiplier(width_multiplier)
    return WideResNet(depth, widen_factor, num_classes, in_shape[0], make_dropout, dropout_at, width, name=name)


MODELS: dict[str, ModelSpec] = {}
for _name, _hidden in FC_HIDDEN.items():
    MODELS[_name] = ModelSpec(_build_mlp, MNIST_SHAPE, f"Y-Drop FC_{_name[-1]}: MLP {len(_hidden)}x{_hidden[0]}",
                              image=False, options=_head_options(_hidden))
for _name, _hidden in S_HIDDEN.items():
    MODELS[_name] = ModelSpec(_features_builder(layers80sec_features), CIFAR_SHAPE,
                              f"Y-Drop S_{_name[-1]}: layers-80sec CNN + FC {len(_hidden)}x{_hidden[0]}",
                              options=_head_options(_hidden))
for _name, _hidden in M_HIDDEN.items():
    MODELS[_name] = ModelSpec(_features_builder(m_features), CIFAR_SHAPE,
                              f"Y-Drop M_{_name[-1]}: CNN 96/128/256 + BN + FC {len(_hidden)}x{_hidden[0]}",
                              options=_head_options(_hidden))
MODELS["cnn2"] = ModelSpec(_features_builder(cnn2_features), CIFAR_SHAPE,
                           "Excitation Dropout CNN-2: CNN 96/128/256 + FC 2x2048", options=_head_options(CNN2_HIDDEN))
for _name in VGG_CONFIGS:
    MODELS[_name] = ModelSpec(_build_vgg, IMAGENET_SHAPE, f"VGG-{_name[3:]} (torchvision layout)",
                              options=dict(_head_options(IMAGENET_HIDDEN), batch_norm=False))
MODELS["alexnet"] = ModelSpec(_build_alexnet, IMAGENET_SHAPE, "AlexNet (torchvision layout, Caffe dropout placement)",
                              options=_head_options(IMAGENET_HIDDEN))
MODELS["wrn-28-10"] = ModelSpec(_build_wrn, CIFAR_SHAPE, "Wide ResNet 28-10 (dropout inside each block)",
                                options={"width_multiplier": 1.0, "dropout_at": "all", "depth": 28, "widen_factor": 10})

_WRN_NAME = re.compile(r"^wrn-(\d+)-(\d+)$")


def list_models() -> list[str]:
    """The model names :func:`create` accepts (also "wrn-<depth>-<widen_factor>")."""
    return list(MODELS)


def _lookup(name: Any) -> tuple[str, ModelSpec, dict[str, Any]]:
    """(canonical name, spec, options fixed by the name)."""
    if isinstance(name, str):
        text = name.strip().lower().replace("_", "-")
        match = _WRN_NAME.match(text)
        if match:
            depth, widen = int(match.group(1)), int(match.group(2))
            return text, MODELS["wrn-28-10"], {"depth": depth, "widen_factor": widen}
        key = text.replace("-", "")
        if key in MODELS:
            return key, MODELS[key], {}
    raise ValueError(
        f"model name must be one of {', '.join(map(repr, MODELS))} (or 'wrn-<depth>-<widen_factor>'), got {name!r}"
    )


def create(
    name: str,
    num_classes: int = 10,
    in_shape: tuple[int, ...] | None = None,
    dropout: Any = "dropout",
    dropout_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """One of the papers' models, with ``dropout`` after every hidden FC activation.

    Args:
        name: see :func:`list_models`: "fc1".."fc4", "s1".."s4", "m1", "m2", "cnn2",
            "vgg16", "vgg19", "alexnet", "wrn-28-10" (case, "_" and "-" are
            ignored: "FC_1", "S_4", "cnn-2" work; "wrn-D-K" builds any depth/width).
        num_classes: outputs of the final layer (10).
        in_shape: one input's shape (C, H, W); None for the model's paper default:
            (1, 28, 28) for FC (MNIST), (3, 32, 32) for S, M, CNN-2 and WRN
            (CIFAR), (3, 224, 224) for VGG and AlexNet. The FC head is sized from it.
        dropout: the method, any name or class :func:`ydrop.create_dropout` takes
            ("none", "dropout", "curriculum", "standout", "information", "ydrop",
            "excitation", "activation"). A fresh module is built for every place;
            "none" puts ``nn.Identity`` there (no parameters).
        dropout_kwargs: keyword arguments of the method, e.g. ``{"p": 0.3}``.
            ``num_units`` is filled in for methods that take it.
        **kwargs: model options; unknown ones raise listing the allowed ones:
            ``hidden`` (the hidden FC widths, default the paper's),
            ``width_multiplier`` (scales every conv and hidden width; 1.0),
            ``dropout_at`` ("all", "first", "last", "none" or a list of slot
            indices: hidden FC layers, or WRN blocks), ``batch_norm`` (VGG only),
            ``depth`` and ``widen_factor`` (WRN only).

    The returned network has ``dropout_modules()`` (the modules the method built,
    in forward order) and, except WRN, ``features``, ``classifier`` and
    ``fc_parameter_count()``. Build big models on the meta device to inspect them
    without allocating: ``with torch.device("meta"): create("vgg16")``.
    """
    canonical, spec, fixed = _lookup(name)
    unknown = [key for key in kwargs if key not in spec.options]
    if unknown:
        raise TypeError(
            f"model {canonical!r} got unknown keyword argument{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; it accepts: {', '.join(spec.options)}"
        )
    clash = [key for key in fixed if key in kwargs and kwargs[key] != fixed[key]]
    if clash:
        raise ValueError(
            f"model {canonical!r} fixes {', '.join(f'{k}={fixed[k]}' for k in clash)} by its name; "
            f"got {', '.join(f'{k}={kwargs[k]!r}' for k in clash)}"
        )
    num_classes = check_num_classes(num_classes)
    in_shape = check_in_shape(spec.in_shape if in_shape is None else in_shape, canonical, spec.image)
    make_dropout = DropoutMaker(dropout, dropout_kwargs)
    options = {**spec.options, **kwargs, **fixed}
    return spec.build(canonical, num_classes, in_shape, make_dropout, **options)


def load_state_dict_file(
    model: nn.Module, path: str | os.PathLike, strict: bool = True, map_location: Any = "cpu"
) -> Any:
    """Load a local state dict file into ``model`` (nothing is ever downloaded).

    The file may hold the state dict itself or a checkpoint dict with it under
    "state_dict", "model_state_dict" or "model"; a "module." prefix on every key
    (``nn.DataParallel``) is removed. Loaded with ``torch.load(weights_only=True)``.
    Returns what ``model.load_state_dict`` returns (missing and unexpected keys).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or os.PathLike), got {type(path).__name__}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path {os.fspath(path)!r} is not a file: no state dict to load")
    state = _state_dict_in(torch.load(path, map_location=map_location, weights_only=True), path)
    return model.load_state_dict(_without_data_parallel_prefix(state), strict=strict)


def _state_dict_in(loaded: Any, path: str | os.PathLike) -> Mapping[str, torch.Tensor]:
    """The state dict in what ``path`` held: ``loaded`` itself, or the first mapping
    found under "state_dict", "model_state_dict" or "model" of a checkpoint dict."""
    if isinstance(loaded, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(loaded.get(key), Mapping):
                loaded = loaded[key]
                break
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ValueError(
            f"path {os.fspath(path)!r} does not hold a state dict (a mapping of names to tensors), "
            f"nor a checkpoint with one under 'state_dict', 'model_state_dict' or 'model'"
        )
    return loaded


def _without_data_parallel_prefix(state: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    """``state`` with the "module." prefix that ``nn.DataParallel`` puts on every key
    removed; unchanged when some key lacks it (then it is part of the model's names)."""
    if state and all(key.startswith("module.") for key in state):
        return {key[len("module."):]: value for key, value in state.items()}
    return state
