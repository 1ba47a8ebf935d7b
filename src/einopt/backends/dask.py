"""dask.array primitives for plan steps: every step is a lazy, chunk-aware dask call.

``dask.array.matmul`` contracts chunk by chunk and sums the partial products, so a
plan over dask arrays builds one task graph that runs when the result is computed.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from ..errors import OperandTypeError
from .base import NumpyLike, dtype_result_type

__all__ = ["DaskBackend"]


class DaskBackend(NumpyLike):
    """Kernel primitives on ``dask.array.Array``; numpy constants become one-chunk arrays."""

    name = "dask"
    xp = da
    array_types = (da.Array,)

    def reshape(self, x: Any, shape: tuple[int, ...]) -> Any:
        if 0 in x.shape:  # dask cannot reshape some empty arrays: nothing to keep anyway
            return da.zeros(shape, dtype=x.dtype)
        try:
            return da.reshape(x, shape)
        except NotImplementedError:  # chunks that do not split evenly: one chunk first
            return da.reshape(x.rechunk(-1), shape)

    def diagonal(self, x: Any, groups: tuple[tuple[int, ...], ...]) -> Any:
        # dask's einsum needs the axes of one diagonal chunked alike: one chunk each.
        whole = {a: -1 for g in groups if len(g) > 1 for a in g}
        return super().diagonal(x.rechunk(whole) if whole else x, groups)

    def dot(self, a: Any, b: Any) -> Any:
        return da.tensordot(a, b, axes=1)

    def result_type(self, arrays: Any) -> Any:
        return dtype_result_type(arrays)

    def add_at(self, result: Any, index: tuple[Any, ...], part: Any) -> Any:
        # dask arrays support item assignment; a lazy graph either way.
        result[index] = result[index] + part
        return result

    def write_out(self, result: Any, out: Any, casting: str) -> Any:
        if isinstance(out, np.ndarray):
            out[...] = np.asarray(result)
            return out
        raise OperandTypeError("out= for a dask result must be a numpy array")
