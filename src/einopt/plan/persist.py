"""A plan as JSON text, and back.

The JSON holds what is needed to rebuild a plan exactly: the equation's labels, the
shapes, the dtype and the tree (merges and sliced indices); the plan is rebuilt from
them, so a stored plan runs as the one that was stored (in another process, say).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..errors import EinsumError
from ..network import build_network
from ..parse import Equation
from ..tree import ContractionTree
from . import Plan, build_plan

__all__ = ["plan_to_json", "plan_from_json"]

FORMAT = "einopt-plan/1"


def _label_out(label: Any) -> Any:
    if label is ...:
        return {"ellipsis": True}
    if isinstance(label, (str, int)) and not isinstance(label, bool):
        return label
    raise EinsumError(f"label {label!r} cannot be stored as JSON (use str or int labels)")


def _label_in(label: Any) -> Any:
    return ... if isinstance(label, dict) else label


def plan_to_json(plan: Plan) -> str:
    """The JSON text of ``plan`` (see :func:`plan_from_json`)."""
    if plan.structure is not None:
        raise EinsumError("a plan with structured operands is not stored as JSON: plan it "
                          "again (its rewrite is cached), or store the plan of its dense "
                          "einsum, einopt.plan(str(plan.equation), *plan.shapes)")
    eq = plan.equation
    data = {
        "format": FORMAT,
        "inputs": [[_label_out(lab) for lab in term] for term in eq.inputs],
        "output": [_label_out(lab) for lab in eq.output],
        "explicit": eq.explicit,
        "shapes": [list(s) for s in plan.shapes],
        "dtype": None if plan.dtype is None else np.dtype(plan.dtype).str,
        "tree": plan.tree.to_dict(),
        "flops": str(plan.flops),
    }
    return json.dumps(data)


def plan_from_json(text: str) -> Plan:
    """Rebuild a :class:`Plan` from :func:`plan_to_json`'s text."""
    data = json.loads(text)
    if data.get("format") != FORMAT:
        raise EinsumError(f"not an einopt plan (format {data.get('format')!r})")
    eq = Equation(
        tuple(tuple(_label_in(lab) for lab in term) for term in data["inputs"]),
        tuple(_label_in(lab) for lab in data["output"]),
        bool(data["explicit"]),
    )
    shapes = tuple(tuple(s) for s in data["shapes"])
    network = build_network(eq, shapes)
    dtype = None if data["dtype"] is None else np.dtype(data["dtype"])
    return build_plan(eq, network, ContractionTree.from_dict(data["tree"]), shapes, dtype,
                      None if dtype is None else (dtype,) * len(shapes))
