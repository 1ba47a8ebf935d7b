"""Stage 6: a plan run on arrays.

- :mod:`.execute`: the step loop (a plan compiled into one function, once per backend).
- :mod:`.views`: the windowed views of structured operands (convolution patterns,
  deltas, selectors) that a rewritten einsum reads instead of dense pattern tensors.
- :mod:`.native`: steps that are a library's own convolution.
- :mod:`.parallel`: a sliced plan's slices on threads, processes or a cluster.
- :mod:`.schedule`: sums of einsums that share products, each product formed once.

This module dispatches a call: whole or sliced, plain or structured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..backends import Backend
from ..errors import ShapeError
from ..plan import Plan
from ..structured.rewrite import spec_of
from .execute import check_operands, program_for, raw_leaves
from .parallel import run_slices
from .views import dense_operands, embed_output, structured_inputs

__all__ = ["evaluate", "run_plan", "run_structured"]


def evaluate(plan: Plan, be: Backend, operands: Sequence[Any], executor: Any = None) -> Any:
    """Run ``plan`` on checked ``operands``; a sliced plan's slices on ``executor`` if given
    (see :func:`einopt.run.parallel.run_slices`)."""
    if executor is not None and plan.tree.sliced:
        return run_slices(plan, be, operands, executor)
    return program_for(plan, be)(*operands)


def run_plan(plan: Plan, operands: Sequence[Any], executor: Any = None) -> Any:
    """Check ``operands`` against the planned shapes, unify dtypes, and run ``plan``."""
    if plan.structure is not None:
        return run_structured(plan, operands, executor=executor)
    be, ops = check_operands(plan, operands)
    return evaluate(plan, be, ops, executor)


def run_structured(plan: Plan, operands: Sequence[Any], dtype: Any = None,
                   casting: str = "safe", executor: Any = None, check: bool = True) -> Any:
    """Run a plan made for an einsum with structured operands on the call's operands
    (``check=False``: the plan was just made for them)."""
    rw = plan.structure
    if check:
        if len(operands) != rw.nops:
            raise ShapeError(f"the plan takes {rw.nops} operands, got {len(operands)}")
        specs = [spec_of(x) for x in operands]
        if tuple(specs) != rw.specs:
            bad = next(k for k, (a, b) in enumerate(zip(specs, rw.specs, strict=True))
                       if a != b)
            raise ShapeError(f"operand {bad} is {specs[bad]}, but the plan was made for "
                             f"{rw.specs[bad]}")
    be, ops = dense_operands(operands, dtype, casting)
    inputs = structured_inputs(rw, be, ops, raw_leaves(plan, be), dtype)
    result = evaluate(plan, be, inputs, executor)
    if rw.embeds:
        sizes = {lab: plan.network.sizes[i] for i, lab in enumerate(plan.network.labels)}
        result = embed_output(rw, be, result, sizes)
    return result
