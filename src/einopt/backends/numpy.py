"""numpy primitives for plan steps (the default backend)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import OperandTypeError, ShapeError
from .base import NumpyLike, dtype_result_type, strided_diagonal

__all__ = ["NumpyBackend"]


class NumpyBackend(NumpyLike):
    """Kernel primitives on ``numpy.ndarray``; every method is a thin numpy call."""

    name = "numpy"
    einsum_loops = True
    matmul = staticmethod(np.matmul)  # type: ignore[assignment]
    multiply = staticmethod(np.multiply)  # type: ignore[assignment]
    einsum = staticmethod(np.einsum)  # type: ignore[assignment]
    dot = staticmethod(np.dot)  # type: ignore[assignment]

    #: steps that are convolutions run as :func:`numpy_conv.conv` (not transposed ones)
    conv_kinds = (False,)

    @staticmethod
    def conv(*args: Any) -> Any:
        from .numpy_conv import conv

        return conv(*args)

    @staticmethod
    def conv_weight(*args: Any) -> Any:
        from .numpy_conv import conv_weight

        return conv_weight(*args)

    def takes_conv_weight(self, x_shape: tuple[int, ...], g_shape: tuple[int, ...],
                          stride: tuple[int, ...], groups: int) -> bool:
        # The same unfolded buffer as a convolution's (3x the input for 3x3 taps, where
        # the plan's im2col view is copied whole, 9x), for the same products.
        return len(stride) >= 2

    def takes_conv(self, x_shape: tuple[int, ...], w_shape: tuple[int, ...],
                   stride: tuple[int, ...], groups: int, transposed: bool) -> bool:
        # Measured: the tap-offset products win when each has a long enough inner
        # dimension (channels x inner taps >= 128), on ungrouped 2-d/3-d convolutions
        # with stride 1 on the outer dim; otherwise the plan's im2col view is as fast.
        inner = w_shape[1] * int(np.prod(w_shape[3:]))
        return (not transposed and groups == 1 and len(stride) >= 2 and stride[0] == 1
                and inner >= 128)

    @staticmethod
    def swap_last(x: Any) -> Any:
        return np.swapaxes(x, -1, -2)

    @staticmethod
    def astype(x: Any, dtype: Any) -> Any:
        return np.asarray(x).astype(dtype, copy=False)

    @staticmethod
    def reshape(x: Any, shape: tuple[int, ...]) -> Any:
        return np.reshape(x, shape)

    @staticmethod
    def transpose(x: Any, perm: tuple[int, ...]) -> Any:
        return np.transpose(x, perm)

    @staticmethod
    def sum(x: Any, axes: tuple[int, ...]) -> Any:
        # Keep the dtype (int8 wraps, bool is a logical or), as numpy.einsum does.
        return np.add.reduce(x, axis=axes, dtype=x.dtype)

    @staticmethod
    def diagonal(x: Any, groups: tuple[tuple[int, ...], ...]) -> Any:
        """A view whose axis ``k`` walks the diagonal of ``x``'s axes ``groups[k]``."""
        return strided_diagonal(np.asarray(x), groups, as_strided)

    @staticmethod
    def pad(x: Any, widths: dict[int, tuple[int, int]]) -> Any:
        shape = list(x.shape)
        inner = [slice(None)] * x.ndim
        for a, (lo, hi) in widths.items():
            shape[a] += lo + hi
            inner[a] = slice(lo, lo + x.shape[a])
        out = np.empty(shape, x.dtype)  # zeros only where the padding goes
        out[tuple(inner)] = x
        for a, (lo, _) in widths.items():
            edge = [slice(None)] * x.ndim
            edge[a] = slice(0, lo)
            out[tuple(edge)] = 0
            edge[a] = slice(lo + x.shape[a], None)
            out[tuple(edge)] = 0
        return out

    @staticmethod
    def window(x: Any, axis: int, sizes: tuple[int, int], steps: tuple[int, int],
               start: int) -> Any:
        """A read-only strided view (no copy): the sliding windows of ``x`` along ``axis``."""
        x = np.asarray(x)
        st = x.strides
        shape = x.shape[:axis] + tuple(sizes) + x.shape[axis + 1:]
        strides = st[:axis] + (steps[0] * st[axis], steps[1] * st[axis]) + st[axis + 1:]
        base = x[(slice(None),) * axis + (slice(start, None),)]
        return as_strided(base, shape, strides, writeable=False)

    def scalar(self, x: Any) -> Any:
        return x[()]

    def write_out(self, result: Any, out: Any, casting: str) -> Any:
        if not isinstance(out, np.ndarray):
            raise OperandTypeError(f"out must be a numpy array, got {type(out).__name__}")
        res = np.asarray(result)
        if out.shape != res.shape:
            raise ShapeError(f"out has shape {out.shape}, but the result has shape {res.shape}")
        if not np.can_cast(res.dtype, out.dtype, casting):  # type: ignore[arg-type]
            raise OperandTypeError(
                f"the result of dtype {res.dtype} cannot be written to out of dtype "
                f"{out.dtype} under casting={casting!r}"
            )
        np.copyto(out, res, casting=casting)  # type: ignore[arg-type]
        return out

    def prepare(self, items: Sequence[Any], dtype: Any = None,
                casting: str = "safe") -> list[Any]:
        """The operands as arrays, dtypes untouched: numpy's casts are steps of the plan."""
        return self.read(items)

    def result_type(self, arrays: Sequence[Any]) -> Any:
        return dtype_result_type(arrays)
