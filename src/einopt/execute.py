"""Stage 6: walk a :class:`Plan`'s steps on arrays.

Each step is compiled once per backend into a closure over its fixed parameters; the
program is then a dumb loop over registers that drops every intermediate as soon as
its consumer has run. A plan with a single kernel call compiles to that call alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .backends import NumpyBackend, backend_for
from .errors import ShapeError
from .plan import Plan, Step, StepKind

__all__ = ["compile_program", "run_plan"]

Program = Callable[..., Any]


def _chain(ops: list[Callable[[Any], Any]]) -> Callable[[Any], Any] | None:
    """One function applying ``ops`` in order (``None`` when there are none)."""
    if len(ops) <= 1:
        return ops[0] if ops else None

    def run(x: Any) -> Any:
        for op in ops:
            x = op(x)
        return x

    return run


def _prep(step: Step, be: NumpyBackend) -> Callable[[Any], Any]:
    ops: list[Callable[[Any], Any]] = []
    if step.cast is not None:
        dt = np.dtype(step.cast)
        ops.append(lambda x: be.astype(x, dt))
    if step.squeeze is not None:
        sq = step.squeeze
        ops.append(lambda x: be.reshape(x, sq))
    if step.diagonal is not None:
        groups = step.diagonal
        ops.append(lambda x: be.diagonal(x, groups))
    if step.sum_axes is not None:
        axes = step.sum_axes
        ops.append(lambda x: be.sum(x, axes))
    fn = _chain(ops)
    assert fn is not None  # a PREP step always does something
    return fn


def _arg_view(perm: tuple[int, ...] | None, shape: tuple[int, ...] | None, swap: bool,
              be: NumpyBackend) -> Callable[[Any], Any] | None:
    ops: list[Callable[[Any], Any]] = []
    if perm is not None:
        ops.append(lambda x: be.transpose(x, perm))
    if shape is not None:
        ops.append(lambda x: be.reshape(x, shape))
    if swap:
        ops.append(be.swap_last)
    return _chain(ops)


def _pair(step: Step, be: NumpyBackend) -> Callable[[Any, Any], Any]:
    if step.subscripts is not None:
        subs, einsum = step.subscripts, be.einsum
        return lambda a, b: einsum(subs, a, b)
    kernel: Callable[[Any, Any], Any]
    if step.kind is StepKind.HADAMARD:
        kernel = be.multiply
    elif step.kind is StepKind.DOT and step.out_shape is None:
        kernel = be.dot
    else:
        kernel = be.matmul
    assert step.perms is not None and step.shapes is not None
    wa, wb = step.swaps or (False, False)
    fa = _arg_view(step.perms[0], step.shapes[0], wa, be)
    fb = _arg_view(step.perms[1], step.shapes[1], wb, be)
    out_shape = step.out_shape
    if fa is None and fb is None and out_shape is None:
        return kernel

    def run(a: Any, b: Any) -> Any:
        if fa is not None:
            a = fa(a)
        if fb is not None:
            b = fb(b)
        r = kernel(a, b)
        return r if out_shape is None else be.reshape(r, out_shape)

    return run


def _final(plan: Plan, be: NumpyBackend) -> Callable[[Any], Any] | None:
    perm, shape = plan.output_perm, plan.output_reshape
    if perm is None:
        return None if shape is None else (lambda x: be.reshape(x, shape))
    if shape is None:
        return lambda x: be.transpose(x, perm)
    return lambda x: be.reshape(be.transpose(x, perm), shape)


def compile_program(plan: Plan, be: NumpyBackend) -> Program:
    """A function of the operands that runs ``plan`` with backend ``be``."""
    n = plan.network.num_tensors
    preps = [(s.out, _prep(s, be)) for s in plan.steps if s.kind is StepKind.PREP]
    pairs = [(s.args[0], s.args[1], _pair(s, be))
             for s in plan.steps if s.kind is not StepKind.PREP]
    final = _final(plan, be)
    if not preps and len(pairs) == 1:
        fn = pairs[0][2]
        if pairs[0][:2] == (0, 1):
            if final is None:
                return fn
            return lambda a, b: final(fn(a, b))
    if not pairs and n == 1:
        def single(x: Any) -> Any:
            for _, p in preps:
                x = p(x)
            return x if final is None else final(x)

        return single

    def program(*operands: Any) -> Any:
        regs = list(operands)
        for k, p in preps:
            regs[k] = p(regs[k])
        for x, y, fn in pairs:
            regs.append(fn(regs[x], regs[y]))
            regs[x] = regs[y] = None
        r = regs[-1]
        return r if final is None else final(r)

    return program


def _sliced(plan: Plan, inner: Program) -> Program:
    """Loop ``inner`` (one slice's program) over every value of the sliced indices.

    Each pass indexes the operands at one value of each sliced index (broadcast axes of
    size 1 are left whole) and adds its result into the output's matching slice: summed
    indices accumulate in place, output indices fill their own slice.
    """
    net = plan.network
    cut = plan.tree.sliced
    ranges = [range(net.sizes[i]) for i in cut]
    where = {i: k for k, i in enumerate(cut)}
    op_axes = [[(a, where[i]) for a, (i, d) in enumerate(zip(raw, shape, strict=True))
                if i in where and d != 1] for raw, shape in zip(net.raw, plan.shapes, strict=True)]
    out_axes = [(a, where[i]) for a, i in enumerate(net.output) if i in where]
    ndims = [len(s) for s in plan.shapes]
    out_shape = plan.output_shape

    def index(ndim: int, axes: list[tuple[int, int]], values: tuple[int, ...]) -> tuple[Any, ...]:
        idx: list[Any] = [slice(None)] * ndim
        for a, k in axes:
            idx[a] = slice(values[k], values[k] + 1)
        return tuple(idx)

    def program(*operands: Any) -> Any:
        result = None
        for values in itertools.product(*ranges):
            part = inner(*[x[index(nd, ax, values)] if ax else x
                           for x, nd, ax in zip(operands, ndims, op_axes, strict=True)])
            if result is None:
                result = np.zeros(out_shape, dtype=np.asarray(part).dtype)
            result[index(len(out_shape), out_axes, values)] += part
        return result

    return program


def program_for(plan: Plan, be: NumpyBackend) -> Program:
    """The compiled program of ``plan`` for ``be`` (compiled once, then cached)."""
    prog = plan._programs.get(be.name)
    if prog is None:
        prog = compile_program(plan, be)
        if plan.tree.sliced:
            prog = _sliced(plan, prog)
        plan._programs[be.name] = prog
    return prog


def run_plan(plan: Plan, operands: Sequence[Any]) -> Any:
    """Check ``operands`` against the planned shapes, unify dtypes, and run ``plan``."""
    if len(operands) != len(plan.shapes):
        raise ShapeError(f"the plan takes {len(plan.shapes)} operands, got {len(operands)}")
    ops = [x if isinstance(x, np.ndarray) else np.asarray(x) for x in operands]
    for k, (x, shape) in enumerate(zip(ops, plan.shapes, strict=True)):
        if x.shape != shape:
            raise ShapeError(f"operand {k} has shape {x.shape}, but the plan was made for {shape}")
    if plan.dtype is None:
        dtypes = {x.dtype for x in ops}
        if len(dtypes) > 1:
            common = np.result_type(*ops)
            ops = [x.astype(common, copy=False) for x in ops]
    else:
        ops = [x if x.dtype == plan.dtype else x.astype(plan.dtype) for x in ops]
    return program_for(plan, backend_for(ops))(*ops)
