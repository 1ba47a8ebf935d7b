"""Plans as JSON, and an opt-in on-disk cache of contraction trees.

A plan's JSON holds what is needed to rebuild it exactly: the equation's labels, the
shapes, the dtype and the tree (merges and sliced indices). The tree cache is keyed by
the network's label-independent canonical form (index ids numbered by first
appearance, their sizes, the output) plus the search options, so an expensive search is
done once per structure, whatever the labels are called.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EinsumError
from .network import Network, build_network
from .parse import Equation
from .plan import Plan, build_plan
from .tree import ContractionTree

__all__ = ["plan_to_json", "plan_from_json", "TreeCache", "canonical_key"]

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
        "tree": _tree_out(plan.tree),
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
    return build_plan(eq, network, _tree_in(data["tree"]), shapes, dtype,
                      None if dtype is None else (dtype,) * len(shapes))


def _tree_out(tree: ContractionTree) -> dict[str, Any]:
    return {"num_leaves": tree.num_leaves, "merges": [list(m) for m in tree.merges],
            "sliced": list(tree.sliced)}


def _tree_in(data: dict[str, Any]) -> ContractionTree:
    return ContractionTree(int(data["num_leaves"]), tuple(tuple(m) for m in data["merges"]),
                           tuple(data["sliced"]))


def canonical_key(network: Network, options: Any) -> str:
    """A hash of the network's structure (labels ignored) and the search ``options``."""
    text = repr((network.raw, network.sizes, network.output, options))
    return hashlib.sha256(text.encode()).hexdigest()


class TreeCache:
    """Trees found by earlier searches, one JSON file each under ``directory``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> ContractionTree | None:
        try:
            return _tree_in(json.loads(self._path(key).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, tree: ContractionTree) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self._path(key).with_suffix(".tmp")
        tmp.write_text(json.dumps(_tree_out(tree)))
        tmp.replace(self._path(key))
