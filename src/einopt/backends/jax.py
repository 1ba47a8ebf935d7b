"""jax primitives for plan steps: pure functions of ``jax.numpy``, so ``jax.jit``,
``jax.grad`` and ``jax.vmap`` trace straight through a plan."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from ..errors import OperandTypeError
from .base import NumpyLike

__all__ = ["JaxBackend"]


class JaxBackend(NumpyLike):
    """Kernel primitives on ``jax.Array`` (and tracers)."""

    name = "jax"
    pair_einsum = True
    # Under jax.jit, XLA lays out a whole einsum's intermediates for its own dot: on the
    # CPU, 4x faster than einopt's numpy-tuned layouts on a 4-index transform
    # (benchmarks/backends.py --jax).
    whole_einsum = True

    def traced(self, operands: Sequence[Any]) -> bool:
        return any(isinstance(x, jax.core.Tracer) for x in operands)

    def einsum_path(self, subscripts: str, operands: Sequence[Any],
                    path: list[tuple[int, ...]]) -> Any:
        return jnp.einsum(subscripts, *operands, optimize=path)
    xp = jnp
    array_types = (jax.Array,)

    def add_at(self, result: Any, index: tuple[Any, ...], part: Any) -> Any:
        return result.at[index].add(part)  # jax arrays are immutable

    def write_out(self, result: Any, out: Any, casting: str) -> Any:
        raise OperandTypeError("jax arrays are immutable: out= is not supported for them")

    # Native convolutions (plan steps that are one run as XLA's convolution).
    conv_kinds = (False, True)

    @staticmethod
    def conv(x: Any, w: Any, pads: tuple[tuple[int, int], ...], stride: tuple[int, ...],
             dilation: tuple[int, ...], groups: int, transposed: bool = False,
             extra: tuple[int, ...] = ()) -> Any:
        """``conv{1,2,3}d`` as torch's: ``x`` ``(N, G*C, *spatial)`` with ``w``
        ``(G*K, C, *taps)`` (cross-correlation; negative pads crop); transposed: ``w``
        ``(G*C, K, *taps)``, the VJP of that convolution with respect to its input, so
        its output size takes ``extra`` (the output padding)."""
        x, w, back = _floating(x, w)
        if not transposed:
            return back(_conv(x, w, pads, stride, dilation, groups))
        outs = tuple((x.shape[2 + t] - 1) * stride[t] - lo - hi
                     + dilation[t] * (w.shape[2 + t] - 1) + 1 + extra[t]
                     for t, (lo, hi) in enumerate(pads))
        primal = jnp.zeros((x.shape[0], w.shape[1] * groups, *outs), x.dtype)
        _, vjp = jax.vjp(lambda y: _conv(y, w, pads, stride, dilation, groups), primal)
        return back(vjp(x)[0])

    @staticmethod
    def conv_weight(x: Any, g: Any, kernel: tuple[int, ...], pads: tuple[tuple[int, int], ...],
                    stride: tuple[int, ...], dilation: tuple[int, ...], groups: int) -> Any:
        """The weight gradient of :meth:`conv`: ``x`` ``(N, G*C, *spatial)`` against
        ``g`` ``(N, G*K, *positions)``, giving ``(G*K, C, *taps)`` summed over ``N`` (the
        VJP of the convolution with respect to its kernel)."""
        x, g, back = _floating(x, g)

        def one(x: Any, g: Any) -> Any:  # one group
            shape = (g.shape[1], x.shape[1], *kernel[2:])
            _, vjp = jax.vjp(lambda w: _conv(x, w, pads, stride, dilation, 1),
                             jnp.zeros(shape, x.dtype))
            return vjp(g)[0]

        if groups == 1:
            return back(one(x, g))
        # XLA's grouped weight gradient is slow on CPU (50x a vmap over the groups).
        def split(a: Any) -> Any:
            return jnp.moveaxis(a.reshape(a.shape[0], groups, -1, *a.shape[2:]), 1, 0)

        w = jax.vmap(one)(split(x), split(g))
        return back(w.reshape(kernel))


_SPECS = {1: ("NCH", "OIH", "NCH"), 2: ("NCHW", "OIHW", "NCHW"),
          3: ("NCDHW", "OIDHW", "NCDHW")}


def _conv(x: Any, w: Any, pads: tuple[tuple[int, int], ...], stride: tuple[int, ...],
          dilation: tuple[int, ...], groups: int) -> Any:
    return jax.lax.conv_general_dilated(
        x, w, window_strides=tuple(stride), padding=[(lo, hi) for lo, hi in pads],
        rhs_dilation=tuple(dilation), dimension_numbers=_SPECS[len(stride)],
        feature_group_count=groups, precision=jax.lax.Precision.HIGHEST)


def _floating(a: Any, b: Any) -> tuple[Any, Any, Any]:
    """``a`` and ``b`` in a floating dtype (integers: the widest jax allows, exact for
    these sums), and the function casting a result back."""
    if jnp.issubdtype(a.dtype, jnp.inexact):
        return a, b, lambda r: r
    dtype, wide = a.dtype, jnp.result_type(float)
    return a.astype(wide), b.astype(wide), lambda r: jnp.round(r).astype(dtype)
