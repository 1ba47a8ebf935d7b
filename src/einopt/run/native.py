"""Stage 6b: plan steps that are a library's native convolution.

After the structured rewrite, a convolution is a pairwise step between a sliding-window
view of an input (a transposed one: a zero-stuffed view) and a kernel. When a step has
exactly that form -- every window's tap index contracted with the kernel, every output
position kept, the view's other indices batch (kept, view only), channels (contracted)
or groups (kept, in both) -- and the library has a convolution (torch, jax), the step
runs as that call on the unviewed input: no im2col buffer is written, and the
library's tuned kernel does the work. The step's flops are the same either way; the native call
writes less, so it is preferred.

The other pairwise step of a convolution layer, its weight gradient, has the taps
kept and the output positions contracted with the output gradient; it runs as the
library's convolution weight gradient, with indices both operands keep as groups (the
per-example gradients of a batch: one group per example).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..backends import Backend
from ..plan import Kernels, Plan, Step, StepKind, relayout
from ..structured.rewrite import Affine, Source

__all__ = ["ConvStep", "NativeProgram", "conv_steps", "native_program"]


@dataclass(frozen=True, slots=True)
class ConvStep:
    """One step as ``conv{d}d(x, w, stride, dilation, groups)`` with permutes/reshapes.

    Attributes:
        leaf: the register holding the windowed input (it receives the unviewed input).
        first: whether that register is the step's first argument.
        x_perm, x_shape: the input's axes to ``(batch, groups, channels, spatial)`` and
            the ``(N, G*C, *spatial)`` shape.
        w_perm, w_shape: the kernel's axes to ``(groups, out, channels, taps)`` and the
            ``(G*K, C, *taps)`` shape.
        pads: per spatial dim, zeros added ``(left, right)`` (negative crops).
        stride, dilation: per spatial dim.
        groups: ``G``.
        y_shape, y_perm: the result as ``(batch, groups, out, positions)`` and the
            permutation to the step's result order.
        natural: the index ids of that ``(batch, groups, out, positions)`` order.
        transposed: the view is zero-stuffed (``x[(i + p - d*k) / s]``): a transposed
            convolution, the kernel laid out ``(G*C, K, *taps)``.
        extra: transposed: the output padding per spatial dim.
        weight: the step is a weight gradient: ``w`` is the output gradient, laid out
            ``(N, G*K, *positions)``, and the result ``(G*K, C, *taps)`` has shape
            ``kernel``.
    """

    leaf: int
    first: bool
    x_perm: tuple[int, ...]
    x_shape: tuple[int, ...]
    w_perm: tuple[int, ...]
    w_shape: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    y_shape: tuple[int, ...]
    y_perm: tuple[int, ...]
    natural: tuple[int, ...] = ()
    transposed: bool = False
    extra: tuple[int, ...] = ()
    weight: bool = False
    kernel: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class NativeProgram:
    """A structured plan's kernels with its convolution steps native.

    Attributes:
        kernels: the plan's steps, re-laid out so that each convolution's result keeps
            the library's natural axis order (no permute after it).
        fns: per step position, the native kernel (its windowed leaf reads the input).
        leaves: registers that receive their input unviewed (their single-operand
            steps, size-1 squeezes only, are skipped).
    """

    kernels: Kernels
    fns: dict[int, Callable[[Any, Any], Any]]
    leaves: frozenset[int]


def _orders(plan: Plan, steps: tuple[Step, ...]) -> list[tuple[int, ...]]:
    orders = [tuple(raw) for raw in plan.network.raw]
    for s in steps:
        if s.kind is StepKind.PREP:
            orders[s.out] = s.indices
        else:
            orders.append(s.indices)
    return orders


def _kind(v: Any) -> bool | None:
    """False for a sliding window (a convolution's view), True for a zero-stuffed one (a
    transposed convolution's), None for anything else."""
    if not isinstance(v, Affine):
        return None
    if v.divisor == 1 and min(v.coef) > 0:
        return False
    if v.coef[1] == 1 and v.coef[0] < 0 and v.offset >= 0:
        return True
    return None


def _match(plan: Plan, step: Step, leaf: int, other: tuple[int, ...], first: bool,
           sources: Sequence[Source]) -> ConvStep | None:
    net = plan.network
    src = sources[leaf]
    views = src.views
    if src.const is not None or src.dense or not views or not 1 <= len(views) <= 3:
        return None
    kinds = {_kind(v) for v in views}
    if len(kinds) != 1 or None in kinds:
        return None
    transposed = bool(kinds.pop())
    result = set(step.indices)
    held = set(other)
    ids = list(net.raw[leaf])
    # Undo the views, last first: each pair of (tap, position) axes was one source axis.
    axes: list[Any] = list(ids)
    for t in range(len(views) - 1, -1, -1):
        v = views[t]
        tap, out = axes[v.axis], axes[v.axis + 1]
        if not (isinstance(tap, int) and isinstance(out, int)):
            return None
        axes[v.axis:v.axis + 2] = [("spatial", t, tap, out)]
    if len(set(ids)) != len(ids):
        return None
    _, _, tap0, out0 = next(item for item in axes if isinstance(item, tuple))
    if not transposed and tap0 in result and out0 in held:
        return _match_weight(plan, step, leaf, other, first, views, axes)
    return _match_forward(plan, step, leaf, other, first, views, axes, transposed)


def _split_axes(axes: list[Any], held: set[int], result: set[int], sizes: Sequence[int],
                weight: bool) -> tuple[list[tuple[int, int, int, int]], list[int], list[int],
                                       list[int]] | None:
    """The windowed input's axes as spatial ``(view, axis, tap, position)`` entries (in
    axis order) and batch, group and channel axes; None if the step is not that kind of
    convolution. A convolution sums the taps against the kernel and keeps the positions;
    its batch is the input's own kept indices, its groups kept and its channels summed
    indices of both. A weight gradient keeps the taps and sums the positions against the
    output gradient; its batch is summed and its groups kept indices of both, its
    channels the input's own kept indices."""
    spatial: list[tuple[int, int, int, int]] = []
    batch: list[int] = []
    groups: list[int] = []
    chans: list[int] = []
    for a, item in enumerate(axes):
        if isinstance(item, tuple):
            _, t, tap, out = item
            kept, summed = (tap, out) if weight else (out, tap)
            if kept not in result or kept in held or summed not in held or summed in result:
                return None
            spatial.append((t, a, tap, out))
        elif item in held:
            (groups if item in result else batch if weight else chans).append(a)
        elif item in result:
            (chans if weight else batch).append(a)
        elif sizes[item] == 1:
            batch.append(a)
        else:
            return None
    spatial.sort(key=lambda e: e[1])
    return spatial, batch, groups, chans


def _match_forward(plan: Plan, step: Step, leaf: int, other: tuple[int, ...], first: bool,
                   views: Sequence[Any], axes: list[Any], transposed: bool
                   ) -> ConvStep | None:
    """The step as a (transposed) convolution of the unviewed input with ``other``."""
    net = plan.network
    result = set(step.indices)
    held = set(other)
    ids = list(net.raw[leaf])
    sizes = net.sizes
    split = _split_axes(axes, held, result, sizes, weight=False)
    if split is None:
        return None
    spatial, batch, groups, chans = split
    taps = {tap for _, _, tap, _ in spatial}
    outs = [i for i in other if i not in set(ids)]
    if any(i not in result for i in outs) or len(taps) != len(spatial):
        return None
    g_ids = [axes[a] for a in groups]
    c_ids = [axes[a] for a in chans]
    b_ids = [axes[a] for a in batch]
    w_pos = {i: k for k, i in enumerate(other)}
    first_ids, second_ids = (c_ids, outs) if transposed else (outs, c_ids)
    w_perm = (*(w_pos[i] for i in g_ids), *(w_pos[i] for i in first_ids),
              *(w_pos[i] for i in second_ids), *(w_pos[tap] for _, _, tap, _ in spatial))
    if sorted(w_perm) != list(range(len(other))):
        return None
    prod = math.prod
    nb = prod(sizes[i] for i in b_ids)
    ng, nc = prod(sizes[i] for i in g_ids), prod(sizes[i] for i in c_ids)
    nk = prod(sizes[i] for i in outs)
    lengths = tuple(views[t].length for t, _, _, _ in spatial)
    # A kernel is smaller than the data it slides over; a "kernel" that is itself a
    # windowed input (a Gram matrix of patches) runs faster as a batched product.
    if prod(sizes[i] for i in other) > nb * ng * nc * prod(lengths):
        return None
    pads, stride, dilation, extra = [], [], [], []
    for t, _, tap, out in spatial:
        v = views[t]
        if transposed:  # x[(i + p - d*k) / s]: torch's transposed convolution
            d, s, p = -v.coef[0], v.divisor, v.offset
            natural_size = (v.length - 1) * s - 2 * p + d * (sizes[tap] - 1) + 1
            if not 0 <= sizes[out] - natural_size < max(s, d):
                return None
            pads.append((p, p))
            extra.append(sizes[out] - natural_size)
        else:
            pad, s, d = _window(v, sizes[tap], sizes[out])
            pads.append(pad)
        stride.append(s)
        dilation.append(d)
    x_perm = (*batch, *groups, *chans, *(a for _, a, _, _ in spatial))
    y_ids = [*b_ids, *g_ids, *outs, *(out for _, _, _, out in spatial)]
    y_ids = [i for i in y_ids if i in result]
    if sorted(y_ids) != sorted(step.indices):
        return None
    ypos = {i: k for k, i in enumerate(y_ids)}
    return ConvStep(
        leaf=leaf, first=first, x_perm=x_perm, x_shape=(nb, ng * nc, *lengths),
        w_perm=w_perm, w_shape=((ng * nc, nk) if transposed else (ng * nk, nc))
        + tuple(sizes[tap] for _, _, tap, _ in spatial),
        pads=tuple(pads), stride=tuple(stride), dilation=tuple(dilation), groups=ng,
        transposed=transposed, extra=tuple(extra),
        y_shape=tuple(sizes[i] for i in y_ids),
        y_perm=tuple(ypos[i] for i in step.indices),
        natural=tuple(y_ids),
    )


def _window(v: Affine, taps: int, outs: int) -> tuple[tuple[int, int], int, int]:
    """A sliding window's ``(left, right)`` zero padding (negative: cropping), stride
    and dilation, for ``outs`` positions of ``taps`` taps."""
    d, s = v.coef
    left = -v.offset
    need = (outs - 1) * s + (taps - 1) * d + 1
    return (left, need - left - v.length), s, d


def _match_weight(plan: Plan, step: Step, leaf: int, other: tuple[int, ...], first: bool,
                  views: Sequence[Any], axes: list[Any]) -> ConvStep | None:
    """The step as a convolution's weight gradient: the windowed input against the
    output gradient ``other`` over the positions, taps kept. Indices both hold are
    groups when kept (one per example for per-example gradients), the batch when summed;
    the input's own kept indices are its channels, the gradient's its outputs."""
    net = plan.network
    sizes = net.sizes
    result = set(step.indices)
    held = set(other)
    split = _split_axes(axes, held, result, sizes, weight=True)
    if split is None:
        return None
    spatial, batch, groups, chans = split
    g_ids, c_ids = [axes[a] for a in groups], [axes[a] for a in chans]
    b_ids = [axes[a] for a in batch if axes[a] in held]
    mine = {i for i in net.raw[leaf]}
    k_ids = [i for i in other if i not in mine]
    if any(i not in result for i in k_ids) or len(set(other)) != len(other):
        return None
    w_pos = {i: k for k, i in enumerate(other)}
    w_perm = (*(w_pos[i] for i in b_ids), *(w_pos[i] for i in g_ids),
              *(w_pos[i] for i in k_ids), *(w_pos[out] for _, _, _, out in spatial))
    if sorted(w_perm) != list(range(len(other))):
        return None
    prod = math.prod
    nb, ng = prod(sizes[axes[a]] for a in batch), prod(sizes[i] for i in g_ids)
    nc, nk = prod(sizes[i] for i in c_ids), prod(sizes[i] for i in k_ids)
    lengths = tuple(views[t].length for t, _, _, _ in spatial)
    pads, stride, dilation = [], [], []
    for t, _, tap, out in spatial:
        pad, s, d = _window(views[t], sizes[tap], sizes[out])
        pads.append(pad)
        stride.append(s)
        dilation.append(d)
    taps = tuple(sizes[tap] for _, _, tap, _ in spatial)
    y_ids = [*g_ids, *k_ids, *c_ids, *(tap for _, _, tap, _ in spatial)]
    if sorted(y_ids) != sorted(step.indices):
        return None
    ypos = {i: k for k, i in enumerate(y_ids)}
    return ConvStep(
        leaf=leaf, first=first, x_perm=(*batch, *groups, *chans, *(a for _, a, _, _ in spatial)),
        x_shape=(nb, ng * nc, *lengths), w_perm=w_perm,
        w_shape=(nb, ng * nk, *(sizes[out] for _, _, _, out in spatial)),
        pads=tuple(pads), stride=tuple(stride), dilation=tuple(dilation), groups=ng,
        y_shape=tuple(sizes[i] for i in y_ids), y_perm=tuple(ypos[i] for i in step.indices),
        natural=tuple(y_ids), weight=True, kernel=(ng * nk, nc, *taps),
    )


def conv_steps(plan: Plan, steps: tuple[Step, ...] | None = None,
               sources: Sequence[Source] | None = None) -> dict[int, ConvStep]:
    """Steps of a structured, unsliced plan that are convolutions, by step position
    (in ``steps``, by default the plan's own). ``sources`` say how each operand is
    viewed (by default the plan's rewrite's: a shared subexpression's plan is given
    those of its operands)."""
    if sources is None and plan.structure is not None:
        sources = plan.structure.sources
    if sources is None or plan.tree.sliced or plan.shared is not None:
        return {}
    steps = plan.steps if steps is None else steps
    n = plan.network.num_tensors
    # A leaf whose only single-operand work is dropping size-1 axes can still take the
    # input unviewed (the convolution reshapes it anyway); that step is then skipped.
    prepped = {s.out for s in steps if s.kind is StepKind.PREP
               and (s.cast or s.diagonal or s.sum_axes)}
    orders = _orders(plan, steps)
    found: dict[int, ConvStep] = {}
    for pos, s in enumerate(steps):
        if s.kind is StepKind.PREP:
            continue
        x, y = s.args
        for leaf, other, first in ((x, y, True), (y, x, False)):
            if leaf < n and leaf not in prepped:
                m = _match(plan, s, leaf, orders[other], first, sources)
                if m is not None:
                    found[pos] = m
                    break
    return found


def _takes(be: Backend, c: ConvStep) -> bool:
    if c.weight:
        return be.takes_conv_weight(c.x_shape, c.w_shape, c.stride, c.groups)
    return be.takes_conv(c.x_shape, c.w_shape, c.stride, c.groups, c.transposed)


def native_program(plan: Plan, be: Backend, sources: Sequence[Source] | None = None
                   ) -> NativeProgram | None:
    """The plan's program with its convolution steps as ``be``'s native convolution
    (None when the library has none or no step is one); ``sources`` as for
    :func:`conv_steps`."""
    if not be.conv_kinds:
        return None
    found = {pos: c for pos, c in conv_steps(plan, None, sources).items() if _takes(be, c)}
    if not found:
        return None
    npreps = sum(1 for s in plan.steps if s.kind is StepKind.PREP)
    kernels = relayout(plan, {pos - npreps: c.natural for pos, c in found.items()})
    again = {pos: c for pos, c in conv_steps(plan, kernels.steps, sources).items()
             if _takes(be, c)}  # layouts around the native steps changed
    if again.keys() != found.keys():
        return None
    return NativeProgram(kernels, {pos: _bind(c, be) for pos, c in again.items()},
                         frozenset(c.leaf for c in again.values()))


def _bind(c: ConvStep, be: Backend) -> Callable[[Any, Any], Any]:
    conv = be.conv  # type: ignore[attr-defined]
    if c.weight:
        conv_weight = be.conv_weight  # type: ignore[attr-defined]

        def run_weight(a: Any, b: Any) -> Any:
            x, g = (a, b) if c.first else (b, a)
            x = be.reshape(be.transpose(x, c.x_perm), c.x_shape)
            g = be.reshape(be.transpose(g, c.w_perm), c.w_shape)
            y = be.reshape(conv_weight(x, g, c.kernel, c.pads, c.stride, c.dilation,
                                       c.groups), c.y_shape)
            return y if c.y_perm == tuple(range(len(c.y_perm))) else be.transpose(y, c.y_perm)

        return run_weight

    def run(a: Any, b: Any) -> Any:
        x, w = (a, b) if c.first else (b, a)
        x = be.reshape(be.transpose(x, c.x_perm), c.x_shape)
        w = be.reshape(be.transpose(w, c.w_perm), c.w_shape)
        y = be.reshape(conv(x, w, c.pads, c.stride, c.dilation, c.groups, c.transposed,
                            c.extra), c.y_shape)
        return y if c.y_perm == tuple(range(len(c.y_perm))) else be.transpose(y, c.y_perm)

    return run
