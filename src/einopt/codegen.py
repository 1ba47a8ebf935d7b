"""A Plan as readable Python source that a person could have written (numpy or torch).

Each pairwise step becomes the plainest expression of what it is:

- a batched inner product: ``(a * b).sum(1)`` (the per-example norm trick reads
  ``t0 = (op0 * op1).sum(1)``);
- a matrix product: ``a @ b``, with ``.T`` where an operand or the result is
  transposed; batched and reshaped forms only when the step needs them;
- an elementwise or outer product: ``a[:, None] * b``.

Single-operand work (casts, diagonals, sums of indices only one operand holds) comes
first, as in the plan. The source is tested to compute what the plan computes.
"""

from __future__ import annotations

from collections.abc import Sequence

from .cost import count_text, ratio_text
from .errors import EinsumError
from .plan import Plan, Step, StepKind

__all__ = ["plan_source"]

_BACKENDS = ("numpy", "torch")


def _axes(t: Sequence[int]) -> str:
    return str(t[0]) if len(t) == 1 else str(tuple(t))


class _Writer:
    """Emits expressions for one backend."""

    def __init__(self, backend: str) -> None:
        self.torch = backend == "torch"

    def transpose(self, x: str, perm: Sequence[int]) -> str:
        if list(perm) == list(range(len(perm))):
            return x
        if len(perm) == 2:
            return f"{x}.T"
        return f"{x}.permute{tuple(perm)}" if self.torch else f"{x}.transpose{tuple(perm)}"

    def reshape(self, x: str, shape: Sequence[int]) -> str:
        if not shape:
            return f"{x}.reshape(())"
        return f"{x}.reshape({', '.join(map(str, shape))}{',' if len(shape) == 1 else ''})"

    def cast(self, x: str, dtype: str) -> str:
        return f"{x}.to(torch.{dtype})" if self.torch else f"{x}.astype(np.{dtype})"


def _align(x: str, order: Sequence[int], target: Sequence[int], w: _Writer) -> str:
    """``x`` (axes ``order``) transposed and expanded to broadcast against ``target``."""
    kept = [i for i in target if i in order]
    expr = w.transpose(x, [list(order).index(i) for i in kept])
    if len(kept) == len(target):
        return expr
    index = ", ".join(":" if i in order else "None" for i in target)
    return f"{expr}[{index}]"


def _pair(step: Step, a: str, b: str, oa: Sequence[int], ob: Sequence[int],
          w: _Writer) -> str | None:
    """A readable expression for a pairwise step, or None to use the general form."""
    out = list(step.indices)
    shared = set(oa) & set(ob)
    summed = [i for i in oa if i in shared and i not in out]
    if not summed:  # elementwise / outer product
        return f"{_align(a, oa, out, w)} * {_align(b, ob, out, w)}"
    if set(oa) == set(ob):  # a batched inner product: multiply, then sum the shared axes
        eb = w.transpose(b, [list(ob).index(i) for i in oa])
        kept = [i for i in oa if i not in summed]
        axes = [k for k, i in enumerate(oa) if i in summed]
        expr = f"({a} * {eb}).sum({_axes(axes)})" if kept else f"({a} * {eb}).sum()"
        return w.transpose(expr, [kept.index(i) for i in out]) if kept else expr
    if len(oa) == 2 and len(ob) == 2 and len(summed) == 1 and len(out) == 2:
        (j,) = summed
        ea = a if oa[1] == j else f"{a}.T"
        eb = b if ob[0] == j else f"{b}.T"
        i = oa[0] if oa[1] == j else oa[1]
        return f"{ea} @ {eb}" if out[0] == i else f"({ea} @ {eb}).T"
    return None


def _general(step: Step, a: str, b: str, w: _Writer) -> str:
    """The plan's own kernel form: permute, reshape, matmul (or multiply), reshape."""
    assert step.perms is not None and step.shapes is not None
    exprs = []
    for x, perm, shape, swap in zip((a, b), step.perms, step.shapes, step.swaps or (False,
                                                                                   False),
                                    strict=True):
        e = x if perm is None else w.transpose(x, perm)
        if shape is not None:
            e = w.reshape(e, shape)
        if swap:
            e = f"{e}.T" if shape is not None and len(shape) == 2 else f"{e}.swapaxes(-1, -2)"
        exprs.append(e)
    op = "*" if step.kind is StepKind.HADAMARD else "@"
    expr = f"({exprs[0]} {op} {exprs[1]})"
    return w.reshape(expr, step.out_shape) if step.out_shape is not None else expr


def _prep_lines(step: Step, x: str, w: _Writer) -> list[str]:
    lines = []
    if step.cast:
        lines.append(f"{x} = {w.cast(x, step.cast)}")
    if step.squeeze is not None:
        lines.append(f"{x} = {w.reshape(x, step.squeeze)}")
    if step.diagonal is not None:
        lines.append(f"{x} = diagonal({x}, {step.diagonal!r})")
    if step.sum_axes is not None:
        lines.append(f"{x} = {x}.sum({_axes(step.sum_axes)})")
    return lines


_NUMPY_DIAGONAL = '''
def diagonal(x, groups):
    """View of x whose axis k walks the diagonal of x's axes groups[k]."""
    shape = tuple(x.shape[g[0]] for g in groups)
    strides = tuple(sum(x.strides[a] for a in g) for g in groups)
    return np.lib.stride_tricks.as_strided(x, shape, strides)
'''

_TORCH_DIAGONAL = '''
def diagonal(x, groups):
    """x with axis k walking the diagonal of x's axes groups[k] (views)."""
    axes = list(range(x.dim()))
    for g in groups:
        for a in g[1:]:
            p, q = axes.index(g[0]), axes.index(a)
            x = x.diagonal(0, p, q)
            axes = [b for b in axes if b not in (g[0], a)] + [g[0]]
    return x.permute([axes.index(g[0]) for g in groups])
'''


def plan_source(plan: Plan, backend: str = "numpy", names: Sequence[str] | None = None) -> str:
    """Source of ``def contraction(...)`` evaluating ``plan`` with plain ``backend`` calls.

    Args:
        names: argument names (default ``op0, op1, ...``); the same name twice means
            the same array, as in ``code(names=["B", "B", "A", "A"])``.
    """
    if backend not in _BACKENDS:
        raise EinsumError(f"code generation for backend {backend!r} is not available; "
                          f"use one of {', '.join(_BACKENDS)}")
    if plan.shared is not None:
        raise EinsumError("this plan computes a repeated subexpression once; print it "
                          "(str(plan)) to see both parts")
    w = _Writer(backend)
    n = plan.network.num_tensors
    args = list(names) if names is not None else [f"op{k}" for k in range(n)]
    if len(args) != n:
        raise EinsumError(f"{len(args)} names for a plan of {n} operands")
    reg = {k: args[k] for k in range(n)}
    orders = {k: tuple(plan.network.raw[k]) for k in range(n)}
    body: list[str] = []
    uses_diag = False
    for step in plan.steps:
        if step.out < n:  # single-operand work on an operand
            x = reg[step.out]
            if args.count(x) > 1:  # one name for several operands: work on a copy
                fresh = f"{x}_{step.out}"
                body.append(f"{fresh} = {x}")
                x = reg[step.out] = fresh
            uses_diag |= step.diagonal is not None
            body += _prep_lines(step, x, w)
            orders[step.out] = step.indices
            continue
        a, b = reg[step.args[0]], reg[step.args[1]]
        oa, ob = orders[step.args[0]], orders[step.args[1]]
        z = f"t{step.out - n}"
        expr = _pair(step, a, b, oa, ob, w)
        body.append(f"{z} = {expr if expr is not None else _general(step, a, b, w)}")
        reg[step.out], orders[step.out] = z, step.indices
    result = reg[plan.steps[-1].out] if plan.steps else args[0]
    if plan.output_perm is not None:
        result = w.transpose(result, plan.output_perm)
    if plan.output_reshape is not None:
        result = w.reshape(result, plan.output_reshape)
    body.append(f"return {result}")
    lib = "import torch" if w.torch else "import numpy as np"
    diag = (_TORCH_DIAGONAL if w.torch else _NUMPY_DIAGONAL) if uses_diag else ""
    note = ("\n\n    The operands are those of the einsum above: views of the call's "
            "operands\n    with the structured ones substituted (see Plan.structure).\n    "
            if plan.structure is not None else "")
    head = [lib, diag, "",
            f"def contraction({', '.join(dict.fromkeys(args))}):",
            f'    """{plan.equation} -- {count_text(plan.flops, 4)} flops, '
            f'{ratio_text(plan.naive_flops, plan.flops)}x fewer than naive.{note}"""']
    return "\n".join(head + ["    " + line for line in body]) + "\n"
