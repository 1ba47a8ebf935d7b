"""Readable text of a Plan: the step table that ``str(plan)`` prints."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .network import label_text

if TYPE_CHECKING:
    from .plan import Plan, Step

__all__ = ["plan_table"]


def _indices(ids: tuple[int, ...], plan: Plan) -> str:
    labels = [label_text(plan.network.labels[i]) for i in ids]
    sep = "" if all(len(t) == 1 for t in labels) else " "
    return sep.join(labels) or "(scalar)"


def _fmt(x: float) -> str:
    return f"{x:.3g}" if x >= 1e4 or x == 0 or x != int(x) else str(int(x))


def _step_row(step: Step, plan: Plan, names: dict[int, str], orders: dict[int, tuple[int, ...]]
              ) -> tuple[str, str, str, str, str]:
    args = ", ".join(f"{names[a]}[{_indices(orders[a], plan)}]" for a in step.args)
    what = step.kind.value
    if step.kind.value == "prep":
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
        f"speedup: {plan.speedup:.3g}x  largest intermediate: {_fmt(plan.max_size)}  "
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
