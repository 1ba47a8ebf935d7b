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

from .numpy import NumpyBackend

__all__ = ["conv"]


def _pad(x: np.ndarray, pads: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Zero-pad the trailing ``len(pads)`` axes (negative widths crop)."""
    lead = x.ndim - len(pads)
    x = x[(slice(None),) * lead + tuple(slice(max(-lo, 0), x.shape[lead + t] - max(-hi, 0))
                                        for t, (lo, hi) in enumerate(pads))]
    widths = {lead + t: (max(lo, 0), max(hi, 0)) for t, (lo, hi) in enumerate(pads)
              if lo > 0 or hi > 0}
    return NumpyBackend.pad(x, widths) if widths else x


def conv(x: Any, w: Any, pads: tuple[tuple[int, int], ...], stride: tuple[int, ...],
         dilation: tuple[int, ...], groups: int, transposed: bool = False,
         extra: tuple[int, ...] = ()) -> Any:
    """``x`` ``(N, G*C, *spatial)`` convolved with ``w`` ``(G*K, C, *taps)`` (cross-
    correlation, as torch) -> ``(N, G*K, *out)``; ``pads`` per spatial dim."""
    assert not transposed, "numpy runs transposed convolutions as gathered views"
    nd = len(stride)
    n, g = x.shape[0], groups
    c, k = x.shape[1] // g, w.shape[0] // g
    taps = w.shape[2:]
    x = _pad(np.asarray(x), pads)
    size = x.shape[2:]
    outs = [(size[t] - dilation[t] * (taps[t] - 1) - 1) // stride[t] + 1 for t in range(nd)]
    xg = x.reshape(n, g, c, *size)
    wg = np.asarray(w).reshape(g, k, c, *taps)
    # Unfold the inner dims 1.. (axes move to (tap, out) pairs), or all dims when the
    # outer one has a stride.
    first = 0 if stride[0] == 1 else -1
    v = xg
    for t in range(nd - 1, first, -1):
        v = NumpyBackend.window(v, 3 + t, (taps[t], outs[t]), (dilation[t], stride[t]), 0)
    # v: (n, g, c, S0 | (T0, O0), T1, O1, ...) -> (g, c, T.., [S0,] n, O..)
    inner = list(range(1, nd)) if first == 0 else list(range(nd))
    tap_axes = [3 + 2 * t - (1 if first == 0 else 0) for t in inner]
    out_axes = [a + 1 for a in tap_axes]
    lead = [3] if first == 0 else []
    order = [1, 2, *tap_axes, *lead, 0, *out_axes]
    buf = np.ascontiguousarray(v.transpose(order))
    ct = c * math.prod(taps[t] for t in inner)
    if first == -1:
        cols = buf.reshape(g, ct, -1)
        y = np.matmul(wg.reshape(g, k, ct), cols)  # (g, k, n*O..)
        y = y.reshape(g, k, n, *outs)
    else:
        row = n * math.prod(outs[1:])  # elements per output row of dim 0
        flat = buf.reshape(g, ct, size[0] * row)
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
