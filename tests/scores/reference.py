"""Slow, paper-literal reference implementations, used only by the tests.

``excitation_backprop_reference`` follows Zunino et al., *Excitation Dropout*,
sec. 3.1 word for word: for every sample, and every unit of every layer,

    P(a_i) = sum_{a_j in parents(i)} P(a_i | a_j) P(a_j),                   (Eq. 1)
    P(a_i | a_j) = Z_j a_i w_ij if w_ij >= 0 else 0,  Z_j = 1 / sum_i a_i w_ij  (Eq. 2)

with explicit Python loops over samples, units, output positions and kernel
offsets (no vectorisation, no autograd), a_i clamped to >= 0, bias excluded and
0/0 = 0. Pass-through layers (ReLU, dropout, flatten, identity, batch norm, ydrop
guided layers) copy P; max pooling gives P to the first maximum of each window.
Only ``nn.Sequential`` models; activations come from the modules' own forward.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ydrop.layers.base import GuidedDropout

PASS = (nn.ReLU, nn.Dropout, nn.Identity, nn.BatchNorm1d, nn.BatchNorm2d, GuidedDropout)


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _eb_linear(a, weight, p_out):
    """a: (I,), weight: (J, I), p_out: (J,) -> p_in (I,). Eq. 1-2 for a fully connected map."""
    n_out, n_in = weight.shape
    p_in = np.zeros(n_in)
    for j in range(n_out):
        norm = 0.0
        for i in range(n_in):
            if weight[j, i] >= 0:
                norm += max(a[i], 0.0) * weight[j, i]
        if norm == 0.0:
            continue  # 0/0 = 0
        for i in range(n_in):
            if weight[j, i] >= 0:
                p_in[i] += (max(a[i], 0.0) * weight[j, i] / norm) * p_out[j]
    return p_in


def _eb_conv(a, weight, stride, padding, p_out):
    """a: (C, H, W), weight: (O, C, kh, kw), p_out: (O, Ho, Wo) -> p_in (C, H, W).

    Each output unit (o, y, x) is a parent of the inputs (c, y*s - p + dy, x*s - p + dx)
    inside the image; padding contributes nothing (its activation is 0)."""
    channels, height, width = a.shape
    n_out, _, kh, kw = weight.shape
    p_in = np.zeros(a.shape)
    for o in range(n_out):
        for y in range(p_out.shape[1]):
            for x in range(p_out.shape[2]):
                children = []
                for c in range(channels):
                    for dy in range(kh):
                        for dx in range(kw):
                            row, col = y * stride[0] - padding[0] + dy, x * stride[1] - padding[1] + dx
                            if 0 <= row < height and 0 <= col < width and weight[o, c, dy, dx] >= 0:
                                children.append((c, row, col, max(a[c, row, col], 0.0) * weight[o, c, dy, dx]))
                norm = sum(term for *_, term in children)
                if norm == 0.0:
                    continue
                for c, row, col, term in children:
                    p_in[c, row, col] += term / norm * p_out[o, y, x]
    return p_in


def _windows(size, out_size, kernel, stride, adaptive):
    """(start, end) of each pooling window along one axis."""
    if adaptive:
        return [(math.floor(i * size / out_size), math.ceil((i + 1) * size / out_size)) for i in range(out_size)]
    return [(i * stride, i * stride + kernel) for i in range(out_size)]


def _pool(module, a, p_out):
    """Max pooling: P to the first maximum. Average pooling: Eq. 1-2 with weights 1/|window|."""
    adaptive = isinstance(module, nn.AdaptiveAvgPool2d)
    if adaptive:
        kernel = stride = (None, None)
    else:
        kernel = _pair(module.kernel_size)
        stride = _pair(module.stride if module.stride is not None else module.kernel_size)
        if _pair(module.padding) != (0, 0) or module.ceil_mode:
            raise NotImplementedError("reference pooling supports padding=0, ceil_mode=False only")
    rows = _windows(a.shape[1], p_out.shape[1], kernel[0], stride[0], adaptive)
    cols = _windows(a.shape[2], p_out.shape[2], kernel[1], stride[1], adaptive)
    p_in = np.zeros(a.shape)
    for c in range(a.shape[0]):
        for y, (r0, r1) in enumerate(rows):
            for x, (c0, c1) in enumerate(cols):
                cells = [(r, q) for r in range(r0, r1) for q in range(c0, c1)]
                if isinstance(module, nn.MaxPool2d):
                    best = cells[0]
                    for cell in cells[1:]:
                        if a[c][cell] > a[c][best]:
                            best = cell
                    p_in[c][best] += p_out[c, y, x]
                    continue
                weight = 1.0 / len(cells)
                norm = sum(max(a[c][cell], 0.0) * weight for cell in cells)
                if norm == 0.0:
                    continue
                for cell in cells:
                    p_in[c][cell] += max(a[c][cell], 0.0) * weight / norm * p_out[c, y, x]
    return p_in


def _step_down(module, a, p_out):
    """P at the input of ``module`` for one sample from P at its output."""
    if isinstance(module, nn.Linear):
        return _eb_linear(a, module.weight.detach().double().numpy(), p_out)
    if isinstance(module, nn.Conv2d):
        if module.groups != 1 or _pair(module.dilation) != (1, 1) or module.padding_mode != "zeros":
            raise NotImplementedError("reference conv supports groups=1, dilation=1, zero padding only")
        weight = module.weight.detach().double().numpy()
        return _eb_conv(a, weight, _pair(module.stride), _pair(module.padding), p_out)
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
        return _pool(module, a, p_out)
    if isinstance(module, nn.Flatten):
        return p_out.reshape(a.shape)
    if isinstance(module, PASS):
        return p_out.copy()
    raise NotImplementedError(f"no reference rule for {type(module).__name__}")


def _distribution(p):
    """Sum a channel's positions, then normalise (uniform when empty), with loops."""
    units = [float(np.sum(p[k])) for k in range(p.shape[0])]
    total = sum(units)
    if total == 0.0:
        return [1.0 / len(units)] * len(units)
    return [unit / total for unit in units]


def excitation_backprop_reference(model: nn.Sequential, inputs, target, indices):
    """p_EB at the output of ``model[k]`` for each k in ``indices``: {k: (B, N) float64}."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            acts = [inputs]
            for module in model:
                acts.append(module(acts[-1].clone()))  # clone: in-place modules keep acts intact
    finally:
        for m, flag in flags:
            m.training = flag
    acts = [t.double().numpy() for t in acts]
    lowest = min(indices)
    rows = {k: [] for k in indices}
    for b in range(inputs.shape[0]):
        p = np.zeros(acts[-1].shape[1:])
        p[int(target[b])] = 1.0  # one-hot at the ground-truth class on the logits
        for k in range(len(model) - 1, lowest - 1, -1):
            # p is P at the output of model[k]
            if k in rows:
                rows[k].append(_distribution(p))
            if k > lowest:
                p = _step_down(model[k], acts[k][b], p)
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in rows.items()}
