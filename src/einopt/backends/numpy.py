"""numpy primitives for plan steps (the default backend)."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number
from typing import Any

import numpy as np

from ..errors import OperandTypeError, OptionError, ShapeError, SubscriptError
from ..parse import Label
from . import numpy_conv
from .base import (
    NumpyLike,
    check_casts,
    check_kind,
    check_not_array,
    diagonal_subscripts,
    dtype_result_type,
    strided_window,
    zero_pad,
)

__all__ = ["NumpyBackend", "letters_for", "numpy_subscripts", "SYMBOLS"]

#: numpy's einsum itself, as imported (its loops run object arrays, and take diagonals
#: as views whose ``base`` is the operand's, as numpy's own do)
_NUMPY_EINSUM = np.einsum

#: The letters numpy's einsum takes, in the order its sublist form numbers them.
SYMBOLS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

#: Castings that allow no change of kind, under which even promotion may fail.
_STRICT_CASTINGS = ("no", "equiv")


def numpy_subscripts(inputs: Sequence[Sequence[Label]], output: Sequence[Label]) -> str:
    """The equation as numpy's einsum text: a single-letter label stays itself, an int
    ``k < 52`` of the sublist form is numpy's letter ``SYMBOLS[k]``, any other label
    gets a free letter; ``...`` stays.

    Raises:
        SubscriptError: the equation has more labels than numpy's 52 letters.
    """
    names = letters_for([lab for t in [*inputs, output] for lab in t if lab is not ...])

    def text(term: Sequence[Label]) -> str:
        return "".join("..." if lab is ... else names[lab] for lab in term)

    return ",".join(text(t) for t in inputs) + "->" + text(output)


def letters_for(labels: Sequence[Label], spare: str = "") -> dict[Label, str]:
    """A distinct numpy letter per label (single letters and sublist ints keep theirs);
    ``spare`` letters are handed out after numpy's when those run out."""
    names: dict[Label, str] = {}
    taken: set[str] = set()
    later: list[Label] = []
    for lab in dict.fromkeys(labels):
        want = None
        if isinstance(lab, str) and len(lab) == 1 and lab in SYMBOLS:
            want = lab
        elif isinstance(lab, (int, np.integer)) and not isinstance(lab, bool) \
                and 0 <= lab < len(SYMBOLS):
            want = SYMBOLS[lab]
        if want is None or want in taken:
            later.append(lab)
        else:
            names[lab] = want
            taken.add(want)
    free = iter([c for c in SYMBOLS + spare if c not in taken])
    for lab in later:
        letter = next(free, None)
        if letter is None:
            raise SubscriptError(f"the equation has more than {len(SYMBOLS)} indices, more "
                                 f"than numpy's einsum can name (label {lab!r})")
        names[lab] = letter
    return names


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
        """A view whose axis ``k`` walks the diagonal of ``x``'s axes ``groups[k]``.

        numpy's einsum makes it (a view, whose ``base`` is ``x``'s, as
        ``numpy.einsum("ii->i", x)`` returns; 5x faster than ``as_strided``)."""
        x = np.asarray(x)
        return _NUMPY_EINSUM(diagonal_subscripts(x.ndim, groups), x, optimize=False)

    pad = staticmethod(zero_pad)
    window = staticmethod(strided_window)
    reverses = True

    @staticmethod
    def reverse(x: Any, axis: int) -> Any:
        return x[(slice(None),) * axis + (slice(None, None, -1),)]

    def scalar(self, x: Any) -> Any:
        return x[()]

    def write_out(self, result: Any, out: Any, casting: str) -> Any:
        if not isinstance(out, np.ndarray):
            raise OperandTypeError(f"out must be a numpy array, got {type(out).__name__}")
        res = np.asarray(result)
        if out.shape != res.shape:
            raise ShapeError(f"out has shape {out.shape}, but the result has shape {res.shape}")
        if not out.flags.writeable:
            raise OptionError(f"out (shape {out.shape}, dtype {out.dtype}) is read-only")
        if not np.can_cast(res.dtype, out.dtype, casting):  # type: ignore[arg-type]
            raise OperandTypeError(
                f"the result of dtype {res.dtype} cannot be written to out of dtype "
                f"{out.dtype} under casting={casting!r}"
            )
        np.copyto(out, res, casting=casting)  # type: ignore[arg-type]
        return out

    def prepare(self, items: Sequence[Any], dtype: Any = None,
                casting: str = "safe", objects: bool = False) -> list[Any]:
        """The operands as arrays, dtypes untouched: numpy's casts are steps of the plan.

        With ``objects``, arrays of Python objects are read too (not a bare object that
        is neither an array nor a number): cast to ``dtype`` under ``casting`` where that
        is a number type (numpy's einsum casts them so), kept otherwise (see
        :meth:`needs_loop`)."""
        if not objects:
            return self.read(items)
        arrays: list[Any] = []
        for k, x in enumerate(items):
            check_not_array(k, x)
            try:
                arr = x if isinstance(x, np.ndarray) else np.asarray(x)
            except Exception as e:  # ragged lists, ...
                raise OperandTypeError(
                    f"operand {k} ({type(x).__name__}) cannot be read as a numpy array: "
                    f"{e}") from None
            if arr.dtype.kind == "O":
                if arr.ndim == 0 and not isinstance(x, (np.ndarray, np.generic, Number)):
                    raise OperandTypeError(
                        f"operand {k} is a {type(x).__name__}, not an array or a number")
                if dtype is not None and np.dtype(dtype).kind != "O":
                    if not np.can_cast(arr.dtype, dtype, casting):  # type: ignore[arg-type]
                        raise OperandTypeError(
                            f"operand {k} of dtype object cannot be cast to dtype="
                            f"{np.dtype(dtype)} under casting={casting!r}")
                    arr = arr.astype(dtype)
            else:
                check_kind(k, arr.dtype)
            arrays.append(arr)
        return arrays

    @staticmethod
    def needs_loop(arrays: Sequence[Any], dtype: Any) -> bool:
        """Whether the einsum multiplies Python objects (object operands, or
        ``dtype=object``): numpy's own einsum loop runs it (:meth:`loop`), with Python's
        ``*`` and ``+`` in numpy's order, as ``numpy.einsum`` does."""
        return any(a.dtype.kind == "O" for a in arrays) or (
            dtype is not None and np.dtype(dtype).kind == "O")

    @staticmethod
    def loop(subscripts: str, arrays: Sequence[Any], out: Any, dtype: Any, order: str,
             casting: str) -> Any:
        """``numpy.einsum`` itself, unoptimized: one loop over every operand.

        Raises:
            OperandTypeError: Python objects in the operands that ``*`` or ``+`` refuse.
        """
        try:
            return _NUMPY_EINSUM(subscripts, *arrays, out=out, dtype=dtype, order=order,
                                 casting=casting, optimize=False)
        except TypeError as e:
            kinds = ", ".join(f"operand {k}: {a.dtype}" for k, a in enumerate(arrays))
            raise OperandTypeError(f"numpy's einsum loop cannot multiply these operands "
                                   f"({kinds}): {e}") from e

    @staticmethod
    def in_order(result: Any, order: str, arrays: Sequence[Any]) -> Any:
        """``result`` laid out as numpy's einsum lays out a result under ``order``
        (``"C"``, ``"F"``, or ``"A"``: Fortran when every operand is Fortran-contiguous,
        C otherwise); copied only when its layout differs. Views of an operand are
        returned as they are, as numpy's einsum returns them whatever the order."""
        if not isinstance(result, np.ndarray):
            return result
        if order == "A":
            order = "F" if all(a.flags.f_contiguous for a in arrays) else "C"
        if result.flags.c_contiguous if order == "C" else result.flags.f_contiguous:
            return result
        owner = result.base
        if any(result is a or owner is not None and (owner is a or owner is a.base)
               for a in arrays):
            return result
        return np.asarray(result, order=order)  # type: ignore[call-overload]

    def result_type(self, arrays: Sequence[Any]) -> Any:
        return dtype_result_type(arrays)

    def common_dtype(self, arrays: Sequence[Any], dtype: Any, casting: str) -> Any:
        """As the base class's; under ``casting="no"`` or ``"equiv"`` the operands must
        also be of the promoted dtype already, as numpy's einsum requires."""
        common = super().common_dtype(arrays, dtype, casting)
        if dtype is None and casting in _STRICT_CASTINGS:
            check_casts(arrays, common, casting, f"the result dtype {common}")
        return common
