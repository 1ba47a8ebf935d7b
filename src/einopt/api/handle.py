"""The user's :class:`Plan` handle: a plan value that can be called, printed, explained,
stored and drawn, and :func:`clear_caches`, which empties every cache of the package."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..caches import clear_all
from ..codegen import plan_source
from ..graphs import svg
from ..plan import Plan as PlanValue
from ..plan.persist import plan_from_json, plan_to_json
from ..report import plan_explain, plan_table
from ..run import run_plan
from ..run.memory import peak_bytes
from ..viz import draw_tree

__all__ = ["Plan", "as_handle", "clear_caches", "CACHE_SIZE"]

CACHE_SIZE = 1024


class Plan(PlanValue):
    """A planned einsum: call it on arrays, print it, read its code.

    The plan value of :mod:`einopt.plan` (``path``, ``flops``, ``speedup``,
    ``max_size``, ``sliced``, ``steps``, ``tree``, ``network``, ...) with what a user
    does with one: evaluate it, print its steps, explain it, turn it into source code,
    store it as JSON, draw its tree.
    """

    __slots__ = ()

    def __call__(self, *operands: Any, executor: Any = None) -> Any:
        """Evaluate the plan on ``operands`` (arrays of the planned shapes).

        ``executor`` spreads a sliced plan's slices: ``"threads"``, ``"processes"``,
        ``"serial"``, a ``concurrent.futures.Executor`` or a ``dask.distributed.Client``.
        """
        return run_plan(self, operands, executor)

    def __str__(self) -> str:
        return plan_table(self)

    @property
    def peak_bytes(self) -> int:
        """Peak working memory of a call on numpy, in bytes: intermediates, the result,
        kernel copies and buffers (not the operands); ``memory_limit`` bounds it. Other
        libraries: :func:`einopt.run.memory.peak_bytes`."""
        return peak_bytes(self)

    def to_json(self) -> str:
        """JSON text that :meth:`from_json` turns back into an equal plan."""
        return plan_to_json(self)

    @staticmethod
    def from_json(text: str) -> Plan:
        """The plan stored by :meth:`to_json`."""
        return as_handle(plan_from_json(text))

    def _repr_svg_(self) -> str | None:
        """The contraction tree, for Jupyter (None without matplotlib and networkx)."""
        try:
            return svg(draw_tree(self))
        except ImportError:
            return None

    def explain(self, names: Sequence[str] | None = None, backend: str = "numpy") -> str:
        """The plan in words: its formula in index notation (``Σ_i B[n,i]² · Σ_j
        A[n,j]²``), each step's share of the flops, the speedup over the naive loop,
        and the code."""
        return plan_explain(self, names, backend)

    def code(self, backend: str = "numpy", names: Sequence[str] | None = None) -> str:
        """Python source of a function that evaluates this plan with plain ``backend``
        calls (``"numpy"`` or ``"torch"``); ``names`` name its arguments."""
        return plan_source(self, backend, names)


def as_handle(p: PlanValue) -> Plan:
    """The user's :class:`Plan` for the plan value ``p`` (``p`` itself when it is one)."""
    if isinstance(p, Plan):
        return p
    return Plan(**{f.name: getattr(p, f.name) for f in dataclasses.fields(p)})




def clear_caches() -> None:
    """Forget every cached parse, rewrite, plan, compiled call and executor pool."""
    clear_all()

