"""The model as the scores call it: one batch tensor in, logits (B, classes) out.

``ydrop.Guide(model, to_logits=...)`` and ``guide.step(inputs, target, **forward_kwargs)``
score a model whose forward takes more than the batch (a padding mask, a second
input) or returns more than the logits (a tuple, a dict): :class:`ScoringForward`
calls ``to_logits(model(rows, **forward_kwargs))``. A tensor among the keyword
arguments holds one row per scored sample (n, ...); the scores run the model on
other row counts, and its rows follow the inputs' rows there:

- k <= n rows (the structural plan's probe, the first sample): the first k rows;
- k = m * n rows (conductance's path, point-major: row i * n + b is point i of
  sample b): the n rows, m times.

The keyword arguments are held fixed: conductance interpolates ``inputs`` alone.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

__all__ = ["ScoringForward", "check_forward_kwargs"]


class ScoringForward(nn.Module):
    """``to_logits(model(x, **kwargs))``, the tensors of ``kwargs`` following x's rows."""

    def __init__(self, model: nn.Module, to_logits: Callable[[Any], Tensor] | None) -> None:
        super().__init__()
        if to_logits is not None and not callable(to_logits):
            raise TypeError(f"to_logits must be None or a callable mapping the model's output to its logits (B, "
                            f"classes), e.g. lambda out: out['logits']; got {to_logits!r}")
        self.model = model
        self.to_logits = to_logits
        self.kwargs: dict[str, Any] = {}
        self.rows = 1
        # Read by conductance: samples with their own keyword rows share no baseline point.
        self.per_sample_inputs = False

    def bind(self, kwargs: dict[str, Any], rows: Tensor | None, count: int) -> ScoringForward:
        """Use ``kwargs`` from now on, the ``rows`` of its tensors (None: all), ``count`` of them."""
        self.kwargs = {key: value[rows] if rows is not None and isinstance(value, Tensor) else value
                       for key, value in kwargs.items()}
        self.rows = count
        self.per_sample_inputs = any(isinstance(value, Tensor) for value in kwargs.values())
        return self

    def forward(self, x: Tensor) -> Tensor:
        kwargs = {key: _follow(value, x.shape[0], self.rows) for key, value in self.kwargs.items()}
        output = self.model(x, **kwargs)
        return output if self.to_logits is None else self.to_logits(output)


def _follow(value: Any, k: int, n: int) -> Any:
    if not isinstance(value, Tensor):
        return value
    if k <= n:
        return value[:k]
    if k % n:
        raise ValueError(f"a scoring pass ran the model on {k} rows, not a multiple of the {n} scored samples, so "
                         "the rows of the forward keyword arguments cannot follow them")
    return value.repeat((k // n,) + (1,) * (value.dim() - 1))


def check_forward_kwargs(model: nn.Module, kwargs: dict[str, Any], batch: int) -> dict[str, Any]:
    """``kwargs`` of ``guide.step``, after checking that every tensor among them is
    batch first and that they hold every argument ``model.forward`` requires."""
    for key, value in kwargs.items():
        if isinstance(value, Tensor) and (value.dim() == 0 or value.shape[0] != batch):
            raise ValueError(
                f"guide.step's forward keyword {key}= must hold one row per sample ({batch}, ...), like the inputs, "
                f"as the scores slice and repeat it with them; got shape {tuple(value.shape)}. Keep an argument "
                "that is not per sample in the model (an attribute or buffer read by its forward)")
    _check_known(model, kwargs)
    missing = [name for name in _forward_parameters(type(model))[1] if name not in kwargs]
    if missing:
        given = ", ".join(f"{name}=..." for name in missing)
        raise ValueError(f"{type(model).__name__}.forward requires {', '.join(missing)} besides the batch, and the "
                         f"Guide's scoring pass calls model(inputs, **forward_kwargs): pass it as "
                         f"guide.step(inputs, target, {given}) (README, Usage: models with more inputs)")
    return kwargs


def _check_known(model: nn.Module, kwargs: dict[str, Any]) -> None:
    """A TypeError naming the first keyword of ``kwargs`` that ``model.forward`` does not take."""
    accepted = _forward_parameters(type(model))[0]
    unknown = [key for key in kwargs if accepted is not None and key not in accepted]
    if unknown:
        raise TypeError(f"guide.step got the forward keyword {unknown[0]}=, but {type(model).__name__}.forward takes "
                        f"no argument {unknown[0]!r}; it takes {', '.join(accepted) or 'nothing'} besides the batch "
                        "(guide.step(inputs, target, **forward_kwargs) passes them to the model)")


@functools.lru_cache(maxsize=None)
def _forward_parameters(kind: type) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """The keyword names ``kind.forward`` takes after ``self`` and the batch (None when
    it takes any, ``**kwargs``), and those of them without a default. No signature to
    read (a builtin): (None, ()), and the call tells."""
    try:
        parameters = list(inspect.signature(kind.forward).parameters.values())
    except (TypeError, ValueError):
        return None, ()
    named = [p for p in parameters[2:]
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    required = tuple(p.name for p in named if p.default is inspect.Parameter.empty)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None, required
    return tuple(p.name for p in named), required
