"""A Plan as readable Python source with plain numpy calls, a person can paste."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import EinsumError

if TYPE_CHECKING:
    from .plan import Plan, Step

__all__ = ["plan_source"]


def _arg(name: str, perm: tuple[int, ...] | None, shape: tuple[int, ...] | None,
         swap: bool = False) -> str:
    expr = name
    if perm is not None:
        expr = f"{expr}.transpose{perm}" if len(perm) > 1 else f"{expr}.transpose({perm[0]},)"
    if shape is not None:
        expr = f"{expr}.reshape{shape}" if len(shape) != 1 else f"{expr}.reshape({shape[0]},)"
    if swap:
        expr = f"{expr}.T" if shape is not None and len(shape) == 2 else f"{expr}.swapaxes(-1, -2)"
    return expr


def _step_lines(step: Step, names: dict[int, str]) -> list[str]:
    kind = step.kind.value
    if kind == "prep":
        x = names[step.args[0]]
        lines = []
        if step.cast:
            lines.append(f"{x} = {x}.astype(np.{step.cast})")
        if step.squeeze is not None:
            lines.append(f"{x} = {x}.reshape({step.squeeze!r})")
        if step.diagonal is not None:
            lines.append(f"{x} = diagonal_view({x}, {step.diagonal!r})")
        if step.sum_axes is not None:
            lines.append(f"{x} = {x}.sum(axis={step.sum_axes!r}, dtype={x}.dtype)")
        return lines
    a, b = (names[i] for i in step.args)
    z = names[step.out]
    if step.loop:
        return [f"{z} = np.einsum({step.subscripts!r}, {a}, {b})"]
    assert step.perms is not None and step.shapes is not None
    wa, wb = step.swaps or (False, False)
    ea = _arg(a, step.perms[0], step.shapes[0], wa)
    eb = _arg(b, step.perms[1], step.shapes[1], wb)
    if kind == "dot" and step.out_shape is None:
        return [f"{z} = np.dot({ea}, {eb})"]
    op = "*" if kind == "hadamard" else "@"
    expr = f"({ea} {op} {eb})"
    if step.out_shape is not None:
        expr = f"{expr}.reshape({step.out_shape!r})"
    return [f"{z} = {expr}"]


_DIAG = '''
def diagonal_view(x, groups):
    """View of x whose axis k walks the diagonal of x's axes groups[k]."""
    shape = tuple(x.shape[g[0]] for g in groups)
    strides = tuple(sum(x.strides[a] for a in g) for g in groups)
    return np.lib.stride_tricks.as_strided(x, shape, strides)
'''


def plan_source(plan: Plan, backend: str = "numpy") -> str:
    """Source of ``def contraction(op0, op1, ...)`` evaluating ``plan`` with numpy."""
    if backend != "numpy":
        raise EinsumError(f"code generation for backend {backend!r} is not available; use 'numpy'")
    n = plan.network.num_tensors
    names = {k: f"op{k}" for k in range(n)}
    body: list[str] = []
    uses_diag = False
    for step in plan.steps:
        if step.out >= n:
            names[step.out] = f"t{step.out - n}"
        uses_diag |= step.diagonal is not None
        body += _step_lines(step, names)
    last = names[plan.steps[-1].out] if any(s.out >= n for s in plan.steps) else "op0"
    result = last
    if plan.output_perm is not None:
        result = f"{result}.transpose{plan.output_perm}" if len(plan.output_perm) > 1 else result
    if plan.output_reshape is not None:
        result = f"{result}.reshape({plan.output_reshape!r})"
    body.append(f"return {result}")
    head = [
        "import numpy as np",
        *([_DIAG] if uses_diag else [""]),
        "",
        f"def contraction({', '.join(f'op{k}' for k in range(n))}):",
        f'    """{plan.equation} -- {plan.flops:.4g} flops, '
        f'{plan.speedup:.3g}x fewer than naive.'
        + ("\n\n    The operands are those of the einsum above: views of the call's "
           "operands\n    with the structured ones substituted (see Plan.structure).\n    "
           if plan.structure is not None else "") + '"""',
    ]
    return "\n".join(head + ["    " + line for line in body]) + "\n"
