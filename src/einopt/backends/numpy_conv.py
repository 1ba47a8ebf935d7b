"""A convolution on numpy from strided views and BLAS, for plan steps that are one.

The direct im2col copies every input element once per tap. Here only the taps of the
inner spatial dimensions are unfolded into the copy; the outermost dimension's taps are
row offsets into it, so each of them is one matrix product over a strided view of the
same buffer (no copy), and the products add up. With stride 1 along that dimension
this copies ``K`` times less (3x for a 3x3 kernel) for the same flops; otherwise the
full im2col is used.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import strided_window, zero_pad

__all__ = ["conv", "conv_weight"]


def _pad(x: np.ndarray, pads: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Zero-pad the trailing ``len(pads)`` axes (negative widths crop)."""
    lead = x.ndim - len(pads)
    x = x[(slice(None),) * lead + tuple(slice(max(-lo, 0), x.shape[lead + t] - max(-hi, 0))
                                        for t, (lo, hi) in enumerate(pads))]
    widths = {lead + t: (max(lo, 0), max(hi, 0)) for t, (lo, hi) in enumerate(pads)
              if lo > 0 or hi > 0}
    return zero_pad(x, widths) if widths else x


def _unfold(x: np.ndarray, taps: tuple[int, ...], pads: tuple[tuple[int, int], ...],
            stride: tuple[int, ...], dilation: tuple[int, ...], groups: int
            ) -> tuple[np.ndarray, list[int], list[int], bool]:
    """The input's taps unfolded into a buffer ``(G, C*T.., [S0,] N, O..)``: those of the
    inner dims, or of all dims when the outer one has a stride; with the output sizes,
    the inner dims and whether the outer taps are row offsets (not unfolded)."""
    nd = len(stride)
    n, g = x.shape[0], groups
    c = x.shape[1] // g
    x = _pad(np.asarray(x), pads)
    size = x.shape[2:]
    outs = [(size[t] - dilation[t] * (taps[t] - 1) - 1) // stride[t] + 1 for t in range(nd)]
    v = x.reshape(n, g, c, *size)
    offsets = stride[0] == 1
    first = 0 if offsets else -1
    for t in range(nd - 1, first, -1):
        v = strided_window(v, 3 + t, (taps[t], outs[t]), (dilation[t], stride[t]), 0)
    # v: (n, g, c, S0 | (T0, O0), T1, O1, ...) -> (g, c, T.., [S0,] n, O..)
    inner = list(range(1, nd)) if offsets else list(range(nd))
    tap_axes = [3 + 2 * t - (1 if offsets else 0) for t in inner]
    out_axes = [a + 1 for a in tap_axes]
    lead = [3] if offsets else []
    order = [1, 2, *tap_axes, *lead, 0, *out_axes]
    return np.ascontiguousarray(v.transpose(order)), outs, inner, offsets


def conv(x: Any, w: Any, pads: tuple[tuple[int, int], ...], stride: tuple[int, ...],
         dilation: tuple[int, ...], groups: int, transposed: bool = False,
         extra: tuple[int, ...] = ()) -> Any:
    """``x`` ``(N, G*C, *spatial)`` convolved with ``w`` ``(G*K, C, *taps)`` (cross-
    correlation, as torch) -> ``(N, G*K, *out)``; ``pads`` per spatial dim."""
    assert not transposed, "numpy runs transposed convolutions as gathered views"
    n, g = x.shape[0], groups
    c, k = x.shape[1] // g, w.shape[0] // g
    taps = tuple(w.shape[2:])
    buf, outs, inner, offsets = _unfold(x, taps, pads, stride, dilation, groups)
    wg = np.asarray(w).reshape(g, k, c, *taps)
    ct = c * math.prod(taps[t] for t in inner)
    if not offsets:
        y = np.matmul(wg.reshape(g, k, ct), buf.reshape(g, ct, -1))  # (g, k, n*O..)
        y = y.reshape(g, k, n, *outs)
    else:
        row = n * math.prod(outs[1:])  # elements per output row of dim 0
        flat = buf.reshape(g, ct, -1)
        y = None
        for a in range(taps[0]):
            start = a * dilation[0] * row
            part = np.matmul(wg[:, :, :, a].reshape(g, k, ct),
                             flat[:, :, start:start + outs[0] * row])
            y = part if y is None else np.add(y, part, out=y)
        assert y is not None
        y = y.reshape(g, k, outs[0], n, *outs[1:])
        y = np.moveaxis(y, 3, 2)  # (g, k, n, O0, O..)
    y = np.moveaxis(y, 2, 0)  # (n, g, k, O..)
    return y.reshape(n, g * k, *outs)


def conv_weight(x: Any, gy: Any, kernel: tuple[int, ...], pads: tuple[tuple[int, int], ...],
                stride: tuple[int, ...], dilation: tuple[int, ...], groups: int) -> Any:
    """The weight gradient of :func:`conv`: ``x`` ``(N, G*C, *spatial)`` against ``gy``
    ``(N, G*K, *out)``, giving ``(G*K, C, *taps)``, from the same unfolded buffer: one
    matrix product per outer tap over a row-offset view of it."""
    n, g = x.shape[0], groups
    c, k = x.shape[1] // g, kernel[0] // g
    taps = tuple(kernel[2:])
    buf, outs, inner, offsets = _unfold(x, taps, pads, stride, dilation, groups)
    ct = c * math.prod(taps[t] for t in inner)
    gk = np.asarray(gy).reshape(n, g, k, *outs)
    if not offsets:
        cols = gk.transpose(1, 2, 0, *range(3, gk.ndim)).reshape(g, k, -1)  # (g, k, n*O..)
        w = np.matmul(cols, buf.reshape(g, ct, -1).transpose(0, 2, 1))  # (g, k, c*T..)
        return w.reshape(g * k, c, *taps)
    # rows (O0, n, O..) as in the buffer
    cols = np.ascontiguousarray(np.moveaxis(gk, 0, 3)).reshape(g, k, -1)
    row = n * math.prod(outs[1:])
    flat = buf.reshape(g, ct, -1)
    parts = [np.matmul(cols, flat[:, :, a * dilation[0] * row:
                                  a * dilation[0] * row + outs[0] * row].transpose(0, 2, 1))
             for a in range(taps[0])]  # each (g, k, c*T_inner..)
    w = np.stack(parts, axis=2).reshape(g, k, taps[0], c, *taps[1:])
    return np.moveaxis(w, 2, 3).reshape(g * k, c, *taps)
