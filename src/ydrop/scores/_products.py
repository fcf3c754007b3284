"""The conductance pass's matrix products, on oneDNN's kernel where torch has it.

The pass (Y-Drop, Eq. 2) multiplies few rows (4-61: B_c samples at a handful of
points) by large weights (1024 x 1024 to 4096 x 4096), where a product costs
mostly reading and packing the weight. On this project's CPU (AMD EPYC, AVX-512,
one thread) oneDNN's matmul, the kernel torch's own compiler uses for CPU Linear
layers (``torch.ops.mkldnn._linear_pointwise``), ran them faster than torch's
default float32 GEMM (MKL), measured alone: 12 rows through 2048 x 2048 in 1.83
against 2.49 ms, 61 rows in 6.11 against 7.80 ms, 12 rows through 1024 x 1024 in
0.38 against 0.48 ms. FC_2's conductance took 0.29 instead of 0.35 of Captum's
time (docs/performance.md). Inside a training step, where the weight comes cold
from memory, FC_1's products took the same time either way.

Both accumulate in float32 and are about equally accurate against float64, but
they round differently, so the pass no longer repeats Captum's (torch's default
kernel's) rounding: on the zoo's models the two differ by up to about the error
each has against float64 (1e-6 on the FC nets, up to 1e-4 on the deepest S_k net).

Used for float32 tensors on the CPU outside autograd (the op has no backward) and
outside CPU autocast (whose casts only torch's own ops apply); anything else, or a
torch without the op, takes ``F.linear`` / ``@``. ``ONEDNN``
switches it off (tests and benchmarks compare the two).

Shapes: rows (N, in), weight (out, in) -> (N, out) for ``linear``; rows (N, out),
weight (out, in) -> (N, in) for ``times``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["linear", "times", "ONEDNN"]


def _onednn_linear():
    mkldnn = getattr(torch.ops, "mkldnn", None)
    if not torch.backends.mkldnn.is_available() or mkldnn is None:
        return None
    try:
        return mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):  # an op torch built without
        return None


_LINEAR_POINTWISE = _onednn_linear()
# Off: every product takes torch's default kernel.
ONEDNN = _LINEAR_POINTWISE is not None


def linear(rows: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear(rows, weight, bias)`` for 2-D ``rows``, up to float rounding."""
    if _takes_onednn(rows, weight, bias):
        return _LINEAR_POINTWISE(rows, weight, bias, "none", [], "")
    return F.linear(rows, weight, bias)


def times(rows: Tensor, weight: Tensor) -> Tensor:
    """``rows @ weight`` for 2-D ``rows``, up to float rounding."""
    if _takes_onednn(rows, weight, None):
        return _LINEAR_POINTWISE(rows, weight.t(), None, "none", [], "")
    return rows @ weight


def _takes_onednn(rows: Tensor, weight: Tensor, bias: Tensor | None) -> bool:
    tensors = (rows, weight) if bias is None else (rows, weight, bias)
    recording = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    return (
        ONEDNN
        and not recording
        and not torch.is_autocast_enabled("cpu")
        and rows.dim() == 2
        and rows.shape[0] > 0
        and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
    )
