"""Pieces shared by the model builders: the network class, the FC head, the
dropout slots, argument checks and the meta-device dry run that sizes the head."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from .._validation import as_int, as_real, check_positive_int, describe
from ..layers.factory import accepted_keywords, create_dropout, resolve_dropout

__all__ = [
    "DropoutSlots",
    "ClassifierNet",
    "DropoutMaker",
    "fc_head",
    "head_dropout_paths",
    "dropout_positions",
    "scaled",
    "output_shape",
    "check_in_shape",
    "check_hidden",
    "check_width_multiplier",
    "check_num_classes",
]


class DropoutMaker:
    """Builds a fresh dropout module for each place of a model.

    ``num_units`` is passed to methods whose constructor takes it (YDrop,
    InformationDropout) unless the user gave it, so their state exists before
    the optimizer is created.
    """

    def __init__(self, method: Any = "dropout", kwargs: dict[str, Any] | None = None) -> None:
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, dict):
            raise TypeError(f"dropout_kwargs must be a dict of keyword arguments or None, got {type(kwargs).__name__}")
        self.method = method
        self.kwargs = dict(kwargs)
        allowed = accepted_keywords(resolve_dropout(method))  # an unknown method raises here
        self.takes_units = allowed is not None and "num_units" in allowed and "num_units" not in self.kwargs

    def __call__(self, units: int) -> nn.Module:
        kwargs = dict(self.kwargs, num_units=units) if self.takes_units else self.kwargs
        module = create_dropout(self.method, **kwargs)
        self._check_given_units(units)
        return module

    def _check_given_units(self, units: int) -> None:
        """A ``num_units`` the user gave must be the place's: a layer built for others
        fails only at its first guided step, after the warm-up epochs. Only with the
        default ``unit_dim``, the one ``units`` counts along."""
        given = self.kwargs.get("num_units")
        if given is not None and self.kwargs.get("unit_dim") is None and given != units:
            raise ValueError(
                f"num_units must be the number of units of every place the method is put ({units} here), or be "
                f"left out so that the model fills it in; got {given!r}"
            )


def dropout_positions(dropout_at: Any, places: int) -> set[int]:
    """Which of ``places`` dropout slots get the method: "all", "first", "last",
    "none" or a sequence of 0-based slot indices."""
    named = {"all": set(range(places)), "first": {0} if places else set(),
             "last": {places - 1} if places else set(), "none": set()}
    if isinstance(dropout_at, str):
        if dropout_at not in named:
            raise ValueError(
                f"dropout_at must be 'all', 'first', 'last', 'none' or a list of slot indices in "
                f"[0, {places - 1}], got {dropout_at!r}"
            )
        return named[dropout_at]
    if isinstance(dropout_at, Sequence) and all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < places for i in dropout_at
    ):
        return set(dropout_at)
    raise ValueError(
        f"dropout_at must be 'all', 'first', 'last', 'none' or a list of slot indices in "
        f"[0, {places - 1}] (this model has {places} dropout slots), got {dropout_at!r}"
    )


def scaled(width: int, multiplier: float) -> int:
    """``width * multiplier`` rounded, at least 1."""
    return max(1, int(round(width * multiplier)))


def check_width_multiplier(value: Any) -> float:
    number = as_real(value)
    if number is None or number <= 0:
        raise ValueError(f"width_multiplier must be a finite number > 0, got {describe(value)}")
    return number


def check_hidden(value: Any) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not all(
        isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in value
    ):
        width = as_int(value)
        one = (f"; one layer of {width} units is ({width},), on the command line hidden={width},"
               if width is not None and width >= 1 else "")
        raise ValueError(f"hidden must be a sequence of layer widths (integers >= 1), got {value!r}{one}")
    return tuple(value)


def check_in_shape(value: Any, name: str, image: bool) -> tuple[int, ...]:
    """(C, H, W) for convolutional models; any non-empty shape for MLPs (flattened)."""
    ok = isinstance(value, (tuple, list, torch.Size)) and len(value) >= 1 and all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in value
    )
    if image:
        ok = ok and len(value) == 3
    if not ok:
        wanted = "(channels, height, width) of positive integers" if image else "a tuple of positive integers"
        raise ValueError(f"in_shape for model {name!r} must be {wanted}, got {value!r}")
    return tuple(value)


def output_shape(build: Callable[[], nn.Module], in_shape: tuple[int, ...], model_name: str) -> tuple[int, ...]:
    """Shape (without batch) of ``build()`` applied to one input of ``in_shape``.

    Built and run on the meta device: nothing is allocated or computed.
    """
    with torch.device("meta"):
        module = build().eval()
        try:
            out = module(torch.empty(1, *in_shape))
        except RuntimeError as error:
            raise ValueError(
                f"in_shape {in_shape} is too small for model {model_name!r}: its feature extractor fails "
                f"on it ({str(error).splitlines()[0]})"
            ) from None
    return tuple(out.shape[1:])


def fc_head(
    in_features: int, hidden: Sequence[int], num_classes: int, make_dropout: DropoutMaker, positions: set[int]
) -> nn.Sequential:
    """[Linear, ReLU, dropout] per hidden width, then the classification Linear.

    A slot without dropout holds an ``nn.Identity``, so module indices (and
    state-dict keys) do not depend on where dropout is.
    """
    layers: list[nn.Module] = []
    previous = in_features
    for index, width in enumerate(hidden):
        layers += [nn.Linear(previous, width), nn.ReLU(), make_dropout(width) if index in positions else nn.Identity()]
        previous = width
    layers.append(nn.Linear(previous, num_classes))
    return nn.Sequential(*layers)


def head_dropout_paths(positions: set[int], root: str = "classifier") -> list[str]:
    """Dotted names of the dropout modules :func:`fc_head` placed."""
    return [f"{root}.{3 * index + 2}" for index in sorted(positions)]


class DropoutSlots:
    """Mixin: ``dropout_paths`` (dotted names of the modules the dropout method
    built, one per slot that has dropout) and :meth:`dropout_modules`."""

    dropout_paths: list[str]

    def dropout_modules(self) -> list[nn.Module]:
        """The modules built by the dropout method, in forward order."""
        return [self.get_submodule(path) for path in self.dropout_paths]  # type: ignore[attr-defined]


class ClassifierNet(DropoutSlots, nn.Module):
    """features -> avgpool -> flatten -> classifier.

    ``features``: the convolutional part (``nn.Identity`` for MLPs); ``avgpool``: an
    adaptive pool (VGG, AlexNet) or ``nn.Identity``; ``classifier``: the FC part,
    ``Linear, ReLU, dropout`` per hidden layer and a final ``Linear``. Every piece
    is an ordinary module, so hooks, scores and the Guide see each layer.

    Attributes:
        name: the model's registry name.
        dropout_paths: dotted names of the modules built by the dropout method
            (one per slot that has dropout); see :meth:`dropout_modules`.
    """

    def __init__(
        self,
        name: str,
        features: nn.Module,
        classifier: nn.Sequential,
        avgpool: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.features = features
        self.avgpool = avgpool if avgpool is not None else nn.Identity()
        self.flatten = nn.Flatten()
        self.classifier = classifier
        self.dropout_paths: list[str] = []

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.avgpool(self.features(x))))

    def fc_parameter_count(self) -> int:
        """Trainable parameters of the Linear layers of the FC part (the Params column
        of Y-Drop Table 2); dropout modules with parameters are not counted."""
        return sum(
            p.numel() for m in self.classifier if isinstance(m, nn.Linear) for p in m.parameters() if p.requires_grad
        )


def check_num_classes(value: Any) -> int:
    return check_positive_int("num_classes", value)
