"""Structured operands: 0/1 tensors known by a rule rather than by their entries.

Each is usable wherever an array is (``numpy.asarray(p)`` gives the dense tensor), and
einopt never builds that dense tensor unless a plan needs it: the rewrite in
:mod:`einopt.structured.rewrite` turns each into an index substitution on the operands
that meet it.

- :func:`delta` -- ``D[i, j, ...] = 1`` iff all indices are equal (identity, copy tensor).
- :func:`conv_pattern` -- ``P[k, o, i] = 1`` iff ``i == o*stride + k*dilation - pad``:
  input position ``i`` feeds output position ``o`` through kernel tap ``k``.
- :func:`one_hot` -- ``S[..., c] = 1`` iff ``c == indices[...]`` (a selector).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ShapeError

__all__ = ["Structured", "Delta", "ConvPattern", "Selector", "delta", "conv_pattern",
           "one_hot", "is_structured"]


class Structured:
    """Base of the structured operand types: a shape, and the dense 0/1 tensor on demand.

    Structured operands take no part in dtype promotion: the dense operands decide the
    result's dtype (float64 when there are none).
    """

    shape: tuple[int, ...]

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype:
        """The dtype ``numpy.asarray`` gives (float64)."""
        return np.dtype(np.float64)

    @property
    def key(self) -> tuple[Any, ...]:
        """What a plan depends on: the type, its parameters and shape (not index data)."""
        raise NotImplementedError

    def dense(self) -> np.ndarray:
        """The tensor's entries as a float64 numpy array."""
        raise NotImplementedError

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        d = self.dense()
        return d if dtype is None else d.astype(dtype)


@dataclass(frozen=True, slots=True)
class Delta(Structured):
    """``D[i1, ..., im] = 1`` iff ``i1 == ... == im``; every dimension has ``size``."""

    size: int
    order: int = 2

    @property
    def shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return (self.size,) * self.order

    @property
    def key(self) -> tuple[Any, ...]:
        return ("delta", self.size, self.order)

    def dense(self) -> np.ndarray:
        d = np.zeros(self.shape)
        d[(np.arange(self.size),) * self.order] = 1.0
        return d


@dataclass(frozen=True, slots=True)
class ConvPattern(Structured):
    """``P[k, o, i] = 1`` iff ``i == o*stride + k*dilation - pad_left``.

    Attributes:
        input_size: number of input positions ``I``.
        kernel_size: number of kernel taps ``K``.
        output_size: number of output positions ``O``.
        stride, dilation: steps between outputs and between taps.
        pad_left: zeros assumed before the first input (positions past the input's end
            read zeros too).
    """

    input_size: int
    kernel_size: int
    output_size: int
    stride: int = 1
    dilation: int = 1
    pad_left: int = 0

    @property
    def shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return (self.kernel_size, self.output_size, self.input_size)

    @property
    def key(self) -> tuple[Any, ...]:
        return ("conv", self.input_size, self.kernel_size, self.output_size, self.stride,
                self.dilation, self.pad_left)

    def relation(self) -> tuple[int, int, int]:
        """``(a_k, a_o, c)`` with ``i == a_k*k + a_o*o + c``."""
        return self.dilation, self.stride, -self.pad_left

    def dense(self) -> np.ndarray:
        k = np.arange(self.kernel_size)[:, None]
        o = np.arange(self.output_size)[None, :]
        i = o * self.stride + k * self.dilation - self.pad_left
        p = np.zeros(self.shape)
        kk, oo = np.nonzero((i >= 0) & (i < self.input_size))
        p[kk, oo, i[kk, oo]] = 1.0
        return p


@dataclass(frozen=True, slots=True, eq=False)
class Selector(Structured):
    """``S[*idx_axes, c] = 1`` iff ``c == indices[*idx_axes]`` (one-hot rows).

    ``indices`` is an integer array of any library; it stays where it is and is used
    to gather, never expanded to the dense one-hot tensor unless a plan needs it.
    """

    indices: Any
    num_classes: int

    @property
    def shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return (*(int(d) for d in self.indices.shape), self.num_classes)

    @property
    def key(self) -> tuple[Any, ...]:
        return ("select", self.shape)

    def dense(self) -> np.ndarray:
        idx = np.asarray(_to_numpy(self.indices))
        return np.eye(self.num_classes)[idx]


def _to_numpy(x: Any) -> Any:
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy()
    return x


def is_structured(x: Any) -> bool:
    """Whether ``x`` is a structured operand."""
    return isinstance(x, Structured)


def _positive(name: str, value: Any, minimum: int = 1) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ShapeError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def delta(size: int, order: int = 2) -> Delta:
    """The copy tensor of ``order`` dimensions of ``size``: 1 where all indices agree.

    In an einsum it merges its indices into one, at no cost: ``einsum("ij,j->ij",
    delta(n), v)`` is ``diag(v)``.
    """
    return Delta(_positive("delta size", size), _positive("delta order", order))


def conv_pattern(input_size: int, kernel_size: int, stride: int = 1,
                 padding: int | str | tuple[int, int] = 0, dilation: int = 1,
                 output_size: int | None = None) -> ConvPattern:
    """The index pattern ``P[k, o, i]`` of a 1-d convolution (apply once per spatial dim).

    ``einsum("nci,kci,... ")``-style layers read ``y[n, m, o] = sum W[m, c, k] x[n, c, i]
    P[k, o, i]``; the same pattern with ``o`` summed and ``i`` kept is the transposed
    convolution.

    Args:
        input_size: input positions ``I``.
        kernel_size: kernel taps ``K``.
        stride: step between outputs, as in ``torch.nn.functional.conv1d``.
        padding: zeros on each side (an int), ``(left, right)``, ``"valid"`` (0) or
            ``"same"`` (output size ``ceil(I / stride)``, the extra zero on the right).
        dilation: step between taps.
        output_size: output positions; by default as many as fit.

    Example:
        >>> import numpy as np, einopt
        >>> x, w = np.arange(5.0), np.array([1.0, -1.0])
        >>> p = einopt.conv_pattern(5, 2)
        >>> einopt.einsum("i,k,koi->o", x, w, p)  # x[o] - x[o+1]
        array([-1., -1., -1., -1.])
    """
    i = _positive("input_size", input_size)
    k = _positive("kernel_size", kernel_size)
    s = _positive("stride", stride)
    d = _positive("dilation", dilation)
    span = d * (k - 1) + 1
    if padding == "valid":
        left, right = 0, 0
    elif padding == "same":
        out = -(-i // s)
        total = max((out - 1) * s + span - i, 0)
        left, right = total // 2, total - total // 2
    elif isinstance(padding, tuple) and len(padding) == 2:
        left = _positive("padding", padding[0], 0)
        right = _positive("padding", padding[1], 0)
    else:
        left = right = _positive("padding", padding, 0)
    fit = (i + left + right - span) // s + 1
    if output_size is None:
        if fit < 1:
            raise ShapeError(f"conv_pattern: a kernel spanning {span} positions does not fit "
                             f"in {i} inputs with padding ({left}, {right})")
        output_size = fit
    o = _positive("output_size", output_size)
    return ConvPattern(i, k, o, s, d, left)


def one_hot(indices: Any, num_classes: int) -> Selector:
    """The one-hot tensor of integer ``indices``: ``S[..., c] = 1`` iff ``c == indices[...]``.

    Summing it against an operand over ``c`` gathers that operand's rows (no dense
    one-hot tensor is built): ``einsum("nc,cd->nd", one_hot(y, C), E)`` is ``E[y]``.
    """
    c = _positive("num_classes", num_classes)
    if not hasattr(indices, "shape"):
        indices = np.asarray(indices)
    kind = getattr(getattr(indices, "dtype", None), "kind", None)
    if kind is not None and kind not in "iu":
        raise ShapeError(f"one_hot needs integer indices, got dtype {indices.dtype}")
    if kind is None and "int" not in str(getattr(indices, "dtype", "")):
        raise ShapeError(f"one_hot needs integer indices, got dtype {indices.dtype}")
    return Selector(indices, c)
