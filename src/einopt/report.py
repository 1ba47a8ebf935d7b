"""Readable text of a Plan: the step table that ``str(plan)`` prints, the plan as a
formula in index notation, and ``Plan.explain()``."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .codegen import plan_source
from .cost import count_text, ratio, ratio_text
from .network import bits, label_text
from .plan import Plan, Step, StepKind
from .tree import tree_cost

__all__ = ["plan_table", "plan_formula", "plan_explain"]


def _indices(ids: tuple[int, ...], plan: Plan) -> str:
    labels = [label_text(plan.network.labels[i]) for i in ids]
    sep = "" if all(len(t) == 1 for t in labels) else " "
    return sep.join(labels) or "(scalar)"


def _fmt(x: float) -> str:
    return count_text(x) if x >= 10_000 or x == 0 or x != int(x) else str(int(x))


def _step_row(step: Step, plan: Plan, names: dict[int, str], orders: dict[int, tuple[int, ...]]
              ) -> tuple[str, str, str, str, str]:
    args = ", ".join(f"{names[a]}[{_indices(orders[a], plan)}]" for a in step.args)
    what = step.kind.value
    if step.kind is StepKind.PREP:
        parts = [p for p, on in (("cast", step.cast), ("squeeze", step.squeeze),
                                 ("diagonal", step.diagonal), ("sum", step.sum_axes)) if on]
        what = "+".join(parts)
    return (what, args, _indices(step.indices, plan), _fmt(step.flops), _fmt(step.size))


def plan_table(plan: Plan) -> str:
    """A table of the plan's steps with totals: equation, flops, speedup, largest size."""
    n = plan.network.num_tensors
    names = {k: f"op{k}" for k in range(n)}
    orders = {k: plan.network.raw[k] for k in range(n)}
    rows = []
    for step in plan.steps:
        rows.append(_step_row(step, plan, names, orders))
        orders[step.out] = step.indices
        if step.out >= n:
            names[step.out] = f"t{step.out - n}"
    header = ("kernel", "inputs", "result", "flops", "size")
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(5)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    sliced = ", ".join(map(label_text, plan.sliced)) or "none"
    if plan.sliced:
        sliced += f" ({plan.num_slices} slices, {plan.slicing_overhead:.3g}x the unsliced flops)"
    lines = [
        f"einopt plan for {plan.equation}",
        f"  shapes: {', '.join(str(s) for s in plan.shapes)}",
        f"  flops: {_fmt(plan.flops)}  naive: {_fmt(plan.naive_flops)}  "
        f"speedup: {ratio_text(plan.naive_flops, plan.flops)}x  "
        f"largest intermediate: {_fmt(plan.max_size)}  "
        f"sliced: {sliced}",
        f"  path: {plan.path}",
        "",
        line.format(*header),
        line.format(*("-" * w for w in widths)),
    ]
    lines += [line.format(*r) for r in rows]
    if not rows:
        lines.append("(no kernel calls: the result is a view of the operand)")
    lines.append(f"log10(flops) = {math.log10(max(plan.flops, 1)):.2f}")
    if plan.shared is not None:
        sh = plan.shared
        ops = ", ".join(f"op{k}" for k in sh.first)
        lines += ["", f"op0 = op1: computed once from the call's {ops} "
                      f"({_fmt(sh.inner.flops)} flops):", plan_table(sh.inner)]
    return "\n".join(lines)


def _label(i: int, plan: Plan) -> str:
    return label_text(plan.network.labels[i])


def plan_formula(plan: Plan, names: Sequence[str] | None = None) -> str:
    """The plan as a formula in index notation: each step a product, with a sum over the
    indices it contracts (``Σ_i B[n,i]² · Σ_j A[n,j]²``)."""
    n = plan.network.num_tensors
    args = list(names) if names is not None else [f"op{k}" for k in range(n)]
    text: dict[int, str] = {}
    atoms: dict[int, str] = {}
    for k in range(n):
        labels = ",".join(_label(i, plan) for i in plan.network.raw[k])
        text[k] = atoms[k] = f"{args[k]}[{labels}]" if labels else args[k]
    masks = tree_cost(plan.network, plan.tree).node_masks
    for k, (x, y) in enumerate(plan.tree.merges):
        z = n + k
        summed = bits((masks[x] | masks[y]) & ~masks[z])
        if x in atoms and y in atoms and atoms[x] == atoms[y]:
            body = f"{atoms[x]}²"
        else:
            body = f"{_wrap(text[x])} · {_wrap(text[y])}"
        sigma = "Σ_" + ",".join(_label(i, plan) for i in summed) + " " if summed else ""
        text[z] = f"{sigma}{body}"
    return text[n + len(plan.tree.merges) - 1] if plan.tree.merges else text[0]


def _wrap(s: str) -> str:
    return f"({s})" if s.startswith("Σ") and " · " in s else s


def plan_explain(plan: Plan, names: Sequence[str] | None = None,
                 backend: str = "numpy") -> str:
    """What the plan does: the formula, each step's cost, the speedup, and the code."""
    lines = [f"{plan.equation}", f"  = {plan_formula(plan, names)}", ""]
    total = max(plan.flops, 1)
    for k, step in enumerate(s for s in plan.steps if s.kind is not StepKind.PREP):
        lines.append(f"  step {k}: {step.kind.value:<8} {_fmt(step.flops):>9} flops "
                     f"({100 * ratio(step.flops, total):.0f}%)")
    speedup = ratio_text(plan.naive_flops, plan.flops)
    lines += ["", f"flops: {_fmt(plan.flops)}, naive loop: {_fmt(plan.naive_flops)}, "
                  f"speedup: {speedup}x", "", plan_source(plan, backend, names)]
    return "\n".join(lines)
