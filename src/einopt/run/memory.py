"""A plan's peak working memory, found by running its program on arrays without data.

The memory a plan takes is more than its largest intermediate: several intermediates
are alive at once, a kernel's operands are copied where a permute and reshape cannot be
a view (a windowed view of a convolution's input, the unfolded "im2col" buffer, is the
largest such copy), native convolutions build buffers of their own, and a sliced plan
keeps the whole result while it adds slices into it. Rather than a second model of all
that, :func:`peak_elements` runs the plan's own compiled program (the same dispatch,
views, native steps and slice loop as a real call) on :class:`Meta` arrays: each knows
its shape, its strides and the buffer it reads; a buffer is counted while an array
refers to it (Python frees it when the program drops it, as it frees real arrays).

What is counted: every buffer the evaluation allocates (intermediates, the result,
kernel copies, padding, gathered views, native kernels' buffers), not the call's
operands. Library-internal scratch (BLAS packing, a few KB to MB) is not counted.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..backends import Backend, get_backend
from ..errors import MemoryLimitError
from ..network import bits
from ..plan import Plan
from ..structured.operands import ConvPattern, Delta, Selector
from ..tree import ContractionTree, tree_cost
from .execute import cached, program_for, raw_leaves, slice_sum
from .views import embed_output, structured_inputs

__all__ = ["meter_bytes", "peak_elements", "peak_bytes", "fit_memory", "nocopy_strides", "Meta",
           "MeterBackend", "CALL_OVERHEAD_BYTES", "OBJECT_BYTES", "traced_peak",
           "profiled_peak"]


class _Meter:
    """Elements currently allocated and the most at any moment."""

    __slots__ = ("live", "peak")

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0

    def alloc(self, n: int) -> _Buffer:
        self.live += n
        self.peak = max(self.peak, self.live)
        return _Buffer(self, n)


class _Buffer:
    """An allocation: counted until the last array reading it is gone."""

    __slots__ = ("meter", "size")

    def __init__(self, meter: _Meter, size: int) -> None:
        self.meter, self.size = meter, size

    def __del__(self) -> None:
        self.meter.live -= self.size


def _c_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= max(int(d), 1)
    return tuple(reversed(strides))


#: Bytes of one array object (numpy's header, shape and strides): tens of thousands of
#: views of a large network's operands add up.
OBJECT_BYTES = 160

#: The meter that array objects made now count on (set while a plan is metered).
_CURRENT: list[_Meter] = []


class Meta:
    """An array without data: shape, strides (in elements) and the buffer it reads
    (``None``: the caller's operand, not counted). Made while a plan is metered, the
    array object itself counts :data:`OBJECT_BYTES`."""

    __slots__ = ("shape", "strides", "buffer", "token")

    def __init__(self, shape: Sequence[int], strides: Sequence[int] | None = None,
                 buffer: _Buffer | None = None) -> None:
        self.shape = tuple(int(d) for d in shape)
        self.strides = _c_strides(self.shape) if strides is None else tuple(strides)
        self.buffer = buffer
        self.token = _CURRENT[0].alloc(OBJECT_BYTES) if _CURRENT else None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def view(self, shape: Sequence[int], strides: Sequence[int]) -> Meta:
        return Meta(shape, strides, self.buffer)

    def __getitem__(self, index: Any) -> Meta:
        """Basic slicing (``slice`` objects, as a sliced plan cuts its operands)."""
        index = index if isinstance(index, tuple) else (index,)
        shape, strides = list(self.shape), list(self.strides)
        for a, s in enumerate(index):
            if isinstance(s, slice):
                start, stop, step = s.indices(shape[a])
                shape[a] = len(range(start, stop, step))
                strides[a] *= step
        return self.view(shape, strides)

    def __setitem__(self, index: Any, value: Any) -> None:
        """In-place writes (``result[index] += part``) allocate nothing."""

    def __iadd__(self, other: Any) -> Meta:
        return self


def nocopy_strides(shape: Sequence[int], strides: Sequence[int],
                   new: Sequence[int]) -> tuple[int, ...] | None:
    """The strides of ``new`` as a view of an array of ``shape`` and ``strides``, or None
    where numpy's reshape must copy (numpy's own rule: each run of old axes merged into
    new ones must be contiguous in C order; axes of size 1 are free)."""
    old = [(int(d), int(s)) for d, s in zip(shape, strides, strict=True) if d != 1]
    new = [int(d) for d in new]
    if math.prod(new) != math.prod(d for d, _ in old):
        return None
    if 0 in new:
        return _c_strides(new)
    out = [0] * len(new)
    oi = ni = 0
    while ni < len(new) and oi < len(old):
        np_, op = new[ni], old[oi][0]
        nj, oj = ni + 1, oi + 1
        while np_ != op:
            if np_ < op:
                np_ *= new[nj]
                nj += 1
            else:
                op *= old[oj][0]
                oj += 1
        for k in range(oi, oj - 1):
            if old[k][1] != old[k + 1][0] * old[k + 1][1]:
                return None
        out[nj - 1] = old[oj - 1][1]
        for k in range(nj - 1, ni, -1):
            out[k - 1] = out[k] * new[k]
        ni, oi = nj, oj
    last = out[ni - 1] if ni else 1
    for k in range(ni, len(new)):
        out[k] = last
    return tuple(out)


def _blasable(x: Meta) -> bool:
    """Whether BLAS reads ``x``'s matrices (last two axes) in place: one axis of unit
    stride, the other stepping over whole rows."""
    if x.ndim < 2:
        return x.ndim == 0 or x.strides[-1] == 1 or x.shape[-1] <= 1
    (d0, d1), (s0, s1) = x.shape[-2:], x.strides[-2:]
    rows = (s1 == 1 or d1 <= 1) and (s0 >= max(d1, 1) or d0 <= 1)
    cols = (s0 == 1 or d0 <= 1) and (s1 >= max(d0, 1) or d1 <= 1)
    return rows or cols


def _broadcast(*shapes: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(d) for d in np.broadcast_shapes(*[tuple(s) for s in shapes]))


_TERM = re.compile(r"[^,>-]+|")


class MeterBackend(Backend):
    """The primitives a plan's program calls, on :class:`Meta` arrays: each allocating
    primitive counts its result (and the copies the real library makes); views count
    nothing. Decisions that depend on the library (kernel forms, native convolutions)
    are the real backend's ``of``."""

    def __init__(self, of: Backend, meter: _Meter, itemsize: int) -> None:
        self.of, self.meter, self.itemsize = of, meter, itemsize
        self.name = of.name
        self.einsum_loops = of.einsum_loops
        self.pair_einsum = of.pair_einsum
        self.whole_einsum = False
        self.conv_kinds = of.conv_kinds
        self.reverses = of.reverses
        self.takes_conv = of.takes_conv  # type: ignore[method-assign]
        self.takes_conv_weight = of.takes_conv_weight  # type: ignore[method-assign]
        if hasattr(of, "conv"):
            self.conv = self._conv
        if hasattr(of, "conv_weight"):
            self.conv_weight = self._conv_weight

    def new(self, shape: Sequence[int]) -> Meta:
        shape = tuple(int(d) for d in shape)
        return Meta(shape, None, self.meter.alloc(math.prod(shape) * self.itemsize))

    def traced(self, operands: Sequence[Any]) -> bool:
        return False

    # views
    def transpose(self, x: Meta, perm: Sequence[int]) -> Meta:
        return x.view([x.shape[p] for p in perm], [x.strides[p] for p in perm])

    def swap_last(self, x: Meta) -> Meta:
        perm = [*range(x.ndim - 2), x.ndim - 1, x.ndim - 2]
        return self.transpose(x, perm)

    def reshape(self, x: Meta, shape: Sequence[int]) -> Meta:
        shape = tuple(int(d) for d in shape)
        strides = nocopy_strides(x.shape, x.strides, shape)
        return self.new(shape) if strides is None else Meta(shape, strides, x.buffer)

    def window(self, x: Meta, axis: int, sizes: tuple[int, int], steps: tuple[int, int],
               start: int) -> Meta:
        st = x.strides
        return x.view(x.shape[:axis] + tuple(sizes) + x.shape[axis + 1:],
                      st[:axis] + (steps[0] * st[axis], steps[1] * st[axis]) + st[axis + 1:])

    def reverse(self, x: Meta, axis: int) -> Meta:
        return x.view(x.shape, [-s if a == axis else s for a, s in enumerate(x.strides)])

    def diagonal(self, x: Meta, groups: tuple[tuple[int, ...], ...]) -> Meta:
        return x.view([x.shape[g[0]] for g in groups], [sum(x.strides[a] for a in g)
                                                        for g in groups])

    # allocating primitives
    def astype(self, x: Meta, dtype: Any) -> Meta:
        return self.new(x.shape)

    def multiply(self, a: Any, b: Any) -> Meta:
        return self.new(_broadcast(_shape(a), _shape(b)))

    def add(self, a: Any, b: Any) -> Meta:
        return self.multiply(a, b)

    def matmul(self, a: Meta, b: Meta) -> Meta:
        # numpy copies an operand whose matrices BLAS cannot read in place
        temps = [self.new(x.shape) for x in (a, b) if not _blasable(x)]
        batch = _broadcast(a.shape[:-2], b.shape[:-2])
        out = self.new((*batch, a.shape[-2], b.shape[-1]) if b.ndim > 1
                       else (*a.shape[:-1],))
        del temps
        return out

    def wide_matmul(self, a: Meta, b: Meta) -> Meta:
        return self.new((b.shape[0], a.shape[0], b.shape[2]))

    def dot(self, a: Meta, b: Meta) -> Meta:
        return self.new((*a.shape[:-1], *b.shape[:-2], *b.shape[-1:]) if b.ndim > 1
                        else a.shape[:-1])

    def batched_dot(self, batch: int, contract: int) -> Any:
        if self.of.einsum_loops or type(self.of).batched_dot is Backend.batched_dot:
            return lambda a, b: self.sum(self.multiply(a, b), (-1,))
        if self.of.dot_temporary(contract):  # the product of distinct operands, then a sum
            return lambda a, b: (self.new(a.shape[:-1]) if a is b else
                                 self.sum(self.multiply(a, b), (-1,)))
        return lambda a, b: self.new(a.shape[:-1])

    def sum(self, x: Meta, axes: Sequence[int]) -> Meta:
        drop = {a % x.ndim for a in axes}
        return self.new([d for a, d in enumerate(x.shape) if a not in drop])

    def einsum(self, subscripts: str, *ops: Meta) -> Meta:
        inputs, out = subscripts.split("->")
        sizes: dict[str, int] = {}
        for term, x in zip(inputs.split(","), ops, strict=True):
            for c, d in zip(term, x.shape, strict=True):
                sizes[c] = max(sizes.get(c, 1), d)
        shape = [sizes[c] for c in out]
        if len(ops) == 1 and len(set(inputs)) == len(set(out)) <= len(inputs):
            # numpy's einsum returns a diagonal or a permutation as a view
            x, term = ops[0], inputs
            strides = [sum(s for c2, s in zip(term, x.strides, strict=True) if c2 == c)
                       for c in out]
            return x.view(shape, strides)
        return self.new(shape)

    def zeros(self, shape: Sequence[int], like: Any) -> Meta:
        return self.new(shape)

    def add_at(self, result: Meta, index: tuple[Any, ...], part: Any) -> Meta:
        return result

    def constant(self, x: Any, like: Any) -> Meta:
        return self.new(np.shape(x))

    def pad(self, x: Meta, widths: dict[int, tuple[int, int]]) -> Meta:
        return self.new([d + sum(widths.get(a, (0, 0))) for a, d in enumerate(x.shape)])

    def take(self, x: Meta, index: Any, axis: int) -> Meta:
        idx = tuple(np.shape(index))
        return self.new(x.shape[:axis] + idx + x.shape[axis + 1:])

    def asarray(self, x: Any) -> Any:
        return x

    def scalar(self, x: Any) -> Any:
        return x

    # native convolutions: the buffers numpy's kernel builds (other libraries' kernels
    # are counted as the full im2col buffer, an upper bound of theirs)
    def _unfolded(self, x: Meta, taps: Sequence[int], pads: Sequence[tuple[int, int]],
                  stride: Sequence[int], dilation: Sequence[int]) -> tuple[int, list[int],
                                                                          int]:
        """Elements of the unfolded buffer, the output sizes, and of the padded copy."""
        size = [d + max(lo, 0) + max(hi, 0) for d, (lo, hi) in zip(x.shape[2:], pads,
                                                                    strict=True)]
        outs = [(s - dl * (t - 1) - 1) // st + 1
                for s, t, st, dl in zip(size, taps, stride, dilation, strict=True)]
        padded = math.prod(x.shape[:2]) * math.prod(size) if any(
            lo > 0 or hi > 0 for lo, hi in pads) else 0
        offsets = self.name == "numpy" and stride[0] == 1
        inner = math.prod(taps[1:]) if offsets else math.prod(taps)
        rows = size[0] if offsets else outs[0]
        buf = math.prod(x.shape[:2]) * inner * rows * math.prod(outs[1:])
        return buf, outs, padded

    def _conv(self, x: Meta, w: Meta, pads: Any, stride: Any, dilation: Any, groups: int,
              transposed: bool = False, extra: Any = ()) -> Meta:
        buf_n, outs, padded = self._unfolded(x, w.shape[2:], pads, stride, dilation)
        pad = self.meter.alloc(padded * self.itemsize) if padded else None
        buf = self.meter.alloc(buf_n * self.itemsize)
        del pad
        out = (x.shape[0], w.shape[0], *outs)
        y = self.new(out)
        part = self.new(out)  # one tap's product, added into y
        del part
        final = self.new(out)  # the (n, k, ...) layout of the result, copied
        del y, buf
        return final

    def _conv_weight(self, x: Meta, gy: Meta, kernel: Sequence[int], pads: Any,
                     stride: Any, dilation: Any, groups: int) -> Meta:
        buf_n, _, padded = self._unfolded(x, kernel[2:], pads, stride, dilation)
        pad = self.meter.alloc(padded * self.itemsize) if padded else None
        buf = self.meter.alloc(buf_n * self.itemsize)
        del pad
        cols = self.new(gy.shape)
        parts = self.new(kernel)
        stacked = self.new(kernel)
        del parts
        final = self.new(kernel)
        del stacked, cols, buf
        return final


def _shape(x: Any) -> tuple[int, ...]:
    return x.shape if isinstance(x, Meta) else tuple(np.shape(x))


def _stand_ins(plan: Plan) -> list[Any]:
    """The call's operands without data: arrays as :class:`Meta`, structured operands
    rebuilt from the plan's rewrite (selectors with zero indices of their shape)."""
    rw = plan.structure
    if rw is None:
        return [Meta(s) for s in plan.call_shapes]
    out: list[Any] = []
    for spec in rw.specs:
        kind = spec[0] if spec and isinstance(spec[0], str) else None
        if kind == "delta":
            out.append(Delta(*spec[1:]))
        elif kind == "conv":
            out.append(ConvPattern(*spec[1:]))
        elif kind == "select":
            shape = spec[1]
            out.append(Selector(np.zeros(shape[:-1], dtype=np.int64), shape[-1]))
        else:
            out.append(Meta(spec))
    return out


_LOCK = threading.Lock()


def meter_bytes(plan: Plan, backend: str = "numpy", itemsize: int = 8,
                objects: bool = True) -> int:
    """Most bytes alive at once while ``plan`` runs on ``backend`` with items of
    ``itemsize`` bytes (its operands not counted): intermediates, the result, kernel
    copies and buffers, and (with ``objects``) the array objects and lists themselves."""
    be_real = get_backend(backend)
    fresh = dataclasses.replace(plan, programs={})
    with _LOCK:  # one meter at a time: array objects count on the current one
        ops = _stand_ins(fresh)
        meter = _Meter()
        if objects:
            _CURRENT.append(meter)
        try:
            be = MeterBackend(be_real, meter, itemsize)
            if fresh.structure is not None:
                inputs = structured_inputs(fresh.structure, be, ops, raw_leaves(fresh, be))
            else:
                inputs = ops
            if fresh.tree.sliced and fresh.shared is None:
                # every slice takes the same memory, freed before the next; from the
                # second on, the summed result is alive beside it: one slice run twice
                # (the meter has no data to add up)
                first = (0,) * len(fresh.tree.sliced)
                result = slice_sum(fresh, be)(inputs, [first] * min(2, fresh.num_slices))
            else:
                result = program_for(fresh, be)(*inputs)
            rw = fresh.structure
            if rw is not None and rw.embeds:  # the result placed on its diagonal
                net = fresh.network
                result = embed_output(rw, be, result, dict(zip(net.labels, net.sizes,
                                                               strict=True)))
            del result, inputs
        finally:
            _CURRENT.clear()
        return meter.peak + (_LIST_BYTES * plan.network.num_tensors if objects else 0)


#: Bytes per tensor of the sequences a call keeps: the operand tuples and lists it
#: passes along (the caller's, the call's, the checked list, the program's) and its
#: registers (one per tensor and per step): ten pointers, measured on 30,000 tensors.
_LIST_BYTES = 80


def _itemsize(plan: Plan) -> int:
    return np.dtype(plan.dtype).itemsize if plan.dtype is not None else 8


def peak_elements(plan: Plan, backend: str = "numpy") -> int:
    """The data part of :func:`meter_bytes` (arrays' items, not their objects) in items
    of the plan's dtype (float64 where it is decided per call): the figure
    ``memory_limit`` bounds."""
    item = _itemsize(plan)
    return -(-meter_bytes(plan, backend, item, objects=False) // item)


#: Bytes a call's Python objects take beside its arrays (index tuples, frames): counted
#: in :func:`peak_bytes` so that small plans' figures hold too.
CALL_OVERHEAD_BYTES = 32768


def peak_bytes(plan: Plan, backend: str = "numpy", itemsize: int | None = None) -> int:
    """``plan``'s peak working memory on ``backend`` in bytes (computed once per backend
    and item size, and kept with the plan): :func:`meter_bytes` with the plan's item
    size unless given (8 where the dtype is decided per call), plus
    :data:`CALL_OVERHEAD_BYTES`."""
    item = _itemsize(plan) if itemsize is None else itemsize
    found = cached(plan, ("peak", backend, item), lambda: meter_bytes(plan, backend, item))
    return int(found) + CALL_OVERHEAD_BYTES


def fit_memory(plan: Plan, limit: int, rebuild: Callable[[ContractionTree], Plan]) -> Plan:
    """``plan``, sliced further until its peak working memory is at most ``limit``
    elements (``rebuild`` makes the plan of a sliced tree); a :class:`MemoryLimitError`
    when no slicing gets there (the result alone, or one operand's copy, is larger)."""
    out = math.prod(plan.output_shape)
    if out > limit:
        raise MemoryLimitError(
            f"memory_limit={limit} elements cannot hold the result, of shape "
            f"{plan.output_shape} ({out} elements)")
    peak = peak_elements(plan)
    while peak > limit:
        # one more sliced index at a time, the one that lowers the peak most for the
        # fewest flops, among the indices of the largest operands and intermediates
        best: tuple[tuple[Any, ...], Plan, int] | None = None
        for i in _candidates(plan):
            trial = rebuild(plan.tree.with_sliced(sorted([*plan.tree.sliced, i])))
            got = peak_elements(trial)
            key = (got > limit, trial.flops if got <= limit else got, trial.flops, i)
            if best is None or key < best[0]:
                best = (key, trial, got)
        if best is None:  # every index of the largest tensors is sliced already
            raise MemoryLimitError(
                f"memory_limit={limit} elements: the plan needs {peak} even with "
                f"{', '.join(map(str, plan.sliced)) or 'no index'} sliced; its kernels copy "
                f"operands or build buffers larger than the limit")
        _, plan, peak = best
    return plan


#: How many of the largest operands and intermediates offer their indices for slicing,
#: and how many of those indices (the largest) are tried per added slice.
_CANDIDATE_NODES = 4
_CANDIDATES = 8


def _candidates(plan: Plan) -> list[int]:
    """Unsliced indices of ``plan``'s largest operands and intermediates (one slice's
    sizes), largest first."""
    net, cut = plan.network, set(plan.tree.sliced)
    sizes = [1 if i in cut else d for i, d in enumerate(net.sizes)]
    cost = tree_cost(net, plan.tree, sizes)
    n = net.num_tensors
    operands = sorted(range(n), key=lambda t: -math.prod(sizes[i] for i in net.raw[t]))
    merged = sorted(range(n, len(cost.node_sizes)), key=lambda k: -cost.node_sizes[k])
    found: set[int] = set()
    for t in operands[:_CANDIDATE_NODES]:
        found.update(net.raw[t])
    for k in merged[:_CANDIDATE_NODES]:
        found.update(bits(cost.node_masks[k]))
    return sorted((i for i in found if sizes[i] > 1), key=lambda i: (-sizes[i], i))[:_CANDIDATES]


def traced_peak(fn: Callable[[], Any]) -> int:
    """Bytes one call of ``fn`` allocates at its peak, as ``tracemalloc`` sees them
    (numpy reports its buffers to it): the measurement :func:`peak_bytes` is checked
    against."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
        del result
    finally:
        tracemalloc.stop()
    return peak


def profiled_peak(fn: Callable[[], Any]) -> int:
    """Bytes one call of ``fn`` holds at its peak on torch's CPU allocator, from the
    profiler's memory events (each op's allocations at its start, each free at its
    time): the torch counterpart of :func:`traced_peak`. Needs torch."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
        del result
    events = []
    for e in prof.events():
        if e.name == "[memory]":
            events.append((e.time_range.start, e.cpu_memory_usage))
        elif e.self_cpu_memory_usage:
            events.append((e.time_range.start, e.self_cpu_memory_usage))
    events.sort(key=lambda t: t[0])
    now = peak = 0
    for _, change in events:
        now += change
        peak = max(peak, now)
    return peak
