"""numpy primitives for plan steps (the default backend)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = ["NumpyBackend"]


class NumpyBackend:
    """Kernel primitives on ``numpy.ndarray``; every method is a thin numpy call."""

    name = "numpy"
    matmul = staticmethod(np.matmul)
    multiply = staticmethod(np.multiply)
    einsum = staticmethod(np.einsum)
    dot = staticmethod(np.dot)

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
        x = np.asarray(x)
        shape = tuple(x.shape[g[0]] for g in groups)
        strides = tuple(sum(x.strides[a] for a in g) for g in groups)
        return as_strided(x, shape, strides)
