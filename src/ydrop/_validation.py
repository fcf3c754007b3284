"""Argument checks shared by the whole library.

Every check raises a ``ValueError`` (or ``TypeError``) whose message names the
argument, echoes the value and says what is allowed, so a user never has to read
the source to learn why a call was refused. ``assert`` is never used for user input.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ._forward import ScoringForward

__all__ = [
    "as_real",
    "as_int",
    "describe",
    "check_rate",
    "check_open_unit",
    "check_non_negative",
    "check_positive_int",
    "check_non_negative_int",
    "check_choice",
    "check_bool",
    "check_module",
    "check_layer_list",
    "check_mapping",
    "name_hint",
    "check_targets",
    "check_logits",
    "check_score_rows",
    "check_all_finite",
    "single_call_outputs",
    "CHECKPOINT_ADVICE",
    "module_name",
    "gradients_off_error",
]


def _scalar(value: Any) -> Any:
    """A 0-d tensor of a real, non-bool dtype as the Python number it holds;
    anything else unchanged."""
    if isinstance(value, Tensor) and value.dim() == 0 and value.dtype != torch.bool and not value.is_complex():
        return value.item()
    return value


def as_real(value: Any) -> float | None:
    """``value`` as a Python float when it is a finite real scalar (a Python or numpy
    int or float, a 0-d tensor of a real dtype), else None. Bools are not numbers here."""
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def as_int(value: Any) -> int | None:
    """``value`` as a Python int when it is an integer scalar (a Python or numpy int,
    a 0-d tensor of an integer dtype), else None. Bools and floats are not integers here."""
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def describe(value: Any, wanted: type = numbers.Real) -> str:
    """``value`` for an error message: its repr, and its type or shape when it is
    not a scalar of the ``wanted`` kind (``numbers.Real`` or ``numbers.Integral``)."""
    if isinstance(value, Tensor) and value.dim() > 0:
        return f"a tensor of shape {tuple(value.shape)}"
    if not isinstance(value, bool) and isinstance(_scalar(value), wanted):
        return repr(value)
    kind = f", a {value.dtype} tensor" if isinstance(value, Tensor) else f" of type {type(value).__name__}"
    return f"{value!r}{kind}"


def check_rate(name: str, value: Any, *, allow_one: bool = False) -> float:
    """A drop rate in [0, 1) (or [0, 1] when ``allow_one``), as a Python float."""
    number = as_real(value)
    if number is None or not (number >= 0 and (number <= 1 if allow_one else number < 1)):
        allowed = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"{name} must be a number in {allowed}, got {describe(value)}")
    return number


def check_open_unit(name: str, value: Any) -> float:
    """A fraction strictly between 0 and 1, as a Python float."""
    number = as_real(value)
    if number is None or not 0 < number < 1:
        raise ValueError(f"{name} must be a number in (0, 1), got {describe(value)}")
    return number


def check_non_negative(name: str, value: Any) -> float:
    number = as_real(value)
    if number is None or number < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {describe(value)}")
    return number


def check_positive_int(name: str, value: Any) -> int:
    number = as_int(value)
    if number is None or number < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {describe(value, numbers.Integral)}")
    return number


def check_non_negative_int(name: str, value: Any) -> int:
    number = as_int(value)
    if number is None or number < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {describe(value, numbers.Integral)}")
    return number


def check_choice(name: str, value: Any, allowed: tuple[str, ...] | list[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {describe(value, bool)}")
    return value


def check_module(name: str, value: Any) -> Any:
    if not isinstance(value, torch.nn.Module):
        raise TypeError(f"{name} must be an nn.Module, got {describe(value, torch.nn.Module)}")
    return value


def check_layer_list(layers: Any) -> list:
    """``layers`` given as a list or tuple of modules / names, as a list."""
    if not isinstance(layers, (list, tuple)):
        raise TypeError(f"layers must be a submodule of the model, its name or a list of them, got "
                        f"{describe(layers, torch.nn.Module)}")
    return list(layers)


def check_mapping(name: str, value: Any) -> Any:
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict (as state_dict() returns), got {describe(value, dict)}")
    return value


def name_hint(name: str, names: Sequence[str]) -> str:
    """The end of an unknown-name error: the close matches of ``name`` among ``names``
    (a submodule's qualified names), else a few of them."""
    close = difflib.get_close_matches(name, names, n=3)
    return f"did you mean {', '.join(map(repr, close))}?" if close else f"names look like {list(names)[1:6]}"


def check_targets(name: str, target: Any, batch_size: int, num_classes: int | None = None) -> Tensor:
    """Class indices of shape (B,), integer dtype, each in [0, num_classes).

    A Python int is broadcast to every sample, as Captum does.
    """
    if isinstance(target, int) and not isinstance(target, bool):
        target = torch.full((batch_size,), target, dtype=torch.long)
    if not isinstance(target, Tensor):
        raise TypeError(
            f"{name} must be a tensor of class indices of shape ({batch_size},) or an int, "
            f"got {type(target).__name__}"
        )
    if target.dtype in (torch.bool,) or target.is_floating_point() or target.is_complex():
        raise ValueError(f"{name} must hold integer class indices, got dtype {target.dtype}")
    if target.dim() != 1 or target.shape[0] != batch_size:
        raise ValueError(
            f"{name} must have shape ({batch_size},) to match the batch, got {tuple(target.shape)}"
        )
    if num_classes is not None and target.numel() > 0:
        _check_class_range(name, target, num_classes)
    return target.long()


def _check_class_range(name: str, target: Tensor, num_classes: int) -> None:
    def explain() -> str:
        bad = target[(target < 0) | (target >= num_classes)][0].item()
        hint = ("; a binary classifier with one logit z (BCEWithLogitsLoss) scores as two logits: give the Guide "
                "to_logits=lambda z: torch.cat([-z, z], dim=1) (conductance, gradxact), or give the model a head "
                "of two outputs (Excitation Backprop follows modules only)" if num_classes == 1 else "")
        return (f"{name} holds class index {bad}, outside [0, {num_classes - 1}] "
                f"for a model with {num_classes} outputs{hint}")

    def in_range() -> bool:
        low, high = torch.aminmax(target)
        return int(low) >= 0 and int(high) < num_classes

    _assert_on_device(target, in_range, explain)


def check_logits(logits: Any, target: Tensor, batch_size: int) -> int:
    """The model's number of classes, after checking that it returned logits of
    shape (B, classes) and that every target indexes one of them."""
    if not isinstance(logits, Tensor) or logits.dim() != 2:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"the model must return logits of shape (B, classes), got {shape}; for a model that "
                         "returns a tuple or a dict, give the Guide to_logits=, e.g. ydrop.Guide(model, to_logits="
                         "lambda out: out['logits']) (a score function called directly: wrap the model)")
    check_targets("target", target, batch_size, num_classes=logits.shape[1])
    return logits.shape[1]


def check_score_rows(kind_name: str, scores: Any, layer: Any, name: str, rows: int) -> Tensor:
    """``scores[layer]`` from a score function (the Guide's pass), refused unless it is (rows, N)."""
    value = scores.get(layer) if isinstance(scores, dict) else None
    if isinstance(value, Tensor) and value.dim() == 2 and value.shape[0] == rows:
        return value
    got = f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else f"{value!r:.40}"
    raise ValueError(f"score {kind_name!r} returned {got} for layer {name!r}; a score function must return "
                     f"{{layer: Tensor (samples, units)}} with one row per sample ({rows}) for every layer it is given")


def check_all_finite(name: str, scores: Tensor) -> None:
    """Refuse NaN or inf scores."""

    def explain() -> str:
        bad = scores[~torch.isfinite(scores)].flatten()[0].item()
        return f"{name} must be finite, got a value of {bad} (NaN or inf)"

    def finite() -> bool:
        # The two extremes are finite exactly when every entry is (aminmax propagates
        # NaN): one pass over the scores, where isfinite(...).all() takes four.
        low, high = torch.aminmax(scores.detach())
        return math.isfinite(low) and math.isfinite(high)

    if scores.numel():
        _assert_on_device(scores, finite, explain)


def _reads_are_free(tensor: Tensor) -> bool:
    """Whether reading ``tensor``'s value on the host costs no device synchronisation."""
    return tensor.device.type == "cpu"


def _assert_on_device(tensor: Tensor, holds: Callable[[], bool], explain: Callable[[], str]) -> None:
    """Raise a ``ValueError`` that echoes the offending value (``explain()``) when
    ``holds()``, a check of ``tensor``'s values, is false.

    These checks run on every training step (the Guide, the layers' forward). On the
    CPU reading values costs nothing; on an accelerator it would stall the device
    every step (torch has no public asynchronous assert), so there the check is not
    even computed and the values are left to the kernels, which fail on a bad class
    index by themselves (``gather`` / ``scatter`` device asserts).
    """
    if _reads_are_free(tensor) and not holds():
        raise ValueError(explain())


def single_call_outputs(modules: Sequence[nn.Module], captured: list[list[Tensor]], model: nn.Module,
                        rows: int) -> list[Tensor]:
    """The one output of each module, refusing a layer that did not run, ran twice,
    or whose output is not batch-first (``rows`` rows, as the model's input)."""
    for module, calls in zip(modules, captured):
        if len(calls) == 1 and calls[0].shape[0] == rows:
            continue
        name = module_name(module, model)
        if len(calls) == 1:
            problem = (f"gave an output of shape {tuple(calls[0].shape)} for {rows} input rows: scores need the "
                       "batch first at every scored layer (e.g. nn.TransformerEncoderLayer(batch_first=True))")
        else:
            problem = (f"{f'ran {len(calls)} times' if calls else 'did not run'} in the model's forward; a scored "
                       "layer must run exactly once per forward (convert(..., include=) can leave one out)")
        raise ValueError(f"layer {name!r} ({type(module).__name__}) {problem}")
    return [calls[0] for calls in captured]


# The scoring passes run the model in eval mode and differentiate the target logit
# through the forward their hooks changed; a checkpointed block recomputes without them.
CHECKPOINT_ADVICE = ("activation checkpointing in eval mode does this: checkpoint only in training, e.g. "
                     "`checkpoint(block, x) if self.training else block(x)` (as Hugging Face models do); the "
                     "scoring passes run the model in eval mode")


def module_name(module: nn.Module, model: nn.Module) -> str:
    """``module``'s name as the user's model names it (``named_modules``), also when
    ``model`` is the Guide's :class:`ScoringForward` around it (forward arguments,
    ``to_logits``); its type's name if it is not in ``model``."""
    name = next((name for name, m in model.named_modules() if m is module), None)
    if name is None:
        return type(module).__name__
    return name.removeprefix("model.") if isinstance(model, ScoringForward) else name


def gradients_off_error(module: nn.Module, model: nn.Module, scored: bool = True,
                        before: nn.Module | None = None) -> ValueError:
    """The error of a scored layer (``scored``; else a module carrying its scores up
    to the logits) that runs with gradients turned off inside the model's forward
    (``torch.no_grad``, a reentrant ``torch.utils.checkpoint``): the target logit's
    gradient could not reach the scored layer, whose scores would be silently 0.
    ``before``: the scored layer that ran last with gradients on; a block around it
    that ended (``with torch.no_grad():``) turns them off as well."""
    what = "scored layer" if scored else "module"
    where = "" if scored else ", between a scored layer and the logits,"
    or_before = ("" if before is None else f", or scored layer {module_name(before, model)!r} "
                 f"({type(before).__name__}) before it ran inside a block that turned them off as it ended")
    return ValueError(f"{what} {module_name(module, model)!r} ({type(module).__name__}){where} runs with gradients "
                      f"turned off inside the model's forward{or_before} (torch.no_grad, or torch.utils.checkpoint("
                      "use_reentrant=True)), so the target logit's gradient cannot reach every scored layer; a layer "
                      "under torch.no_grad cannot be scored by a gradient: move it out of the block, or give it "
                      f"score='activation'; {CHECKPOINT_ADVICE}")
