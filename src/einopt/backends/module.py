"""A backend over any module with an ``einsum``: opt_einsum's ``backend="module.name"``.

opt_einsum runs a contraction's steps with the ``einsum`` (and ``tensordot``,
``transpose``) of whatever module ``backend=`` names, which makes semiring modules work
(``funsor.einsum.numpy_log`` sums in log space, others take max-products): the module
decides what "multiply" and "sum" mean. Here every primitive a plan's steps need goes
through the module's ``einsum``: pairwise steps run as their two-operand subscripts,
diagonals, sums over axes and transposes as one-operand einsums, so no arithmetic of
another library enters. Reshapes only add or drop axes of size 1 (an array method, or
the module's ``reshape`` where it has one).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import BackendError
from .base import Backend, check_not_array, diagonal_subscripts

__all__ = ["ModuleBackend", "SUBSCRIPT_LETTERS"]

#: The letters a step's subscripts are written in (numpy's and opt_einsum's 52).
SUBSCRIPT_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _letters(ndim: int) -> str:
    if ndim > len(SUBSCRIPT_LETTERS):
        raise BackendError(
            f"a step over {ndim} axes cannot be written as einsum subscripts (at most "
            f"{len(SUBSCRIPT_LETTERS)} letters), which a module backend needs")
    return SUBSCRIPT_LETTERS[:ndim]


class ModuleBackend(Backend):
    """Steps run by ``module.einsum``; operands are passed to it as they are (anything
    without a ``shape`` is read by ``numpy.asarray`` first, as opt_einsum does)."""

    pair_einsum = True

    def __init__(self, module_name: str) -> None:
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise BackendError(
                f"backend={module_name!r} names no importable module ({e}); give an array "
                f"library ('numpy', 'torch', 'jax', 'cupy', 'dask') or a module with an "
                f"einsum function") from None
        fn = getattr(module, "einsum", None)
        if not callable(fn):
            raise BackendError(
                f"backend={module_name!r}: the module has no einsum function, which every "
                f"step of a contraction runs through")
        self.module = module
        self.module_name = module_name
        self.name = f"module:{module_name}"
        self._einsum: Callable[..., Any] = fn
        self._reshape = getattr(module, "reshape", None)

    def __repr__(self) -> str:
        return f"ModuleBackend({self.module_name!r})"

    def prepare(self, items: Sequence[Any], dtype: Any = None,
                casting: str = "safe") -> list[Any]:
        arrays = []
        for k, x in enumerate(items):
            check_not_array(k, x)
            arr = x if hasattr(x, "shape") else np.asarray(x)
            if dtype is not None:
                arr = self.astype(arr, dtype)
            arrays.append(arr)
        return arrays

    def einsum(self, subscripts: str, *ops: Any) -> Any:
        return self._einsum(subscripts, *ops)

    def diagonal(self, x: Any, groups: tuple[tuple[int, ...], ...]) -> Any:
        return self.einsum(diagonal_subscripts(len(x.shape), groups), x)

    def sum(self, x: Any, axes: tuple[int, ...]) -> Any:
        letters = _letters(len(x.shape))
        drop = {a % len(letters) for a in axes}
        kept = "".join(c for a, c in enumerate(letters) if a not in drop)
        return self.einsum(f"{letters}->{kept}", x)

    def transpose(self, x: Any, perm: tuple[int, ...]) -> Any:
        letters = _letters(len(x.shape))
        return self.einsum(f"{letters}->{''.join(letters[p] for p in perm)}", x)

    def reshape(self, x: Any, shape: tuple[int, ...]) -> Any:
        if self._reshape is not None:
            return self._reshape(x, shape)
        return x.reshape(shape)

    def astype(self, x: Any, dtype: Any) -> Any:
        return x.astype(dtype)

    def _pairwise(self, a: Any, b: Any) -> Any:
        raise BackendError(
            "this step has more than 52 indices, so it has no einsum subscripts, which a "
            "module backend needs; contract fewer indices per step")

    matmul = multiply = wide_matmul = dot = _pairwise

    def swap_last(self, x: Any) -> Any:
        n = len(x.shape)
        return self.transpose(x, (*range(n - 2), n - 1, n - 2))

    def asarray(self, x: Any) -> Any:
        return x if hasattr(x, "shape") else np.asarray(x)

    def constant(self, x: np.ndarray, like: Any) -> Any:
        return np.asarray(x, dtype=getattr(like, "dtype", None))
