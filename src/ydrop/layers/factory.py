"""Build any dropout method of the library by name: :func:`create_dropout`.

Used by ``ydrop.models`` (one fresh instance per place) and by experiment code that
takes the method as a string::

    layer = ydrop.create_dropout("curriculum", gamma=1e-3)
    layer = ydrop.create_dropout("ydrop", elasticity=1e-2)
    layer = ydrop.create_dropout(MyDropout, rate=0.2)   # a class or factory, used as is
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from torch import nn

from .baselines import CurriculumDropout, Dropout, InformationDropout, StandoutDropout
from .excitation import ActivationDropout, ExcitationDropout
from .ydrop import YDrop

__all__ = ["DROPOUT_METHODS", "create_dropout", "resolve_dropout", "accepted_keywords"]


def _no_dropout() -> nn.Identity:
    """An ``nn.Identity`` (whose own constructor would silently ignore any argument)."""
    return nn.Identity()


# name -> class (or, for "none", a function returning an nn.Identity).
DROPOUT_METHODS: dict[str, Callable[..., nn.Module]] = {
    "none": _no_dropout,
    "dropout": Dropout,
    "curriculum": CurriculumDropout,
    "standout": StandoutDropout,
    "information": InformationDropout,
    "ydrop": YDrop,
    "excitation": ExcitationDropout,
    "activation": ActivationDropout,
}

def resolve_dropout(name: Any) -> Callable[..., nn.Module]:
    """The class or factory that ``name`` stands for (see :func:`create_dropout`)."""
    if name is None:
        return DROPOUT_METHODS["none"]
    if isinstance(name, str):
        key = name.strip().lower()
        if key not in DROPOUT_METHODS:
            raise ValueError(
                f"dropout method must be one of {', '.join(map(repr, DROPOUT_METHODS))}, "
                f"an nn.Module subclass or a callable returning an nn.Module; got {name!r}"
            )
        return DROPOUT_METHODS[key]
    if isinstance(name, nn.Module):
        raise TypeError(
            f"dropout method must be a name, an nn.Module subclass or a factory, not an instance "
            f"({type(name).__name__}): each place needs a fresh module, so pass "
            f"{type(name).__name__} (the class) or a function that builds one"
        )
    if callable(name):
        return name
    raise TypeError(
        f"dropout method must be one of {', '.join(map(repr, DROPOUT_METHODS))}, an nn.Module subclass "
        f"or a callable returning an nn.Module; got {type(name).__name__} {name!r}"
    )


def accepted_keywords(factory: Callable[..., Any]) -> tuple[str, ...] | None:
    """Keyword arguments ``factory`` accepts; None when it takes ``**kwargs`` or has
    no inspectable signature (then nothing is checked)."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    names = []
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.append(parameter.name)
    return tuple(names)


def _display_name(name: Any, factory: Callable[..., Any]) -> str:
    return repr(name.strip().lower()) if isinstance(name, str) else getattr(factory, "__name__", repr(factory))


def create_dropout(name: Any, **kwargs: Any) -> nn.Module:
    """A new dropout module.

    Args:
        name: one of "none" (``nn.Identity``), "dropout" (:class:`Dropout`),
            "curriculum" (:class:`CurriculumDropout`), "standout"
            (:class:`StandoutDropout`), "information" (:class:`InformationDropout`),
            "ydrop" (:class:`YDrop`), "excitation" (:class:`ExcitationDropout`),
            "activation" (:class:`ActivationDropout`) - case-insensitive; None
            means "none"; or an
            ``nn.Module`` subclass or any callable returning an ``nn.Module``, called
            with ``kwargs`` as is.
        **kwargs: the method's constructor arguments (e.g. ``p=0.3``); every
            method but "none" takes ``unit_dim`` (``layers/base.py``). An argument
            the method does not take raises a ``TypeError`` naming it and listing
            the ones it takes.
    """
    factory = resolve_dropout(name)
    allowed = accepted_keywords(factory)
    if allowed is not None:
        unknown = [key for key in kwargs if key not in allowed]
        if unknown:
            takes = ", ".join(allowed) if allowed else "no keyword arguments"
            raise TypeError(
                f"dropout method {_display_name(name, factory)} got unknown keyword argument"
                f"{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; it accepts: {takes}"
            )
    module = factory(**kwargs)
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"dropout method {_display_name(name, factory)} returned {type(module).__name__}, not an nn.Module"
        )
    return module
