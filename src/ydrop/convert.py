"""Turn the dropout of an existing model into guided dropout: :func:`convert`.

Like ``nn.SyncBatchNorm.convert_sync_batchnorm``: every ``nn.Dropout`` (and
``nn.Dropout1d`` / ``nn.Dropout2d`` / ``nn.Dropout3d``, and subclasses of these) of
a model is replaced, in place, by the layer ``ydrop.create_dropout(method,
**kwargs)`` builds, e.g. Y-Drop (Georgiou et al., *Y-Drop: A Conductance based
Dropout for fully connected layers*) or Excitation / Activation Dropout (Zunino et
al., *Excitation Dropout*)::

    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, batch_first=True), 2)
    ydrop.convert(model, "ydrop")          # every dropout is now a YDrop layer
    guide = ydrop.Guide(model)

Shapes: the new layer keeps its input's shape; its units follow ``unit_dim``
(``layers/base.py``), for the guided layers and the baselines ("dropout",
"curriculum", "standout", "information") alike: the D features of a transformer's
(B, T, D) activations, the C channels of a (B, C, H, W) conv map, the N features of
a (B, N) head.
"""

from __future__ import annotations

import fnmatch
import itertools
import warnings
from collections.abc import Callable
from typing import Any, Union

import torch
from torch import nn

from .layers.factory import accepted_keywords, create_dropout, resolve_dropout

__all__ = ["convert", "CONVERTED_TYPES"]

# The modules replaced: torch's unit dropouts. ``nn.AlphaDropout`` and
# ``nn.FeatureAlphaDropout`` are left alone: they keep a SELU network's activations
# self-normalising, which rescaled guided masks would break.
CONVERTED_TYPES: tuple[type[nn.Module], ...] = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)

# Channel dropouts: their units are the channels, dim 1, whatever the input rank
# (nn.Dropout1d's (B, C, L) would otherwise read as a (B, T, D) sequence).
_CHANNEL_TYPES: tuple[type[nn.Module], ...] = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)

# Where a dropout's rate p goes, the first keyword the method accepts: the base rate
# of Excitation / Activation Dropout and of plain dropout; Y-Drop's warm-up (and
# fallback) rate; Curriculum Dropout's final retain probability.
_RATE_KEYWORDS: tuple[tuple[str, Callable[[float], float]], ...] = (
    ("p", lambda p: p),
    ("warmup_p", lambda p: p),
    ("keep_bar", lambda p: 1.0 - p),
)

Include = Union[str, Callable[[str, nn.Module], bool], None]


def convert(model: nn.Module, method: Any, *, include: Include = None, **kwargs: Any) -> nn.Module:
    """Replace the dropout modules of ``model`` by ``method``'s layer, in place.

    Args:
        model: any ``nn.Module``. Its ``nn.Dropout``, ``nn.Dropout1d``, ``nn.Dropout2d``
            and ``nn.Dropout3d`` modules (and their subclasses) are replaced, each by a
            fresh layer on the model's device, in the dropout's train / eval mode.
            ``nn.AlphaDropout`` and functional dropout (``F.dropout``, the attention
            weights' dropout inside ``nn.MultiheadAttention``) are not modules of
            these types and stay as they are.
        method: what ``ydrop.create_dropout`` takes: "ydrop", "excitation",
            "activation", "dropout", ... or a class / factory.
        include: which dropout modules to replace (default: all). A string is a
            glob pattern (``fnmatch``, case-sensitive) matched against the module's
            qualified name as ``model.named_modules()`` gives it, e.g.
            ``"layers.*.dropout1"``; a callable ``include(name, module) -> bool``
            decides per module. A pattern that matches none of the model's dropout
            modules raises an error listing them.
        **kwargs: the method's constructor arguments, the same for every replaced
            module. Unless given here, the dropout's own rate ``p`` becomes the
            method's base rate: ``p`` (Excitation / Activation Dropout, plain
            dropout), ``warmup_p`` (Y-Drop's warm-up and fallback rate) or
            ``keep_bar = 1 - p`` (Curriculum Dropout); a method with none of these
            (or one taking ``**kwargs``) gets no rate. ``nn.Dropout1d/2d/3d`` drop
            whole channels, so their replacements get ``unit_dim=1`` when the
            method takes it and ``unit_dim`` is not given.

    Returns:
        ``model``, converted (unchanged, with a warning, if it holds no such dropout
        module: its dropout may be functional, or already converted); if
        ``model`` itself is a dropout module, its replacement (as
        ``convert_sync_batchnorm`` does).

    A module registered at several places gets a fresh layer at each. A dropout
    module called at several places of one ``forward`` becomes one guided layer
    called there: a Y-Drop layer then needs the same number of units at each.
    Methods that build parameters at their first forward ("information") must run
    one forward before the optimizer is created.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__} {model!r}")
    factory = resolve_dropout(method)  # an unknown method raises here, listing the names
    selected = _select(model, include)
    if not selected and include is None:
        _warn_nothing_to_convert(model)
    device = _device_of(model)
    # Build every replacement before swapping any: a bad keyword leaves the model as it was.
    replacements = [(name, _replacement(name, old, method, factory, kwargs, device)) for name, old in selected]
    _warn_if_skipped_in_eval(model, replacements)
    for name, new in replacements:
        if not name:
            return new
        parent_name, _, child_name = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child_name, new)
    return model


def _warn_if_skipped_in_eval(model: nn.Module, replacements: list[tuple[str, nn.Module]]) -> None:
    """Warn when a layer whose eval forward is not the identity (Standout's x * keep,
    Information Dropout's mean) goes inside an ``nn.TransformerEncoderLayer``: that
    layer's eval fast path (no autograd) skips its dropout modules altogether."""
    from .scores.plan import identity_in_eval

    fast = [name for name, module in model.named_modules() if isinstance(module, nn.TransformerEncoderLayer)]
    skipped = [name for name, new in replacements
               if not identity_in_eval(new) and any(name.startswith(f"{layer}.") for layer in fast)]
    if skipped and torch.backends.mha.get_fastpath_enabled():
        warnings.warn(f"{', '.join(skipped)} sit inside nn.TransformerEncoderLayer, whose eval fast path (under "
                      "torch.no_grad) skips dropout modules, so their eval-mode output is not applied there; call "
                      "torch.backends.mha.set_fastpath_enabled(False) to evaluate with them", UserWarning, stacklevel=3)


def _warn_nothing_to_convert(model: nn.Module) -> None:
    """A model without dropout modules is returned unchanged; say so, and why that may be."""
    from .layers.base import GuidedDropout

    guided = [f"{name or '<model>'} ({type(m).__name__})" for name, m in model.named_modules()
              if isinstance(m, GuidedDropout)]
    why = (f"it holds guided layers already: {', '.join(guided[:3])}{', ...' if len(guided) > 3 else ''}" if guided
           else "dropout applied as F.dropout(...) in a forward is not a module: use nn.Dropout there")
    warnings.warn(f"ydrop.convert found no nn.Dropout / nn.Dropout1d / 2d / 3d module in {type(model).__name__}, so "
                  f"nothing was replaced; {why}", UserWarning, stacklevel=3)


def _include_filter(include: Include) -> Callable[[str, nn.Module], bool] | None:
    """``include`` as a predicate (None: every dropout module)."""
    if include is None or callable(include):
        return include
    if isinstance(include, str):
        if not include:
            raise ValueError("include must be a non-empty glob pattern, e.g. 'layers.*.dropout', got ''")
        return lambda name, _module: fnmatch.fnmatchcase(name, include)
    raise TypeError(
        "include must be None, a glob pattern over module names (str) or a callable "
        f"include(name, module) -> bool; got {type(include).__name__} {include!r}"
    )


def _select(model: nn.Module, include: Include) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of each dropout place to convert. Every registration
    counts (``remove_duplicate=False``), so a shared module is replaced everywhere."""
    keep = _include_filter(include)
    candidates = [
        (name, module) for name, module in model.named_modules(remove_duplicate=False)
        if isinstance(module, CONVERTED_TYPES)
    ]
    if keep is None:
        return candidates
    chosen = [(name, module) for name, module in candidates if _included(keep, name, module)]
    if isinstance(include, str) and candidates and not chosen:  # a pattern with a typo
        names = ", ".join(repr(name or "<model>") for name, _ in candidates)
        raise ValueError(f"include={include!r} matched none of the model's dropout modules: {names}")
    return chosen


def _included(keep: Callable[[str, nn.Module], bool], name: str, module: nn.Module) -> bool:
    verdict = keep(name, module)
    if not isinstance(verdict, bool):  # e.g. a match object or None from a user's regex
        raise TypeError(f"include({name!r}, module) must return a bool, got {type(verdict).__name__} {verdict!r}")
    return verdict


def _device_of(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter or buffer (None: it has neither)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return None


def _method_kwargs(old: nn.Module, factory: Callable[..., nn.Module], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` plus the dropout's rate and, for a channel dropout, ``unit_dim=1``."""
    allowed = accepted_keywords(factory)
    if allowed is None:
        return dict(kwargs)
    added: dict[str, Any] = {}
    for keyword, rate in _RATE_KEYWORDS:
        if keyword in allowed:
            if keyword not in kwargs:
                added[keyword] = rate(float(old.p))
            break
    if isinstance(old, _CHANNEL_TYPES) and "unit_dim" in allowed and "unit_dim" not in kwargs:
        added["unit_dim"] = 1
    return {**added, **kwargs}


def _replacement(name: str, old: nn.Module, method: Any, factory: Callable[..., nn.Module],
                 kwargs: dict[str, Any], device: torch.device | None) -> nn.Module:
    """The new layer for the dropout ``old`` at ``name``, on ``device`` and in
    ``old``'s train / eval mode."""
    try:
        new = create_dropout(method, **_method_kwargs(old, factory, kwargs))
    except (TypeError, ValueError) as error:
        # Say which module: a rate the method refuses (nn.Dropout takes p = 1) is one place's.
        kind = TypeError if isinstance(error, TypeError) else ValueError
        raise kind(f"converting {name or '<model>'!r} ({old}): {error}") from error
    # Only the device: the guided layers' buffers stay float32 in a half-precision model.
    return (new if device is None else new.to(device=device)).train(old.training)
