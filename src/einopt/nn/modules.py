"""torch modules over the einsum convolutions, and factored convolutions (Einconv).

``Conv{1,2,3}d`` and ``ConvTranspose{1,2,3}d`` are torch's layers (same parameters,
initialisation and ``state_dict``) whose forward pass is the einsum of
:mod:`einopt.nn.functional`. ``FactoredConv{1,2,3}d`` is a convolution whose kernel is
a tensor network: its forward pass is one einsum over the input, the index patterns
and the factors, so the planner decides whether to build the kernel or to run the
factors one after another on the input (depthwise then pointwise, say).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..api import Plan, einsum, plan
from ..cost import count_text
from ..errors import EinsumError, ShapeError
from ..parse import parse
from ..structured import conv_pattern
from . import functional

__all__ = ["EinsumLayer", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
           "ConvTranspose3d", "FactoredConv1d", "FactoredConv2d", "FactoredConv3d",
           "factored_spec", "factored_operands", "PRESETS"]


class EinsumLayer(torch.nn.Module):
    """``y = einsum(equation, x, weight) (+ bias over the output's last index)``: a layer
    written as an einsum, which :func:`einopt.torch.track` follows.

    Args:
        equation: two operands, the input first (its first index the batch, kept in the
            output) and the weight, e.g. ``"nti,oi->nto"``.
        weight_shape: the weight's shape.
        bias: add a bias over the output's last index.

    The weight starts from ``N(0, 1 / fan_in)``, ``fan_in`` being the product of the sizes
    of the weight's indices that it shares with the input.
    """

    def __init__(self, equation: str, weight_shape: Sequence[int], bias: bool = False,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        eq = parse(equation)
        if eq.nops != 2:
            raise EinsumError(f"an einsum layer takes the input and one weight: {equation!r}")
        self.equation = equation
        shared = [d for lab, d in zip(eq.inputs[1], weight_shape, strict=True)
                  if lab in eq.inputs[0]]
        fan_in = max(1, math.prod(shared))
        self.weight = torch.nn.Parameter(
            torch.randn(tuple(weight_shape), device=device, dtype=dtype) / math.sqrt(fan_in))
        last = eq.output[-1] if eq.output else None
        size = dict(zip(eq.inputs[1], weight_shape, strict=True)).get(last)
        if bias and size is None:
            raise EinsumError("a bias needs the output's last index to be the weight's")
        self.bias = torch.nn.Parameter(torch.zeros(int(size or 0), device=device, dtype=dtype)) \
            if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = einsum(self.equation, x, self.weight)
        return y if self.bias is None else y + self.bias

    def einsum_layer(self, x: torch.Tensor) -> Any:
        """The layer's einsum for :func:`einopt.torch.track`."""
        from ..quantities import LayerEinsum

        return LayerEinsum.of(self.equation), [x, self.weight], tuple(self.weight.shape)


def _zeros_only(mode: str) -> None:
    if mode != "zeros":
        raise EinsumError(f"padding_mode={mode!r}: only 'zeros' is an index pattern")


def _conv_forward(layer: Any, input: torch.Tensor) -> torch.Tensor:
    _zeros_only(layer.padding_mode)
    return functional.conv_nd(input, layer.weight, layer.bias, layer.stride, layer.padding,
                              layer.dilation, layer.groups)


class Conv1d(torch.nn.Conv1d):
    """``torch.nn.Conv1d`` evaluated as an einsum with index patterns."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return _conv_forward(self, input)


class Conv2d(torch.nn.Conv2d):
    """``torch.nn.Conv2d`` evaluated as an einsum with index patterns."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return _conv_forward(self, input)


class Conv3d(torch.nn.Conv3d):
    """``torch.nn.Conv3d`` evaluated as an einsum with index patterns."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return _conv_forward(self, input)


def _transposed_forward(layer: Any, input: torch.Tensor, output_size: Any) -> torch.Tensor:
    _zeros_only(layer.padding_mode)
    nd = input.dim() - 2
    extra = layer._output_padding(input, output_size, layer.stride, layer.padding,
                                  layer.kernel_size, nd, layer.dilation)
    return functional.conv_transpose_nd(input, layer.weight, layer.bias, layer.stride,
                                        layer.padding, extra, layer.groups, layer.dilation)


class ConvTranspose1d(torch.nn.ConvTranspose1d):
    """``torch.nn.ConvTranspose1d`` evaluated as an einsum with index patterns."""

    def forward(self, input: torch.Tensor, output_size: Any = None) -> torch.Tensor:
        return _transposed_forward(self, input, output_size)


class ConvTranspose2d(torch.nn.ConvTranspose2d):
    """``torch.nn.ConvTranspose2d`` evaluated as an einsum with index patterns."""

    def forward(self, input: torch.Tensor, output_size: Any = None) -> torch.Tensor:
        return _transposed_forward(self, input, output_size)


class ConvTranspose3d(torch.nn.ConvTranspose3d):
    """``torch.nn.ConvTranspose3d`` evaluated as an einsum with index patterns."""

    def forward(self, input: torch.Tensor, output_size: Any = None) -> torch.Tensor:
        return _transposed_forward(self, input, output_size)


#: Kernel letters: ``o`` output channel, ``c`` input channel, ``x``/``y``/``z`` the taps
#: of spatial dims 1-3; every other letter is an internal bond of the network.
_TAPS = "xyz"
PRESETS = ("standard", "1x1", "depthwise_separable", "bottleneck", "cp", "tucker",
           "tensor_train")


def factored_spec(preset: str, nd: int, rank: int | Sequence[int] | None = None
                  ) -> tuple[str, dict[str, int]]:
    """``(spec, bond sizes)`` of a preset kernel network over ``nd`` spatial dims.

    The spec is an einsum from the factors to the kernel ``o c x[y[z]]``:

    - ``standard``: ``ocxy->ocxy`` (one dense kernel);
    - ``1x1``: ``oc->oc`` (pointwise; the layer's taps are 1);
    - ``depthwise_separable``: ``cxy,oc->ocxy`` (depthwise, then pointwise);
    - ``bottleneck``: ``ac,baxy,ob->ocxy`` (1x1 reduce to ``a``, k x k to ``b``, 1x1
      expand), ranks ``(a, b)``;
    - ``cp``: ``or,cr,xr,yr->ocxy`` (rank ``r``);
    - ``tucker``: ``oa,cb,abxy->ocxy`` (Tucker-2 over the channels), ranks ``(a, b)``;
    - ``tensor_train``: ``oa,acb,bxd,dy->ocxy`` (a chain over ``o, c, x, y``), ranks one
      per bond.
    """
    taps = _TAPS[:nd]
    out = "oc" + taps
    if preset == "standard":
        return f"{out}->{out}", {}
    if preset == "1x1":
        return "oc->oc", {}
    if preset == "depthwise_separable":
        return f"c{taps},oc->{out}", {}
    ranks = [rank] * 2 if isinstance(rank, int) else list(rank or [])
    if preset == "bottleneck":
        a, b = _ranks(preset, ranks, 2)
        return f"ac,ba{taps},ob->{out}", {"a": a, "b": b}
    if preset == "cp":
        (r,) = _ranks(preset, ranks[:1], 1)
        return ",".join(["or", "cr"] + [f"{t}r" for t in taps]) + f"->{out}", {"r": r}
    if preset == "tucker":
        a, b = _ranks(preset, ranks, 2)
        return f"oa,cb,ab{taps}->{out}", {"a": a, "b": b}
    if preset == "tensor_train":
        bonds = "abdefg"[:nd + 1]
        if isinstance(rank, int):
            ranks = [rank] * (nd + 1)
        sizes = _ranks(preset, ranks, nd + 1)
        modes = ["c", *taps]
        terms = [f"o{bonds[0]}"]
        for k, mode in enumerate(modes):
            terms.append(f"{bonds[k]}{mode}{bonds[k + 1]}" if k + 1 < len(modes)
                         else f"{bonds[k]}{mode}")
        return ",".join(terms) + f"->{out}", dict(zip(bonds, sizes, strict=True))
    raise EinsumError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")


def _ranks(preset: str, ranks: Sequence[int], n: int) -> list[int]:
    if len(ranks) != n or any(not isinstance(r, int) or r < 1 for r in ranks):
        raise EinsumError(f"preset {preset!r} needs {n} positive rank(s), got {list(ranks)}")
    return list(ranks)


def factored_operands(x: Any, x_shape: Sequence[int], factors: Sequence[Any],
                      terms: Sequence[Sequence[str]], kernel_labels: Sequence[str],
                      kernel_size: Sequence[int], stride: Sequence[int], padding: Any,
                      dilation: Sequence[int]) -> list[Any]:
    """Sublist-form operands of a factored convolution's forward einsum: the input ``x``
    (of shape ``x_shape``; an array or its shape), one index pattern per spatial
    dimension, then the ``factors`` (arrays or shapes) with their ``terms``' labels."""
    nd = len(kernel_size)
    # Labels: the spec's letters, and the functionals' names for the input's indices.
    inputs = [functional.input_label(t) for t in range(nd)]
    outs = [functional.output_label(t) for t in range(nd)]
    ops: list[Any] = [x, [functional.BATCH, "c", *inputs]]
    for t in range(nd):
        p = padding if isinstance(padding, str) else padding[t]
        pattern = conv_pattern(x_shape[2 + t], kernel_size[t], stride[t], p, dilation[t])
        # a 1x1 kernel has no tap label: the pattern's single tap gets its own
        tap = _TAPS[t] if _TAPS[t] in kernel_labels else functional.tap_label(t)
        ops += [pattern, [tap, outs[t], inputs[t]]]
    for f, term in zip(factors, terms, strict=True):
        ops += [f, list(term)]
    ops.append([functional.BATCH, "o", *outs])
    return ops


class _FactoredConvNd(torch.nn.Module):
    """A convolution whose kernel is a tensor network over factor tensors.

    Args:
        in_channels, out_channels: channel counts (no groups: a network that shares
            nothing across channels is the ``depthwise_separable`` preset's first factor).
        kernel_size, stride, padding, dilation: as ``torch.nn.Conv{d}d`` (zero padding;
            ``padding`` also ``'same'``/``'valid'``).
        preset: one of :data:`PRESETS` (see :func:`factored_spec`), or ``None`` with
            ``spec``.
        rank: the preset's rank(s).
        spec: a custom kernel network, an einsum from the factors to ``oc`` + taps
            (``x``, ``y``, ``z``); bond letters take sizes from ``bond_sizes``.
        bias: add a learnable bias.

    The forward pass is one einsum over the input, one index pattern per spatial
    dimension and the factors; :meth:`plan` shows what the planner made of it.
    Factors are initialised from a normal distribution so that each kernel entry has
    the variance of ``torch.nn.Conv{d}d``'s default (1 / (3 fan_in)).
    """

    nd = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any,
                 stride: Any = 1, padding: Any = 0, dilation: Any = 1, bias: bool = True,
                 preset: str | None = "standard", rank: int | Sequence[int] | None = None,
                 spec: str | None = None, bond_sizes: dict[str, int] | None = None,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        nd = self.nd
        if spec is None:
            if preset is None:
                raise EinsumError("give a preset or a spec")
            spec, bond_sizes = factored_spec(preset, nd, rank)
        self.spec, self.preset = spec, preset
        self.in_channels, self.out_channels = in_channels, out_channels
        pointwise = preset == "1x1" and spec == "oc->oc"
        self.kernel_size = (1,) * nd if pointwise else functional.as_tuple(kernel_size, nd,
                                                                          "kernel_size")
        self.stride = functional.as_tuple(stride, nd, "stride")
        self.dilation = functional.as_tuple(dilation, nd, "dilation")
        self.padding = padding if isinstance(padding, str) else functional.as_tuple(
            padding, nd, "padding")
        sizes = {"o": out_channels, "c": in_channels,
                 **dict(zip(_TAPS, self.kernel_size, strict=False)), **(bond_sizes or {})}
        eq = parse(spec)
        if set(eq.output) - set("oc" + _TAPS[:nd]) or "o" not in eq.output or \
                "c" not in eq.output:
            raise EinsumError(f"spec {spec!r} must produce the kernel 'oc' + taps "
                              f"{_TAPS[:nd]!r} (taps may be omitted for a 1x1 kernel)")
        shapes = []
        for k, term in enumerate(eq.inputs):
            missing = [lab for lab in term if lab not in sizes]
            if missing:
                raise ShapeError(f"factor {k} ({''.join(map(str, term))}) has bond "
                                 f"{missing[0]!r} with no size in bond_sizes")
            shapes.append(tuple(sizes[str(lab)] for lab in term))
        self.terms = tuple(tuple(str(lab) for lab in term) for term in eq.inputs)
        self.kernel_labels = tuple(str(lab) for lab in eq.output)
        internal = {lab for term in self.terms for lab in term} - set(self.kernel_labels)
        bonds = math.prod(sizes[lab] for lab in internal)
        fan_in = in_channels * math.prod(self.kernel_size)
        std = (1.0 / (3 * fan_in) / bonds) ** (0.5 / len(shapes))
        self.factors = torch.nn.ParameterList(
            torch.nn.Parameter(torch.randn(s, device=device, dtype=dtype) * std)
            for s in shapes)
        self.bias = (torch.nn.Parameter(torch.empty(out_channels, device=device, dtype=dtype)
                                        .uniform_(-fan_in ** -0.5, fan_in ** -0.5))
                     if bias else None)

    @property
    def num_parameters(self) -> int:
        """Learnable entries (factors and bias)."""
        return sum(p.numel() for p in self.parameters())

    def kernel(self) -> torch.Tensor:
        """The dense kernel ``(out, in, *taps)`` the factors make."""
        w = einsum(self.spec, *self.factors)
        return w.reshape(self.out_channels, self.in_channels, *self.kernel_size)

    def _operands(self, x: Any) -> list[Any]:
        """Sublist-form operands of the forward einsum: input, patterns, factors."""
        return factored_operands(x, tuple(x.shape), self.factors, self.terms,
                                 self.kernel_labels, self.kernel_size, self.stride,
                                 self.padding, self.dilation)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.dim() != self.nd + 2 or input.shape[1] != self.in_channels:
            raise ShapeError(f"input must be (N, {self.in_channels}, *{self.nd} spatial), "
                             f"got {tuple(input.shape)}")
        y = einsum(*self._operands(input))
        return y if self.bias is None else y + self.bias.reshape(1, -1, *([1] * self.nd))

    def plan(self, input_shape: Sequence[int]) -> Plan:
        """The plan of the forward einsum for inputs of ``input_shape``."""
        x = torch.empty(tuple(input_shape), device="meta")
        ops = self._operands(x)
        return plan(*[tuple(o.shape) if isinstance(o, torch.Tensor) else o for o in ops])

    def summary(self, input_shape: Sequence[int]) -> str:
        """Parameters, and planned flops against the dense layer's, for ``input_shape``."""
        p = self.plan(input_shape)
        y = p.output_shape
        dense = math.prod(y) * self.in_channels * math.prod(self.kernel_size)
        return (f"{type(self).__name__}({self.spec}): {self.num_parameters} parameters, "
                f"{count_text(p.flops)} flops planned for input {tuple(input_shape)} "
                f"(dense kernel: {dense:.3g}), path {p.path}")

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"spec={self.spec!r}, parameters={self.num_parameters}")


class FactoredConv1d(_FactoredConvNd):
    """1-d factored convolution; see :class:`_FactoredConvNd`."""

    nd = 1


class FactoredConv2d(_FactoredConvNd):
    """2-d factored convolution; see :class:`_FactoredConvNd`."""

    nd = 2


class FactoredConv3d(_FactoredConvNd):
    """3-d factored convolution; see :class:`_FactoredConvNd`."""

    nd = 3
