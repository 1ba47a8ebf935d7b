"""torch primitives for plan steps: results on the operands' device, autograd intact.

Every primitive is an ordinary differentiable torch call (no in-place writes to
operands, no strided views that ``torch.func`` cannot batch), so gradients,
``torch.compile`` and ``torch.func.vmap``/``grad`` see plain torch code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..caches import memoize
from ..errors import OperandTypeError, OptionError
from .base import Backend, check_kind, check_not_array

__all__ = ["TorchBackend"]

#: Per-item lengths for which a batched inner product runs as a fused multiply-and-sum.
_REDUCE_MIN, _REDUCE_MAX = 8, 8192
#: Real floating dtypes: a batched inner product of a tensor with itself runs as a norm.
_FLOAT_KINDS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class TorchBackend(Backend):
    """Kernel primitives on ``torch.Tensor``."""

    name = "torch"
    conv_kinds = (False, True)

    def prepare(self, items: Sequence[Any], dtype: Any = None,
                casting: str = "safe") -> list[Any]:
        device = next((x.device for x in items if isinstance(x, torch.Tensor)), None)
        tensors = []
        for k, x in enumerate(items):
            if isinstance(x, torch.Tensor):
                tensors.append(x)
                continue
            check_not_array(k, x)
            check_kind(k, getattr(x, "dtype", float))
            try:
                tensors.append(torch.as_tensor(x, device=device))
            except Exception as e:
                raise OperandTypeError(
                    f"operand {k} ({type(x).__name__}) cannot be read as a torch tensor: {e}"
                ) from None
        if dtype is not None:
            common = dtype if isinstance(dtype, torch.dtype) else _torch_dtype(dtype)
            for k, t in enumerate(tensors):
                if casting == "safe" and not torch.can_cast(t.dtype, common):
                    raise OperandTypeError(
                        f"operand {k} of dtype {t.dtype} cannot be cast to dtype={common} "
                        f"under casting='safe'")
        else:
            common = _result_type(tensors, items)
        if common == torch.bool:
            raise OperandTypeError("torch has no bool matrix products: cast the operands to an "
                                   "integer or floating dtype first")
        return [t if t.dtype == common else t.to(common) for t in tensors]

    def write_out(self, result: Any, out: Any, casting: str) -> Any:
        """``result`` copied into ``out`` under numpy's ``casting`` rule; a result that
        shares memory with ``out`` (a view of an operand that is ``out``) is copied first,
        so ``out`` may be an operand, as in numpy."""
        if not isinstance(out, torch.Tensor):
            raise OperandTypeError(f"out must be a torch tensor, got {type(out).__name__}")
        if not _castable(result.dtype, out.dtype, casting):
            raise OperandTypeError(f"the result of dtype {result.dtype} cannot be written to "
                                   f"out of dtype {out.dtype} under casting={casting!r}")
        if out.requires_grad and out.is_leaf and torch.is_grad_enabled():
            raise OptionError(f"out (shape {tuple(out.shape)}) is a leaf tensor that requires "
                              f"grad: torch writes no such tensor in place")
        if result.untyped_storage().data_ptr() == out.untyped_storage().data_ptr():
            result = result.clone()
        return super().write_out(result, out, casting)

    matmul = staticmethod(torch.matmul)  # type: ignore[assignment]
    multiply = staticmethod(torch.mul)  # type: ignore[assignment]
    einsum = staticmethod(torch.einsum)  # type: ignore[assignment]
    dot = staticmethod(torch.dot)  # type: ignore[assignment]

    def dot_temporary(self, contract: int) -> bool:
        return _REDUCE_MIN <= contract <= _REDUCE_MAX

    @staticmethod
    def batched_dot(batch: int, contract: int) -> Callable[[Any, Any], Any]:
        # Measured on CPU (BENCHMARKS.md): a fused multiply-and-sum beats a batched
        # matmul of (B, 1, C) by (B, C, 1) for 8 <= C <= 8192; outside that window the
        # matmul wins (no temporary of B*C elements, or fewer tiny reductions). A tensor
        # with itself is a sum of squares: a norm reads it once, fastest everywhere.
        reduce = _REDUCE_MIN <= contract <= _REDUCE_MAX

        def kernel(a: Any, b: Any) -> Any:
            if a is b and a.dtype in _FLOAT_KINDS:
                return torch.linalg.vector_norm(a, dim=-1).square()
            if reduce:
                return TorchBackend.sum(a * b, (-1,))  # integers keep their dtype
            return torch.matmul(a.unsqueeze(-2), b.unsqueeze(-1)).reshape(batch)

        return kernel

    @staticmethod
    def wide_matmul(a: Any, b: Any) -> Any:
        # On CPU in float32, oneDNN's 1x1 convolution beats a broadcast batched matmul
        # by 1.2-1.4x for this product (measured, BENCHMARKS.md); elsewhere matmul.
        if a.dtype == torch.float32 and a.device.type == "cpu" and b.dim() == 3:
            return torch.nn.functional.conv1d(b, a.unsqueeze(-1))
        return torch.matmul(a, b)

    @staticmethod
    def swap_last(x: Any) -> Any:
        return x.transpose(-1, -2)

    @staticmethod
    def astype(x: Any, dtype: Any) -> Any:
        return x.to(dtype if isinstance(dtype, torch.dtype) else _torch_dtype(dtype))

    @staticmethod
    def reshape(x: Any, shape: tuple[int, ...]) -> Any:
        return x.reshape(shape)

    @staticmethod
    def transpose(x: Any, perm: tuple[int, ...]) -> Any:
        return x.permute(perm)

    @staticmethod
    def sum(x: Any, axes: tuple[int, ...]) -> Any:
        if x.dtype.is_floating_point or x.dtype.is_complex:
            return x.sum() if len(axes) == x.dim() else x.sum(dim=axes)
        return torch.sum(x, dim=axes, dtype=x.dtype)  # no promotion to int64, as numpy

    @staticmethod
    def diagonal(x: Any, groups: tuple[tuple[int, ...], ...]) -> Any:
        """Repeated ``torch.diagonal`` (views, differentiable, batchable), then a permute."""
        pairs, order = _diagonal_moves(x.dim(), groups)
        for p, q in pairs:
            x = x.diagonal(0, p, q)
        return x if order is None else x.permute(order)

    @staticmethod
    def zeros(shape: tuple[int, ...], like: Any) -> Any:
        return torch.zeros(shape, dtype=like.dtype, device=like.device)

    @staticmethod
    def asarray(x: Any) -> Any:
        return torch.as_tensor(x)

    @staticmethod
    def constant(x: Any, like: Any) -> Any:
        return torch.as_tensor(x, dtype=like.dtype, device=like.device)

    @staticmethod
    def pad(x: Any, widths: dict[int, tuple[int, int]]) -> Any:
        flat = [0, 0] * (x.dim() - min(widths))
        for a, (lo, hi) in widths.items():
            k = 2 * (x.dim() - 1 - a)
            flat[k:k + 2] = [lo, hi]
        return torch.nn.functional.pad(x, flat)

    @staticmethod
    def take(x: Any, index: Any, axis: int) -> Any:
        index = torch.as_tensor(index, device=x.device)
        flat = x.index_select(axis, index.reshape(-1))
        return flat.reshape(x.shape[:axis] + index.shape + x.shape[axis + 1:])

    @staticmethod
    def conv(x: Any, w: Any, pads: tuple[tuple[int, int], ...], stride: tuple[int, ...],
             dilation: tuple[int, ...], groups: int, transposed: bool = False,
             extra: tuple[int, ...] = ()) -> Any:
        """``conv{1,2,3}d`` of ``x`` ``(N, G*C, *spatial)`` with ``w`` ``(G*K, C, *taps)``
        (unequal ``pads`` are applied first, negative ones crop); transposed:
        ``conv_transpose{1,2,3}d`` with ``w`` ``(G*C, K, *taps)`` and output padding
        ``extra``."""
        functional = torch.nn.functional
        nd = len(stride)
        fn: Any
        args: tuple[Any, ...]
        if transposed:
            fn = (functional.conv_transpose1d, functional.conv_transpose2d,
                  functional.conv_transpose3d)[nd - 1]
            args = (stride, tuple(lo for lo, _ in pads), extra, groups, dilation)
        else:
            x, padding = _padded(x, pads, tuple(w.shape[2:]), stride, dilation)
            fn = (functional.conv1d, functional.conv2d, functional.conv3d)[nd - 1]
            args = (stride, padding, dilation, groups)
        if x.is_floating_point():
            return fn(x, w, None, *args)
        # No integer convolution on CPU: float64 is exact for these sums (< 2**53).
        return fn(x.double(), w.double(), None, *args).round().to(x.dtype)

    def takes_conv_weight(self, x_shape: tuple[int, ...], g_shape: tuple[int, ...],
                          stride: tuple[int, ...], groups: int) -> bool:
        """torch's weight-gradient kernel, but not for groups of at most 4 input
        channels feeding 8 or more output channels each at stride 1: there the
        grouped kernel measured 1.4-5.5x slower than the plan's window view and
        batched product (a first convolution's per-example gradients, 3 channels per
        example and group: 2.7 ms against 0.9 ms on 32 CIFAR images, 2 threads). A
        depthwise convolution (one output channel per group) keeps the kernel (0.5 ms
        against 8 ms), and so does a stride of 2 (within 20% either way)."""
        c_in, c_out = x_shape[1] // groups, g_shape[1] // groups
        return not (groups > 1 and c_in <= 4 and c_out >= 8 and set(stride) == {1})

    @staticmethod
    def conv_weight(x: Any, g: Any, kernel: tuple[int, ...], pads: tuple[tuple[int, int], ...],
                    stride: tuple[int, ...], dilation: tuple[int, ...], groups: int) -> Any:
        """The weight gradient of ``conv{1,2,3}d``: ``x`` ``(N, G*C, *spatial)`` against
        the output gradient ``g`` ``(N, G*K, *positions)``, giving ``(G*K, C, *taps)``
        (``kernel``), summed over ``N`` (unequal ``pads`` are applied first)."""
        x, padding = _padded(x, pads, kernel[2:], stride, dilation)
        dtype = x.dtype
        exact = x.is_floating_point()
        if not exact:  # no integer convolution on CPU: float64 is exact here (< 2**53)
            x, g = x.double(), g.double()
        # The weight is only read for its shape, but an expanded (strided) stand-in
        # sends oneDNN to a slower path: an uninitialized one costs less.
        shape = x.new_empty(kernel)
        _, w, _ = torch.ops.aten.convolution_backward(
            g, x, shape, None, list(stride), list(padding), list(dilation), False,
            [0] * len(pads), groups, [False, True, False])
        return w if exact else w.round().to(dtype)

    @staticmethod
    def window(x: Any, axis: int, sizes: tuple[int, int], steps: tuple[int, int],
               start: int) -> Any:
        """Sliding windows by ``Tensor.unfold`` (a differentiable view)."""
        span = steps[0] * (sizes[0] - 1) + 1
        w = x.narrow(axis, start, x.shape[axis] - start).unfold(axis, span, steps[1])
        w = w.narrow(axis, 0, sizes[1])[..., ::steps[0]]
        return w.movedim(-1, axis)


def _padded(x: Any, pads: tuple[tuple[int, int], ...], taps: tuple[int, ...],
            stride: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[Any, tuple[int, ...]]:
    """``x`` and the symmetric padding a convolution call takes: unequal (or negative,
    cropping) ``pads`` are applied to ``x`` first, leaving none; but a high side padded
    less than the low one is padded as much where the stride leaves the extra unread
    (a strided convolution's usual case: no copy of ``x``, and torch's fastest kernel)."""
    def symmetric(k: int, lo: int, hi: int) -> bool:
        if lo == hi >= 0:
            return True
        span, size = dilation[k] * (taps[k] - 1) + 1, x.shape[2 + k]
        return lo > hi >= 0 and ((size + lo + hi - span) // stride[k]
                                 == (size + 2 * lo - span) // stride[k])

    if all(symmetric(k, lo, hi) for k, (lo, hi) in enumerate(pads)):
        return x, tuple(lo for lo, _ in pads)
    widths = [p for lo, hi in reversed(pads) for p in (lo, hi)]
    return torch.nn.functional.pad(x, widths), (0,) * len(pads)


@memoize("torch diagonals", 1024)
def _diagonal_moves(ndim: int, groups: tuple[tuple[int, ...], ...]
                    ) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...] | None]:
    """The ``torch.diagonal`` axis pairs that merge each group, and the final permutation.

    Each ``diagonal(0, p, q)`` drops axes ``p`` and ``q`` and appends their diagonal.
    """
    labels = [0] * ndim
    for k, group in enumerate(groups):
        for a in group:
            labels[a] = k
    pairs = []
    for k in range(len(groups)):
        while labels.count(k) > 1:
            p = labels.index(k)
            q = labels.index(k, p + 1)
            pairs.append((p, q))
            labels = [lab for i, lab in enumerate(labels) if i not in (p, q)] + [k]
    order = tuple(labels.index(k) for k in range(len(groups)))
    return tuple(pairs), (None if order == tuple(range(len(order))) else order)


def _castable(src: Any, dst: Any, casting: str) -> bool:
    """Whether torch dtype ``src`` casts to ``dst`` under numpy's ``casting`` rule, read
    with torch's promotion (``"safe"``: promoting ``src`` with ``dst`` gives ``dst``)."""
    if casting == "unsafe" or src == dst:
        return True
    if casting in ("no", "equiv"):
        return False
    if casting == "safe":
        return torch.promote_types(src, dst) == dst
    return torch.can_cast(src, dst)  # "same_kind": no float to int, no complex to real


def _torch_dtype(dtype: Any) -> Any:
    import numpy as np

    try:
        return getattr(torch, np.dtype(dtype).name)
    except (TypeError, AttributeError):
        raise OperandTypeError(f"dtype {dtype!r} has no torch equivalent") from None


def _result_type(tensors: Sequence[Any], items: Sequence[Any]) -> Any:
    """The dtype torch's own promotion gives these operands.

    As in torch's elementwise ops, a dtype's rank counts within a category first:
    dimensioned tensors, then 0-d tensors, then Python scalars (weakest).
    """
    if not tensors:
        return torch.get_default_dtype()
    common: tuple[Any, int] | None = None
    for t, x in zip(tensors, items, strict=True):
        cat = 0 if isinstance(x, (bool, int, float, complex)) else 1 if t.dim() == 0 else 2
        here = (t.dtype, cat)
        if common is None:
            common = here
        else:
            dt = torch.result_type(_stand_in(*common), _stand_in(*here))
            common = (dt, max(common[1], cat))
    assert common is not None
    return common[0]


def _stand_in(dtype: Any, category: int) -> Any:
    """A value of ``dtype`` in a promotion category (see :func:`_result_type`)."""
    if category == 2:
        return torch.empty(1, dtype=dtype)
    if category == 1:
        return torch.empty((), dtype=dtype)
    if dtype.is_complex:
        return 1j
    if dtype.is_floating_point:
        return 1.0
    return True if dtype == torch.bool else 1
