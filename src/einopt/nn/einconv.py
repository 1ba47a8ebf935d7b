"""Pricing the decompositions of a convolution kernel, and choosing one for a budget.

For given channel counts, kernel size, bond sizes and input size, every decomposition
gets its parameter count and the flops of the plan einopt makes for its forward einsum
(input, one pattern per spatial dimension, factors); its training flops add the
backward pass autograd runs through those steps when the input and every factor take
gradients (:func:`training_flops`). ``measure=True`` also times the layer's forward and
forward + backward on torch. :class:`Pricing` keeps the table, its Pareto front and
:meth:`Pricing.pick`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..api import plan
from ..cost import count_text
from ..errors import OptionError
from ..plan import Plan, StepKind
from .decompositions import Decomposition, Listing
from .functional import as_tuple
from .modules import factored_operands

__all__ = ["Priced", "Pricing", "price", "forward_operands", "training_flops"]

MINIMIZE = ("flops", "train_flops", "parameters")


@dataclass(frozen=True)
class Priced:
    """One decomposition's cost: ``parameters`` (factor entries), ``flops`` (forward
    plan), ``train_flops`` (forward plus the gradients of input and factors) and, when
    measured, ``seconds`` and ``train_seconds`` (median of the repeats, torch, CPU)."""

    decomposition: Decomposition
    parameters: int
    flops: int
    train_flops: int
    inner_size: int | dict[str, int] = 0
    seconds: float | None = None
    train_seconds: float | None = None

    def __str__(self) -> str:
        timed = "" if self.seconds is None else \
            f", {self.seconds * 1e3:.3g} ms / {self.train_seconds * 1e3:.3g} ms"  # type: ignore[operator]
        bond = f" [bond {self.inner_size}]" if self.decomposition.inner else ""
        return (f"{self.decomposition}{bond}: {self.parameters} parameters, "
                f"{count_text(self.flops)} / {count_text(self.train_flops)} flops{timed}")


def _key(minimize: str) -> str:
    if minimize not in MINIMIZE:
        raise OptionError(f"minimize must be one of {', '.join(MINIMIZE)}, got {minimize!r}")
    return minimize


class Pricing(Listing[Priced]):
    """The priced decompositions, in the order given."""

    def front(self, flops: str = "flops") -> list[Priced]:
        """The Pareto front of parameters against ``flops`` (``"flops"`` or
        ``"train_flops"``): every entry no other beats on both, by parameters."""
        key = _key(flops)
        best: list[Priced] = []
        for e in sorted(self._entries, key=lambda e: (e.parameters, getattr(e, key))):
            if not best or getattr(e, key) < getattr(best[-1], key):
                best.append(e)
        return best

    def pick(self, budget: float, minimize: str = "flops") -> Priced:
        """The entry of least ``minimize`` whose other cost keeps to ``budget``: with
        ``minimize="flops"`` (or ``"train_flops"``) the budget is in parameters; with
        ``minimize="parameters"`` it is in forward flops. Ties go to the other cost."""
        key = _key(minimize)
        other = "flops" if key == "parameters" else "parameters"
        within = [e for e in self._entries if getattr(e, other) <= budget]
        if not within:
            least = min((getattr(e, other) for e in self._entries), default=None)
            raise OptionError(f"no decomposition has {other} <= {budget:g} (the least is "
                              f"{least})")
        return min(within, key=lambda e: (getattr(e, key), getattr(e, other)))

    def table(self) -> str:
        """One line per entry, front entries starred."""
        front = {id(e) for e in self.front()}
        return "\n".join(("* " if id(e) in front else "  ") + str(e) for e in self._entries)


def forward_operands(d: Decomposition, in_channels: int, out_channels: int,
                     kernel_size: Any, inner_size: int | dict[str, int],
                     input_size: Any, batch: int = 1, stride: Any = 1, padding: Any = "same",
                     dilation: Any = 1) -> list[Any]:
    """Sublist-form operands (shapes and patterns) of ``d``'s forward einsum."""
    nd = d.spatial_dims
    sizes = d.sizes(in_channels, out_channels, kernel_size, inner_size)
    taps = tuple(sizes[t] for t in d.kernel_labels[2:])
    x_shape = (batch, in_channels, *as_tuple(input_size, nd, "input_size"))
    factors = [tuple(sizes[s] for s in f) for f in d.factors]
    return factored_operands(x_shape, x_shape, factors, d.factors, d.kernel_labels, taps,
                             as_tuple(stride, nd, "stride"),
                             padding if isinstance(padding, str) else
                             as_tuple(padding, nd, "padding"),
                             as_tuple(dilation, nd, "dilation"))


def training_flops(p: Plan, with_gradient: Iterable[int]) -> int:
    """Flops of ``p``'s forward pass and of autograd's backward through its steps, when
    the call operands ``with_gradient`` need gradients: a merge of ``A`` and ``B`` costs
    its flops again for each of ``A``, ``B`` that depends on such an operand (the
    cotangent times the other input), the rule reverse mode follows."""
    wanted = set(with_gradient)
    rw = p.structure
    if rw is None:
        regs = [k in wanted for k in range(p.network.num_tensors)]
    else:
        regs = [src.const is None and src.operand in wanted for src in rw.sources]
    total = p.flops
    for step in p.steps:
        if step.kind is StepKind.PREP:
            continue
        needs = [regs[a] for a in step.args]
        total += step.flops * sum(needs)
        regs.append(any(needs))
    return total


def _measure(d: Decomposition, in_channels: int, out_channels: int, kernel_size: Any,
             inner_size: Any, x_shape: tuple[int, ...], repeats: int, **conv: Any
             ) -> tuple[float, float]:
    import torch

    layer = d.layer(in_channels, out_channels, kernel_size, inner_size, bias=False, **conv)
    x = torch.randn(x_shape, requires_grad=True)
    forward, train = [], []
    for _ in range(repeats + 1):  # the first call plans and compiles
        t0 = time.perf_counter()
        with torch.no_grad():
            layer(x)
        t1 = time.perf_counter()
        layer(x).sum().backward()
        t2 = time.perf_counter()
        forward.append(t1 - t0)
        train.append(t2 - t1)
    return statistics.median(forward[1:]), statistics.median(train[1:])


def price(decompositions: Iterable[Decomposition], in_channels: int, out_channels: int,
          kernel_size: Any, inner_size: int | dict[str, int] | None = None,
          input_size: Any = 32, batch: int = 1, stride: Any = 1, padding: Any = "same",
          dilation: Any = 1, budget: int | None = None, measure: bool = False,
          repeats: int = 5) -> Pricing:
    """Parameters, planned forward and training flops (and with ``measure``, torch
    times) of every decomposition for these sizes; ``padding`` as ``torch.nn.Conv``'s
    (default ``"same"``).

    Bond sizes are ``inner_size`` (one size for every inner index, or one per label);
    with ``budget`` instead, each entry gets the largest bond size whose parameters
    keep to it (entries that cannot are left out): an equal-budget comparison.
    """
    if in_channels < 1 or out_channels < 1 or batch < 1:
        raise OptionError(f"channel counts and batch must be positive, got in_channels="
                          f"{in_channels}, out_channels={out_channels}, batch={batch}")
    if (inner_size is None) == (budget is None):
        raise OptionError("give the bond sizes (inner_size) or a parameter budget, not "
                          "both" if budget is not None else "give inner_size or budget")
    entries = []
    for d in decompositions:
        if budget is not None:
            fit = d.inner_size_for(budget, in_channels, out_channels, kernel_size)
            if fit is None:
                continue
            inner_size = fit
        assert inner_size is not None
        ops = forward_operands(d, in_channels, out_channels, kernel_size, inner_size,
                               input_size, batch, stride, padding, dilation)
        forward = plan(*ops)
        # the input and every factor take gradients; the patterns are constants
        nd = d.spatial_dims
        train = training_flops(forward, [0, *range(1 + nd, 1 + nd + len(d.factors))])
        params = d.num_parameters(in_channels, out_channels, kernel_size, inner_size)
        timed: tuple[float | None, float | None] = (None, None)
        if measure:
            timed = _measure(d, in_channels, out_channels, kernel_size, inner_size, ops[0],
                             repeats, stride=stride, padding=padding, dilation=dilation)
        entries.append(Priced(d, params, forward.flops, train, inner_size, *timed))
    return Pricing(entries)

