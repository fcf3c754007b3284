"""Where the conductance pass's rows are, and the two rules that skip redundant ones.

The pass (Y-Drop, Eq. 2) runs the points x' + a (x - x') of every sample as one
batch, laid out point-major: (steps + 1) groups of B rows along dim 0. Two rules
keep it from computing what it already knows, both exact up to float rounding:
an affine stem reading the path is evaluated at the two ends and interpolated
(``interpolated_stem``), and a row-wise module runs a shared first group once
(``once_for_shared_start``). Used by the module-by-module pass (``conductance``)
and the op-by-op one (``_sequential_pass``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._products import linear

__all__ = [
    "AFFINE", "POOLING", "PathRows", "once_for_shared_start", "interpolated_stem",
    "broadcast_bias",
]

# The path is laid out point-major, (steps + 1) groups of B rows along dim 0, and two
# sets of rows are redundant: with a baseline shared by all samples the B rows of the
# first group (alpha = 0) are one point, computed once; and the last group
# (alpha = 1) enters Eq. 2 only through its outputs, so the backward skips it.
# Modules see the layout only when dim 0 of their input is the path's rows.
AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
POOLING = (
    nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd, nn.modules.pooling._LPPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
)


@dataclass(frozen=True)
class PathRows:
    """Where the path's rows are: ``points`` groups of ``batch`` rows along dim 0;
    ``shared_start`` when the first group is one point repeated."""

    path: Tensor
    points: int
    batch: int
    shared_start: bool

    @property
    def rows(self) -> int:
        return self.points * self.batch

    @property
    def rows_with_gradient(self) -> int:
        return (self.points - 1) * self.batch


def once_for_shared_start(function, inputs: Tensor, layout: PathRows):
    """``function(inputs)`` for a row-wise ``function``, computing a shared first
    group once: on rows batch - 1 onward (the group's last row, then the others)."""
    if not layout.shared_start:
        return function(inputs)
    tail = function(inputs[layout.batch - 1:])
    if not isinstance(tail, Tensor) or tail.dim() == 0 or tail.shape[0] != inputs.shape[0] - layout.batch + 1:
        return function(inputs)  # not row-wise after all: run it whole
    return torch.cat([tail[:1].expand(layout.batch - 1, *tail.shape[1:]), tail])


def interpolated_stem(module: nn.Module, inputs: Tensor, layout: PathRows) -> Tensor:
    """An affine ``module`` on the path's points b + a (x - b), from the two ends:
    f(b) + a (f(x) - f(b)); (points B, *) rows like ``module(inputs)``."""
    ends = inputs.unflatten(0, (layout.points, -1))
    starts = ends[0][:1] if layout.shared_start else ends[0]
    # f(x) - f(b) is the bias-free map of x - b: one product with the start rows,
    # so the weights are read once.
    both = _without_bias(module, torch.cat([starts, ends[-1] - ends[0]]))
    start, step = _with_bias(module, both[: starts.shape[0]]), both[starts.shape[0]:]
    alphas = torch.linspace(0, 1, layout.points, dtype=step.dtype, device=step.device)
    alphas = alphas.reshape((layout.points,) + (1,) * step.dim())
    # One fused pass over the output (a separate product and sum cost 5x more on CPU).
    return torch.addcmul(start.unsqueeze(0), alphas, step.unsqueeze(0)).flatten(0, 1)


def _without_bias(module: nn.Module, inputs: Tensor) -> Tensor:
    if isinstance(module, nn.Linear):
        return linear(inputs, module.weight)
    return module._conv_forward(inputs, module.weight, None)


def _with_bias(module: nn.Module, outputs: Tensor) -> Tensor:
    if module.bias is None:
        return outputs
    return outputs + broadcast_bias(module, outputs.dim())


def broadcast_bias(module: nn.Module, dim: int) -> Tensor:
    """An affine ``module``'s bias, shaped to broadcast against its ``dim``-dimensional
    output: Linear (rows, *, out), Conv (rows, channels, *spatial)."""
    shape = (-1,) if isinstance(module, nn.Linear) else (-1,) + (1,) * (dim - 2)
    return module.bias.reshape(shape)
