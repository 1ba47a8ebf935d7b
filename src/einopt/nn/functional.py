"""Convolutions as einsums over index patterns (torch tensors in, torch tensors out).

Each functional writes the layer as one einsum over the input, the kernel and one
:func:`~einopt.conv_pattern` per spatial dimension, and lets the planner evaluate it:
a windowed view and the library's native convolution where the step is one, a strided
view and a matrix product otherwise. Arguments and results match
``torch.nn.functional``'s functions of the same names.
"""

from __future__ import annotations

import math
from typing import Any

from ..api import einsum
from ..errors import ShapeError
from ..parse import sublist_args
from ..structured import conv_pattern

__all__ = ["conv_einsum", "conv_transpose_einsum", "conv1d", "conv2d", "conv3d",
           "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "unfold", "conv_nd",
           "conv_transpose_nd"]

# Labels of the sublist form: batch, group, in-channel, out-channel, then per spatial
# dimension t its input position, tap and output position.
BATCH, _G, _C, _K = "batch", "group", "cin", "cout"


def input_label(t: int) -> str:
    return f"in{t + 1}"


def tap_label(t: int) -> str:
    return f"tap{t + 1}"


def output_label(t: int) -> str:
    return f"out{t + 1}"


def as_tuple(value: Any, nd: int, name: str) -> tuple[Any, ...]:
    if isinstance(value, (tuple, list)):
        if len(value) != nd:
            raise ShapeError(f"{name} has {len(value)} entries for {nd} spatial dimensions")
        return tuple(value)
    return (value,) * nd


def _check(x: Any, w: Any, nd: int, groups: int, transposed: bool) -> None:
    if x.dim() != nd + 2:
        raise ShapeError(f"input must have {nd + 2} dimensions (N, C, *spatial), "
                         f"got shape {tuple(x.shape)}")
    if w.dim() != nd + 2:
        raise ShapeError(f"weight must have {nd + 2} dimensions, got shape {tuple(w.shape)}")
    cin = w.shape[0] if transposed else w.shape[1] * groups
    if x.shape[1] != cin or (transposed and cin % groups):
        raise ShapeError(f"input has {x.shape[1]} channels but weight {tuple(w.shape)} with "
                         f"groups={groups} expects {cin}")
    if not transposed and w.shape[0] % groups:
        raise ShapeError(f"weight's {w.shape[0]} output channels do not split into "
                         f"groups={groups}")


def conv_einsum(x: Any, weight: Any, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                groups: int = 1) -> tuple[list[Any], list[tuple[str, ...]], tuple[str, ...]]:
    """The einsum of an N-d convolution: ``(operands, terms, output)`` with the input
    ``(N, G, C/G, *S)`` first, the kernel ``(G, K/G, C/G, *taps)`` second, then one
    pattern per spatial dimension; the output is ``(N, G, K/G, *out)``."""
    nd = x.dim() - 2
    _check(x, weight, nd, groups, transposed=False)
    strides = as_tuple(stride, nd, "stride")
    dilations = as_tuple(dilation, nd, "dilation")
    pads = padding if isinstance(padding, str) else as_tuple(padding, nd, "padding")
    n, c = x.shape[:2]
    k = weight.shape[0]
    operands: list[Any] = [x.reshape(n, groups, c // groups, *x.shape[2:]),
                           weight.reshape(groups, k // groups, *weight.shape[1:])]
    terms = [(BATCH, _G, _C, *map(input_label, range(nd))),
             (_G, _K, _C, *map(tap_label, range(nd)))]
    for t in range(nd):
        p = pads if isinstance(pads, str) else pads[t]
        operands.append(conv_pattern(x.shape[2 + t], weight.shape[2 + t], strides[t], p,
                                     dilations[t]))
        terms.append((tap_label(t), output_label(t), input_label(t)))
    return operands, terms, (BATCH, _G, _K, *map(output_label, range(nd)))


def conv_nd(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
            dilation: Any = 1, groups: int = 1, optimize: Any = "auto") -> Any:
    """N-d convolution (cross-correlation, as torch) of ``x`` ``(N, C, *S)`` with
    ``weight`` ``(K, C / groups, *taps)``, as one einsum with index patterns."""
    nd = x.dim() - 2
    y = einsum(*sublist_args(*conv_einsum(x, weight, stride, padding, dilation, groups)),
               optimize=optimize)
    y = y.reshape(x.shape[0], weight.shape[0], *y.shape[3:])
    return y if bias is None else y + bias.reshape(1, -1, *([1] * nd))


def conv_transpose_einsum(x: Any, weight: Any, stride: Any = 1, padding: Any = 0,
                          output_padding: Any = 0, groups: int = 1, dilation: Any = 1
                          ) -> tuple[list[Any], list[tuple[str, ...]], tuple[str, ...]]:
    """The einsum of an N-d transposed convolution, as :func:`conv_einsum` gives a
    convolution's: the input ``(N, G, C/G, *S)`` first, the kernel ``(G, C/G, K/G,
    *taps)`` second, then one pattern per spatial dimension (the convolution's pattern
    with the output position summed and the input position kept); the output is
    ``(N, G, K/G, *out)``."""
    nd = x.dim() - 2
    _check(x, weight, nd, groups, transposed=True)
    strides = as_tuple(stride, nd, "stride")
    dilations = as_tuple(dilation, nd, "dilation")
    pads = as_tuple(padding, nd, "padding")
    extra = as_tuple(output_padding, nd, "output_padding")
    n, c = x.shape[:2]
    kg = weight.shape[1]
    operands: list[Any] = [x.reshape(n, groups, c // groups, *x.shape[2:]),
                           weight.reshape(groups, c // groups, kg, *weight.shape[2:])]
    terms = [(BATCH, _G, _C, *map(output_label, range(nd))),
             (_G, _C, _K, *map(tap_label, range(nd)))]
    for t in range(nd):
        o, taps = x.shape[2 + t], weight.shape[2 + t]
        size = (o - 1) * strides[t] - 2 * pads[t] + dilations[t] * (taps - 1) + extra[t] + 1
        if size < 1:
            raise ShapeError(f"transposed convolution output size {size} < 1 in spatial dim {t}")
        operands.append(conv_pattern(size, taps, strides[t], pads[t], dilations[t],
                                     output_size=o))
        terms.append((tap_label(t), output_label(t), input_label(t)))
    return operands, terms, (BATCH, _G, _K, *map(input_label, range(nd)))


def conv_transpose_nd(x: Any, weight: Any, bias: Any = None, stride: Any = 1,
                      padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                      dilation: Any = 1, optimize: Any = "auto") -> Any:
    """N-d transposed convolution of ``x`` ``(N, C, *S)`` with ``weight``
    ``(C, K / groups, *taps)``: the same pattern as :func:`conv_nd`, with the output
    position summed and the input position kept."""
    nd = x.dim() - 2
    operands, terms, output = conv_transpose_einsum(x, weight, stride, padding,
                                                    output_padding, groups, dilation)
    y = einsum(*sublist_args(operands, terms, output), optimize=optimize)
    y = y.reshape(x.shape[0], groups * weight.shape[1], *y.shape[3:])
    return y if bias is None else y + bias.reshape(1, -1, *([1] * nd))


def conv1d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Any:
    """As ``torch.nn.functional.conv1d``, planned as an einsum."""
    return conv_nd(input, weight, bias, stride, padding, dilation, groups)


def conv2d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Any:
    """As ``torch.nn.functional.conv2d``, planned as an einsum."""
    return conv_nd(input, weight, bias, stride, padding, dilation, groups)


def conv3d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Any:
    """As ``torch.nn.functional.conv3d``, planned as an einsum."""
    return conv_nd(input, weight, bias, stride, padding, dilation, groups)


def conv_transpose1d(input: Any, weight: Any, bias: Any = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                     dilation: Any = 1) -> Any:
    """As ``torch.nn.functional.conv_transpose1d``, planned as an einsum."""
    return conv_transpose_nd(input, weight, bias, stride, padding, output_padding, groups,
                             dilation)


def conv_transpose2d(input: Any, weight: Any, bias: Any = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                     dilation: Any = 1) -> Any:
    """As ``torch.nn.functional.conv_transpose2d``, planned as an einsum."""
    return conv_transpose_nd(input, weight, bias, stride, padding, output_padding, groups,
                             dilation)


def conv_transpose3d(input: Any, weight: Any, bias: Any = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                     dilation: Any = 1) -> Any:
    """As ``torch.nn.functional.conv_transpose3d``, planned as an einsum."""
    return conv_transpose_nd(input, weight, bias, stride, padding, output_padding, groups,
                             dilation)


def unfold(input: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
           stride: Any = 1) -> Any:
    """As ``torch.nn.functional.unfold``: ``(N, C, *S)`` to ``(N, C * prod(taps), L)``,
    the windowed view of the input (the einsum of the input with its patterns)."""
    nd = input.dim() - 2
    sizes = as_tuple(kernel_size, nd, "kernel_size")
    dil, pad, st = (as_tuple(v, nd, name) for v, name in
                    ((dilation, "dilation"), (padding, "padding"), (stride, "stride")))
    args: list[Any] = [input, [BATCH, _C, *map(input_label, range(nd))]]
    for t in range(nd):
        args += [conv_pattern(input.shape[2 + t], sizes[t], st[t], pad[t], dil[t]),
                 [tap_label(t), output_label(t), input_label(t)]]
    y = einsum(*args, [BATCH, _C, *map(tap_label, range(nd)), *map(output_label, range(nd))])
    return y.reshape(y.shape[0], -1, math.prod(y.shape[2 + nd:]))
