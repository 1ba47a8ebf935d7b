"""The step loop: a :class:`Plan`'s steps compiled into one function of the operands.

Each step is compiled once per backend into a closure over its fixed parameters; the
program is then a dumb loop over registers that drops every intermediate as soon as
its consumer has run. A plan with a single kernel call compiles to that call alone.

What is compiled is kept with the plan, in its ``programs`` field: that field is this
module's cache, written only by :func:`cached`, keyed by what was compiled and for which
backend (``"numpy"``: the whole program; ``("slices", name)``: one slice's loop;
``("native", name)``: native convolution steps; ``("inner", name)``/``("outer", name)``:
the two halves of a shared plan).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..backends import Backend, backend_for
from ..backends.base import diagonal_subscripts
from ..errors import ShapeError
from ..plan import Plan, Step, StepKind
from .native import native_program
from .views import dense_operands, embed_output, structured_inputs

__all__ = ["cached", "check_operands", "compile_program", "dual_program", "final_function",
           "program_for", "slice_sum", "slice_values", "step_function"]

Program = Callable[..., Any]


def cached(plan: Plan, key: Any, build: Callable[[], Any]) -> Any:
    """``plan.programs[key]``, built by ``build()`` on first use (the one writer of that
    cache; concurrent first calls may both build, and one result is kept)."""
    found = plan.programs.get(key, _NONE)
    if found is _NONE:
        found = plan.programs.setdefault(key, build())
    return found


_NONE = object()


def _chain(ops: list[Callable[[Any], Any]]) -> Callable[[Any], Any] | None:
    """One function applying ``ops`` in order (``None`` when there are none)."""
    if len(ops) <= 1:
        return ops[0] if ops else None

    def run(x: Any) -> Any:
        for op in ops:
            x = op(x)
        return x

    return run


def _prep(step: Step, be: Backend) -> Callable[[Any], Any]:
    ops: list[Callable[[Any], Any]] = []
    if step.cast is not None:
        dt = np.dtype(step.cast)
        ops.append(lambda x: be.astype(x, dt))
    if step.squeeze is not None:
        sq = step.squeeze
        ops.append(lambda x: be.reshape(x, sq))
    if (be.pair_einsum and (step.diagonal is not None or step.sum_axes is not None)
            or be.einsum_loops and step.diagonal is not None):
        # Diagonal and sum as one call of the library's einsum (one fused kernel; numpy's
        # loop reads a trace in place).
        ndim = (sum(len(g) for g in step.diagonal) if step.diagonal
                else len(step.indices) + len(step.sum_axes or ()))
        groups = step.diagonal or tuple((a,) for a in range(ndim))
        subs = diagonal_subscripts(ndim, groups, step.sum_axes or ())
        ops.append(lambda x: be.einsum(subs, x))
    else:
        if step.diagonal is not None:
            diag = step.diagonal
            ops.append(lambda x: be.diagonal(x, diag))
        if step.sum_axes is not None:
            axes = step.sum_axes
            ops.append(lambda x: be.sum(x, axes))
    fn = _chain(ops)
    assert fn is not None  # a PREP step always does something
    return fn


def _arg_view(perm: tuple[int, ...] | None, shape: tuple[int, ...] | None, swap: bool,
              be: Backend) -> Callable[[Any], Any] | None:
    ops: list[Callable[[Any], Any]] = []
    if perm is not None:
        ops.append(lambda x: be.transpose(x, perm))
    if shape is not None:
        ops.append(lambda x: be.reshape(x, shape))
    if swap:
        ops.append(be.swap_last)
    return _chain(ops)


def _in_place(step: Step) -> bool:
    """Whether a batched DOT step can reduce in place: both operands laid out alike, not
    in (batch, contracted) order, with the batch axes already in result order."""
    assert step.perms is not None
    pa, pb = step.perms
    nb = len(step.indices)
    return pa is not None and pa == pb and list(pa[:nb]) == sorted(pa[:nb])


def _pair(step: Step, be: Backend) -> Callable[[Any, Any], Any]:
    if step.subscripts is not None and (step.loop and be.einsum_loops or be.pair_einsum):
        subs, einsum = step.subscripts, be.einsum
        return lambda a, b: einsum(subs, a, b)
    kernel: Callable[[Any, Any], Any]
    assert step.perms is not None and step.shapes is not None
    shapes = step.shapes
    if step.kind is StepKind.HADAMARD:
        kernel = be.multiply
    elif step.kind is StepKind.DOT and step.out_shape is None:
        kernel = be.dot
    elif step.kind is StepKind.DOT and not be.einsum_loops and _in_place(step):
        # Both operands alike and in need of a permute: reduce the product along the
        # contracted axes where they lie (no copies; a square when it is one tensor).
        assert step.perms[0] is not None
        axes = step.perms[0][len(step.indices):]
        mul, total = be.multiply, be.sum
        return lambda a, b: total(mul(a, b), axes)
    elif step.kind is StepKind.DOT and not be.einsum_loops:
        # A batched inner product: the backend's fused form, on (B, C) operands.
        assert shapes[0] is not None and shapes[1] is not None
        shapes = (shapes[0][::2], shapes[1][:2])
        kernel = be.batched_dot(*shapes[0])
        if (step.subscripts is not None and step.perms == (None, None)
                and len(step.indices) == 1
                and all(len(t) == 2 for t in step.subscripts.split("->")[0].split(","))):
            return kernel  # already (B, C) each, and the result is (B,): no reshapes
    elif step.wide:
        kernel = be.wide_matmul
    else:
        kernel = be.matmul
    wa, wb = step.swaps or (False, False)
    fa = _arg_view(step.perms[0], shapes[0], wa, be)
    fb = _arg_view(step.perms[1], shapes[1], wb, be)
    out_shape = step.out_shape
    # The same array in both places, laid out alike, stays one object (kernels such as
    # a sum of squares can then read it once).
    alike = (step.perms[0], shapes[0], wa) == (step.perms[1], shapes[1], wb)
    if fa is None and fb is None and out_shape is None:
        return kernel

    def run(a: Any, b: Any) -> Any:
        same = alike and a is b
        if fa is not None:
            a = fa(a)
        if same:
            b = a
        elif fb is not None:
            b = fb(b)
        r = kernel(a, b)
        return r if out_shape is None else be.reshape(r, out_shape)

    return run


def _final(perm: tuple[int, ...] | None, shape: tuple[int, ...] | None,
           be: Backend) -> Callable[[Any], Any] | None:
    if perm is None:
        return None if shape is None else (lambda x: be.reshape(x, shape))
    if shape is None:
        return lambda x: be.transpose(x, perm)
    return lambda x: be.reshape(be.transpose(x, perm), shape)


def step_function(step: Step, be: Backend) -> Callable[..., Any]:
    """One step compiled for ``be``: a function of its operand (PREP) or of its two."""
    return _prep(step, be) if step.kind is StepKind.PREP else _pair(step, be)


def final_function(plan: Plan, be: Backend) -> Callable[[Any], Any] | None:
    """How the last step's result becomes ``plan``'s output on ``be`` (a transpose and or
    reshape), or None when it already is."""
    return _final(plan.output_perm, plan.output_reshape, be)


def native_of(plan: Plan, be: Backend) -> Any:
    """A structured plan's program with native convolution steps for ``be`` (found once
    per plan and backend; None when there are none)."""
    if plan.structure is None:
        return None
    return cached(plan, ("native", be.name), lambda: native_program(plan, be))


def inner_native(plan: Plan, be: Backend) -> Any:
    """A shared structured plan's subexpression program with native convolution steps
    (its operands viewed as the plan's rewrite says; None when there are none)."""
    sh, rw = plan.shared, plan.structure
    if sh is None or rw is None:
        return None
    return cached(plan, ("inner-native", be.name),
                  lambda: native_program(sh.inner, be, [rw.sources[k] for k in sh.first]))


def raw_leaves(plan: Plan, be: Backend) -> frozenset[int]:
    """Operands of a structured plan that its program reads unviewed (native steps'), or
    not at all (the second copy of a shared subexpression): no view is made of them."""
    sh = plan.shared
    if sh is not None:
        native = inner_native(plan, be)
        used = {*sh.first, *sh.rest}
        unused = {k for k in range(len(sh.shapes)) if k not in used}
        return frozenset(unused) if native is None else \
            frozenset(unused | {sh.first[k] for k in native.leaves})
    native = native_of(plan, be)
    return frozenset() if native is None else native.leaves


_OWN = object()


def compile_program(plan: Plan, be: Backend, native: Any = _OWN) -> Program:
    """A function of the operands that runs ``plan`` with backend ``be`` (a structured
    plan's native steps read their leaves unviewed; ``native``: those steps, if not the
    plan's own)."""
    n = plan.network.num_tensors
    if native is _OWN:
        native = native_of(plan, be)
    steps = plan.steps if native is None else native.kernels.steps
    fns = {} if native is None else native.fns
    final = _final(plan.output_perm, plan.output_reshape, be) if native is None else \
        _final(native.kernels.output_perm, native.kernels.output_reshape, be)
    raw = frozenset() if native is None else native.leaves
    prep_steps = [s for s in steps if s.kind is StepKind.PREP and s.out not in raw]
    preps = [(s.out, _prep(s, be)) for s in prep_steps]
    # An operand prepared as an earlier one is: when the call passes one array for both,
    # it is prepared once and stays one object (a kernel can then read it once).
    first: dict[Any, int] = {}
    alike = {s.out: first.setdefault((s.cast, s.squeeze, s.diagonal, s.sum_axes), s.out)
             for s in prep_steps}
    alike = {k: j for k, j in alike.items() if j != k}
    pairs = [(s.args[0], s.args[1], fns[k] if k in fns else _pair(s, be))
             for k, s in enumerate(steps) if s.kind is not StepKind.PREP]
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

    spare = [None] * len(pairs)

    def program(*operands: Any) -> Any:
        regs = [*operands, *spare]  # one allocation: no list growth (memory accounting)
        for k, p in preps:
            j = alike.get(k)
            regs[k] = regs[j] if j is not None and operands[k] is operands[j] else p(regs[k])
        for t, (x, y, fn) in enumerate(pairs, n):
            regs[t] = fn(regs[x], regs[y])
            regs[x] = regs[y] = None
        r = regs[-1]
        return r if final is None else final(r)

    return program


def slice_values(plan: Plan) -> list[tuple[int, ...]]:
    """Every slice of a sliced plan: one value per sliced index."""
    return list(itertools.product(*[range(plan.network.sizes[i]) for i in plan.tree.sliced]))


def slice_sum(plan: Plan, be: Backend) -> Callable[[Sequence[Any], Sequence[tuple[int, ...]]],
                                                   Any]:
    """``f(operands, slices)``: the sum of the results of ``slices`` of ``plan``, placed in
    the output (compiled once per backend, then kept).

    Each slice indexes the operands at one value of each sliced index (broadcast axes of
    size 1 are left whole) and runs one slice's program; its result adds into the
    output region of that slice (summed indices accumulate, output indices fill their
    own slice).
    """
    return cached(plan, ("slices", be.name), lambda: _slice_sum(plan, be))  # type: ignore[no-any-return]


def _slice_sum(plan: Plan, be: Backend) -> Callable[[Sequence[Any], Sequence[tuple[int, ...]]],
                                                    Any]:
    net = plan.network
    pos = {i: k for k, i in enumerate(plan.tree.sliced)}
    op_axes = [[(a, pos[i]) for a, (i, d) in enumerate(zip(raw, shape, strict=True))
                if i in pos and d != 1] for raw, shape in zip(net.raw, plan.shapes, strict=True)]
    out_axes = [(a, pos[i]) for a, i in enumerate(net.output) if i in pos]
    ndims = [len(s) for s in plan.shapes]
    out_shape = plan.output_shape
    inner = compile_program(plan, be)

    def index(ndim: int, axes: list[tuple[int, int]], values: tuple[int, ...]) -> tuple[Any, ...]:
        idx: list[Any] = [slice(None)] * ndim
        for a, k in axes:
            idx[a] = slice(values[k], values[k] + 1)
        return tuple(idx)

    def run(operands: Sequence[Any], slices: Sequence[tuple[int, ...]]) -> Any:
        total = None
        for values in slices:
            part = inner(*[x[index(nd, ax, values)] if ax else x
                           for x, nd, ax in zip(operands, ndims, op_axes, strict=True)])
            if total is None:
                total = be.zeros(out_shape, part)
            total = be.add_at(total, index(len(out_shape), out_axes, values), part)
            del part  # freed before the next slice runs, as the memory meter assumes
        return total

    return run


def program_for(plan: Plan, be: Backend) -> Program:
    """The compiled program of ``plan`` for ``be`` (compiled once, then cached)."""
    return cached(plan, be.name, lambda: _program(plan, be))  # type: ignore[no-any-return]


def _program(plan: Plan, be: Backend) -> Program:
    if plan.shared is not None:
        return _shared_program(plan, be)
    if not plan.tree.sliced:
        prog = compile_program(plan, be)
        whole = _whole_einsum(plan, be)
        if whole is None:
            return prog
        traced = be.traced

        def either(*operands: Any) -> Any:
            return whole(*operands) if traced(operands) else prog(*operands)

        return either
    run, slices = slice_sum(plan, be), slice_values(plan)

    def prog(*operands: Any) -> Any:
        return run(operands, slices)

    return prog


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _whole_einsum(plan: Plan, be: Backend) -> Program | None:
    """The plan as one call of the library's einsum along the plan's path, for backends
    whose compiler lays out intermediates itself (None where that does not apply: plans
    of structured operands, or over more than 52 indices)."""
    net = plan.network
    if not be.whole_einsum or plan.structure is not None or len(net.sizes) > len(_LETTERS) \
            or net.num_tensors < 3:
        return None
    subs = (",".join("".join(_LETTERS[i] for i in raw) for raw in net.raw) + "->"
            + "".join(_LETTERS[i] for i in net.output))
    path, call, shape = plan.path, be.einsum_path, plan.output_shape

    def whole(*operands: Any) -> Any:
        result = call(subs, operands, path)
        return result if tuple(result.shape) == shape else be.reshape(result, shape)

    return whole


def shared_parts(plan: Plan, be: Backend) -> tuple[Program, Program]:
    """The programs of a shared plan's subexpression and of the plan over its result
    (compiled once per backend, then kept)."""
    assert plan.shared is not None
    sh = plan.shared

    def inner() -> Program:
        native = inner_native(plan, be)
        return program_for(sh.inner, be) if native is None else \
            compile_program(sh.inner, be, native)

    return (cached(plan, ("inner", be.name), inner),
            cached(plan, ("outer", be.name), lambda: compile_program(plan, be)))


def _shared_program(plan: Plan, be: Backend) -> Program:
    """Run the shared subexpression once and the plan on its result, twice."""
    sh = plan.shared
    assert sh is not None
    inner, outer = shared_parts(plan, be)
    first, rest = sh.first, sh.rest

    def prog(*operands: Any) -> Any:
        r = inner(*[operands[k] for k in first])
        return outer(r, r, *[operands[k] for k in rest])

    return prog


def check_operands(plan: Plan, operands: Sequence[Any]) -> tuple[Backend, list[Any]]:
    """The backend of ``operands`` and the operands checked against the planned shapes,
    converted to one library and dtype."""
    shapes = plan.call_shapes
    if len(operands) != len(shapes):
        raise ShapeError(f"the plan takes {len(shapes)} operands, got {len(operands)}")
    be = backend_for(operands)
    if be.einsum_loops:  # numpy: numpy.einsum's casting
        ops = [x if isinstance(x, np.ndarray) else np.asarray(x) for x in operands]
        if plan.dtype is None:
            if len({x.dtype for x in ops}) > 1:
                common = np.result_type(*ops)
                ops = [x.astype(common, copy=False) for x in ops]
        else:
            ops = [x if x.dtype == plan.dtype else x.astype(plan.dtype) for x in ops]
    else:
        ops = be.prepare(operands)
    for k, (x, shape) in enumerate(zip(ops, shapes, strict=True)):
        if tuple(x.shape) != shape:
            raise ShapeError(f"operand {k} has shape {tuple(x.shape)}, but the plan was made "
                             f"for {shape}")
    return be, ops


def dual_program(plan: Plan, operands: Sequence[Any], tangents: dict[int, Any]) -> tuple[Any, Any]:
    """``(y, dy)`` for ``plan`` on ``operands`` and the directional derivative along
    ``tangents`` (operand position -> tangent), on dual numbers: every step is linear
    in each argument, so a merge of ``(P, D)`` pairs is ``(f(P, P'), f(D, P') +
    f(P, D'))``, skipping absent ``D`` parts. No slicing, no native steps."""
    if plan.tree.sliced or plan.shared is not None:
        raise ShapeError("dual evaluation runs unsliced plans without shared parts only")
    keys = sorted(tangents)
    if plan.structure is not None:
        rw = plan.structure
        be, ops = dense_operands([*operands, *(tangents[k] for k in keys)])
        prim = structured_inputs(rw, be, ops[:len(operands)])
        tans: list[Any] = [None] * len(prim)
        for pos, src in enumerate(rw.sources):
            if src.const is None and src.operand in tangents and not src.dense:
                swapped = list(ops[:len(operands)])
                swapped[src.operand] = ops[len(operands) + keys.index(src.operand)]
                tans[pos] = structured_inputs(rw, be, swapped)[pos]
        d_regs = tans
    else:
        be = backend_for([*operands, *(tangents[k] for k in keys)])
        arrays = be.prepare([*operands, *(tangents[k] for k in keys)])
        prim = arrays[:len(operands)]
        d_regs = [None] * len(operands)
        for j, k in enumerate(keys):
            d_regs[k] = arrays[len(operands) + j]
    p_regs = list(prim)
    d_regs = list(d_regs)
    for s in plan.steps:
        if s.kind is StepKind.PREP:
            f = _prep(s, be)
            p_regs[s.out] = f(p_regs[s.out])
            if d_regs[s.out] is not None:
                d_regs[s.out] = f(d_regs[s.out])
            continue
        fn = _pair(s, be)
        x, y = s.args
        px, py, dx, dy = p_regs[x], p_regs[y], d_regs[x], d_regs[y]
        p_regs.append(fn(px, py))
        parts = ([fn(dx, py)] if dx is not None else []) + ([fn(px, dy)] if dy is not None else [])
        d_regs.append(None if not parts else parts[0] if len(parts) == 1
                      else be.add(parts[0], parts[1]))
        p_regs[x] = p_regs[y] = d_regs[x] = d_regs[y] = None
    final = _final(plan.output_perm, plan.output_reshape, be)
    y_out, d_out = p_regs[-1], d_regs[-1]
    if d_out is None:
        d_out = be.multiply(y_out, be.constant(np.zeros(()), y_out))
    if final is not None:
        y_out, d_out = final(y_out), final(d_out)
    if plan.structure is not None and plan.structure.embeds:
        sizes = {lab: plan.network.sizes[i] for i, lab in enumerate(plan.network.labels)}
        y_out = embed_output(plan.structure, be, y_out, sizes)
        d_out = embed_output(plan.structure, be, d_out, sizes)
    return y_out, d_out
