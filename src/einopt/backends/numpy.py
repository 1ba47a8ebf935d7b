"""numpy primitives for plan steps (the default backend)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import OperandTypeError
from .base import NumpyLike

__all__ = ["NumpyBackend"]


#: elements from which a layout-changing copy is split across threads (numpy copies run
#: on one core and release the GIL; measured 2x on 2 cores for an im2col copy).
_PARALLEL_COPY = 1 << 20
_POOL: list[ThreadPoolExecutor] = []


def _parallel_copy(x: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``x``, made by one thread per core along its first long axis."""
    workers = os.cpu_count() or 1
    axis = next((a for a, d in enumerate(x.shape) if d >= workers), None)
    if workers == 1 or axis is None:
        return np.ascontiguousarray(x)
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(workers - 1))
    out = np.empty(x.shape, x.dtype)
    cuts = np.linspace(0, x.shape[axis], workers + 1).astype(int)
    parts = [(slice(None),) * axis + (slice(a, b),)
             for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    futures = [_POOL[0].submit(np.copyto, out[s], x[s]) for s in parts[1:]]
    np.copyto(out[parts[0]], x[parts[0]])  # this thread takes the first part
    for f in futures:
        f.result()
    return out


class NumpyBackend(NumpyLike):
    """Kernel primitives on ``numpy.ndarray``; every method is a thin numpy call."""

    name = "numpy"
    einsum_loops = True
    matmul = staticmethod(np.matmul)  # type: ignore[assignment]
    multiply = staticmethod(np.multiply)  # type: ignore[assignment]
    einsum = staticmethod(np.einsum)  # type: ignore[assignment]
    dot = staticmethod(np.dot)  # type: ignore[assignment]

    @staticmethod
    def swap_last(x: Any) -> Any:
        return np.swapaxes(x, -1, -2)

    @staticmethod
    def astype(x: Any, dtype: Any) -> Any:
        return np.asarray(x).astype(dtype, copy=False)

    @staticmethod
    def reshape(x: Any, shape: tuple[int, ...]) -> Any:
        if x.size >= _PARALLEL_COPY:
            try:
                return np.reshape(x, shape, copy=False)
            except ValueError:  # needs a copy: a large one runs on every core
                return np.reshape(_parallel_copy(x), shape)
            except TypeError:  # numpy < 2.1 has no copy=
                pass
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

    @staticmethod
    def pad(x: Any, widths: dict[int, tuple[int, int]]) -> Any:
        shape = list(x.shape)
        inner = [slice(None)] * x.ndim
        for a, (lo, hi) in widths.items():
            shape[a] += lo + hi
            inner[a] = slice(lo, lo + x.shape[a])
        out = np.zeros(shape, x.dtype)
        out[tuple(inner)] = x
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
        from ..errors import ShapeError

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
        return np.result_type(*[a.dtype for a in arrays]) if arrays else np.dtype(float)
