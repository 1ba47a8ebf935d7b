"""numpy primitives for plan steps (the default backend)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import OperandTypeError, ShapeError
from . import numpy_conv
from .base import NumpyLike, dtype_result_type, strided_diagonal, strided_window, zero_pad

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

    conv = staticmethod(numpy_conv.conv)
    conv_weight = staticmethod(numpy_conv.conv_weight)

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

    pad = staticmethod(zero_pad)
    window = staticmethod(strided_window)

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
