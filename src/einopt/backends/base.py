"""What a backend is: the few array primitives a plan's steps need, and operand intake.

Libraries with numpy's API (numpy, cupy, jax.numpy, dask.array) share
:class:`NumpyLike`, which calls a namespace module ``xp``; each backend module only
says which module that is and overrides what differs. torch has its own class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import OperandTypeError, ShapeError

__all__ = ["Backend", "NumpyLike", "diagonal_subscripts", "check_casts", "zero_pad",
           "strided_window", "check_kind", "check_not_array", "dtype_result_type",
           "strided_diagonal"]

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: dtype kinds einsum cannot multiply: strings, bytes, void, datetimes, timedeltas,
#: Python objects.
BAD_KINDS = frozenset("USVMmO")


def diagonal_subscripts(ndim: int, groups: tuple[tuple[int, ...], ...],
                        summed: tuple[int, ...] = ()) -> str:
    """Subscripts of a one-operand einsum taking the diagonal of each axis group (result
    axis ``k`` walks group ``k``), then summing the result axes ``summed``."""
    letter = [""] * ndim
    for k, group in enumerate(groups):
        for a in group:
            letter[a] = _LETTERS[k]
    kept = "".join(_LETTERS[k] for k in range(len(groups)) if k not in summed)
    return "".join(letter) + "->" + kept


def dtype_result_type(arrays: Sequence[Any]) -> Any:
    """numpy's promotion of the arrays' dtypes (float64 when there are none)."""
    return np.result_type(*[a.dtype for a in arrays]) if arrays else np.dtype(float)


def strided_diagonal(x: Any, groups: tuple[tuple[int, ...], ...], as_strided: Any) -> Any:
    """A view of ``x`` whose axis ``k`` walks the diagonal of its axes ``groups[k]``,
    made by the library's ``as_strided``."""
    shape = tuple(x.shape[g[0]] for g in groups)
    strides = tuple(sum(x.strides[a] for a in g) for g in groups)
    return as_strided(x, shape, strides)


def check_not_array(k: int, x: Any) -> None:
    """Reject operand ``k`` when it is a kind of object no array library reads as numbers."""
    if isinstance(x, (str, bytes, dict, set)) or x is None:
        raise OperandTypeError(f"operand {k} is a {type(x).__name__}, not an array")


def check_kind(k: int, dtype: Any) -> None:
    """Reject operand ``k`` when its numpy-style ``dtype`` cannot be multiplied."""
    if np.dtype(dtype).kind in BAD_KINDS:
        raise OperandTypeError(f"operand {k} has dtype {dtype}, which einsum cannot multiply")


class Backend:
    """The interface the executor uses. Every method is a thin call of one library."""

    name = "base"
    #: whether steps that numpy runs fastest in its einsum loop use it here too
    einsum_loops = False
    #: which convolution steps run as the library's ``conv`` (False: convolutions, True:
    #: transposed convolutions); empty when it has none
    conv_kinds: tuple[bool, ...] = ()
    #: whether every pairwise step runs as the library's two-operand einsum (where that
    #: compiles to one fused contraction, transposes included: XLA's dot_general)
    pair_einsum = False
    #: whether, while traced by a compiler (``jax.jit``), a whole unsliced contraction runs
    #: as one call of the library's einsum given the plan's path (:meth:`einsum_path`):
    #: the compiler then lays out every intermediate for its own kernels
    whole_einsum = False

    def traced(self, operands: Sequence[Any]) -> bool:
        """Whether ``operands`` are a compiler's placeholders (not concrete arrays)."""
        return False

    def einsum_path(self, subscripts: str, operands: Sequence[Any],
                    path: list[tuple[int, ...]]) -> Any:
        """The whole einsum, contracted pairwise along ``path`` (opt_einsum's format)."""
        raise NotImplementedError

    def prepare(self, items: Sequence[Any], dtype: Any = None,
                casting: str = "safe") -> list[Any]:
        """The operands as this library's arrays, of one dtype (the library's promotion)."""
        raise NotImplementedError

    def write_out(self, result: Any, out: Any, casting: str) -> Any:
        """Copy ``result`` into ``out`` (same shape) and return ``out``."""
        if tuple(out.shape) != tuple(result.shape):
            raise ShapeError(f"out has shape {tuple(out.shape)}, but the result has shape "
                             f"{tuple(result.shape)}")
        out[...] = result
        return out

    def scalar(self, x: Any) -> Any:
        """What a 0-d result is returned as (the 0-d array itself, except numpy's)."""
        return x

    # Kernel primitives.
    def matmul(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def multiply(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def add(self, a: Any, b: Any) -> Any:
        """Elementwise sum (dual-number derivatives add their parts)."""
        return a + b

    def wide_matmul(self, a: Any, b: Any) -> Any:
        """``(K, C) @ (N, C, L)`` -> ``(N, K, L)``: a matrix times each slice of ``b``."""
        return self.matmul(a, b)

    def einsum(self, subscripts: str, *ops: Any) -> Any:
        raise NotImplementedError

    def dot(self, a: Any, b: Any) -> Any:
        """Inner product of two vectors."""
        raise NotImplementedError

    def batched_dot(self, batch: int, contract: int) -> Callable[[Any, Any], Any]:
        """The kernel of a batched inner product of (B, C) operands, chosen for B and C
        (at planning time: shapes are fixed per plan)."""
        return lambda a, b: self.sum(self.multiply(a, b), (-1,))

    def dot_temporary(self, contract: int) -> bool:
        """Whether :meth:`batched_dot`'s kernel for ``contract`` forms the elementwise
        product of two distinct operands before it sums (memory accounting)."""
        return type(self).batched_dot is Backend.batched_dot

    def swap_last(self, x: Any) -> Any:
        raise NotImplementedError

    def astype(self, x: Any, dtype: Any) -> Any:
        raise NotImplementedError

    def reshape(self, x: Any, shape: tuple[int, ...]) -> Any:
        raise NotImplementedError

    def transpose(self, x: Any, perm: tuple[int, ...]) -> Any:
        raise NotImplementedError

    def sum(self, x: Any, axes: tuple[int, ...]) -> Any:
        raise NotImplementedError

    def diagonal(self, x: Any, groups: tuple[tuple[int, ...], ...]) -> Any:
        """A result whose axis ``k`` walks the diagonal of ``x``'s axes ``groups[k]``."""
        return self.einsum(diagonal_subscripts(len(x.shape), groups), x)

    def takes_conv(self, x_shape: tuple[int, ...], w_shape: tuple[int, ...],
                   stride: tuple[int, ...], groups: int, transposed: bool) -> bool:
        """Whether a convolution step of these shapes runs as :meth:`conv` (else as the
        plan's view and matrix product)."""
        return transposed in self.conv_kinds

    def takes_conv_weight(self, x_shape: tuple[int, ...], g_shape: tuple[int, ...],
                          stride: tuple[int, ...], groups: int) -> bool:
        """Whether a convolution's weight-gradient step runs as the library's own (its
        ``conv_weight`` method, where it has one), else as the plan's view and matrix
        product."""
        return hasattr(self, "conv_weight")

    # Structured operands (views of an operand along one axis).
    def asarray(self, x: Any) -> Any:
        """``x`` (numpy or nested lists) as this library's array."""
        raise NotImplementedError

    def constant(self, x: np.ndarray, like: Any) -> Any:
        """numpy array ``x`` as this library's array with ``like``'s dtype and device."""
        raise NotImplementedError

    def pad(self, x: Any, widths: dict[int, tuple[int, int]]) -> Any:
        """``x`` with ``(left, right)`` zeros added along each axis of ``widths``."""
        raise NotImplementedError

    def take(self, x: Any, index: Any, axis: int) -> Any:
        """``x`` with ``axis`` replaced by the axes of integer array ``index`` (a gather)."""
        raise NotImplementedError

    #: whether :meth:`reverse` is a view (then flipped windows are views too)
    reverses = False

    def reverse(self, x: Any, axis: int) -> Any:
        """``x`` read backwards along ``axis`` (a view where :attr:`reverses`)."""
        raise NotImplementedError

    def window(self, x: Any, axis: int, sizes: tuple[int, int], steps: tuple[int, int],
               start: int) -> Any | None:
        """A view with ``axis`` replaced by axes ``(u1, u2)`` of ``sizes`` reading
        ``x[start + steps[0]*u1 + steps[1]*u2]`` (all in range), or None when the library
        has no strided views (the caller gathers instead)."""
        return None

    # Sliced evaluation.
    def zeros(self, shape: tuple[int, ...], like: Any) -> Any:
        raise NotImplementedError

    def add_at(self, result: Any, index: tuple[Any, ...], part: Any) -> Any:
        """``result`` with ``part`` added into ``result[index]`` (in place where allowed)."""
        result[index] += part
        return result


class NumpyLike(Backend):
    """A backend over a module with numpy's API (``self.xp``)."""

    xp: Any = np
    #: the library's array type(s), to tell its arrays from constants to convert
    array_types: tuple[type, ...] = (np.ndarray,)

    def matmul(self, a: Any, b: Any) -> Any:
        return self.xp.matmul(a, b)

    def multiply(self, a: Any, b: Any) -> Any:
        return self.xp.multiply(a, b)

    def einsum(self, subscripts: str, *ops: Any) -> Any:
        return self.xp.einsum(subscripts, *ops)

    def dot(self, a: Any, b: Any) -> Any:
        return self.xp.dot(a, b)

    def swap_last(self, x: Any) -> Any:
        return self.xp.swapaxes(x, -1, -2)

    def astype(self, x: Any, dtype: Any) -> Any:
        return x.astype(dtype)

    def reshape(self, x: Any, shape: tuple[int, ...]) -> Any:
        return self.xp.reshape(x, shape)

    def transpose(self, x: Any, perm: tuple[int, ...]) -> Any:
        return self.xp.transpose(x, perm)

    def sum(self, x: Any, axes: tuple[int, ...]) -> Any:
        # Keep the dtype (int8 wraps, bool is a logical or), as numpy.einsum does.
        return self.xp.sum(x, axis=axes, dtype=x.dtype)

    def zeros(self, shape: tuple[int, ...], like: Any) -> Any:
        return self.xp.zeros(shape, dtype=like.dtype)

    def asarray(self, x: Any) -> Any:
        return self.xp.asarray(x)

    def constant(self, x: np.ndarray, like: Any) -> Any:
        return self.xp.asarray(x, dtype=like.dtype)

    def pad(self, x: Any, widths: dict[int, tuple[int, int]]) -> Any:
        return self.xp.pad(x, [widths.get(a, (0, 0)) for a in range(len(x.shape))])

    def take(self, x: Any, index: Any, axis: int) -> Any:
        shape = tuple(x.shape)
        flat = self.xp.take(x, np.reshape(np.asarray(index), (-1,)) if isinstance(
            index, np.ndarray) else self.xp.reshape(index, (-1,)), axis=axis)
        return self.reshape(flat, shape[:axis] + tuple(index.shape) + shape[axis + 1:])

    def read(self, items: Sequence[Any]) -> list[Any]:
        """The operands as this library's arrays, each checked to hold numbers."""
        arrays: list[Any] = []
        for k, x in enumerate(items):
            check_not_array(k, x)
            try:
                arr: Any = x if isinstance(x, self.array_types) else self.asarray(x)
            except Exception as e:  # ragged lists, arrays of another library, ...
                raise OperandTypeError(
                    f"operand {k} ({type(x).__name__}) cannot be read as a {self.name} "
                    f"array: {e}") from None
            check_kind(k, arr.dtype)
            arrays.append(arr)
        return arrays

    def common_dtype(self, arrays: Sequence[Any], dtype: Any, casting: str) -> Any:
        """``dtype`` if every operand casts to it under ``casting``, else the operands'
        promoted dtype when ``dtype`` is None."""
        if dtype is None:
            return self.result_type(arrays)
        common = np.dtype(dtype)
        check_casts(arrays, common, casting, f"dtype={common}")
        return common

    def prepare(self, items: Sequence[Any], dtype: Any = None,
                casting: str = "safe") -> list[Any]:
        arrays = self.read(items)
        common = self.common_dtype(arrays, dtype, casting)
        return [a if a.dtype == common else self.astype(a, common) for a in arrays]

    def result_type(self, arrays: Sequence[Any]) -> Any:
        return self.xp.result_type(*arrays) if arrays else np.dtype(float)


def zero_pad(x: Any, widths: dict[int, tuple[int, int]]) -> Any:
    """numpy ``x`` with ``(left, right)`` zeros added along each axis of ``widths``."""
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


def strided_window(x: Any, axis: int, sizes: tuple[int, int], steps: tuple[int, int],
                   start: int) -> Any:
    """A read-only strided view (no copy): the sliding windows of ``x`` along ``axis``."""
    x = np.asarray(x)
    st = x.strides
    shape = x.shape[:axis] + tuple(sizes) + x.shape[axis + 1:]
    strides = st[:axis] + (steps[0] * st[axis], steps[1] * st[axis]) + st[axis + 1:]
    base = x[(slice(None),) * axis + (slice(start, None),)]
    return np.lib.stride_tricks.as_strided(base, shape, strides, writeable=False)


def check_casts(arrays: Sequence[Any], target: Any, casting: str, what: str) -> None:
    """Raise an :class:`OperandTypeError` naming the first operand whose dtype does not
    cast to ``target`` under numpy's ``casting`` rule (``what`` names the target)."""
    for k, arr in enumerate(arrays):
        if not np.can_cast(arr.dtype, target, casting):  # type: ignore[arg-type]
            raise OperandTypeError(f"operand {k} of dtype {arr.dtype} cannot be cast to "
                                   f"{what} under casting={casting!r}")
