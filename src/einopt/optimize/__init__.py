"""Stage 4: path optimizers, each ``Network -> ContractionTree``, and their registry.

Strategy names are parsed once at the api into a function from this registry; the
names of opt_einsum's strategies are accepted as aliases of the nearest einopt one.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import PathError
from ..network import Network
from ..tree import ContractionTree
from .greedy import greedy
from .optimal import OverBudget, bounded_optimal, optimal

__all__ = ["Optimizer", "OPTIMIZERS", "auto", "greedy", "optimal", "get_optimizer"]

Optimizer = Callable[[Network], ContractionTree]

#: ``auto`` tries the exact search up to this many tensors, within a work budget
#: (pair evaluations) that keeps it to milliseconds, and falls back to greedy.
AUTO_EXACT_LIMIT = 20
AUTO_BUDGET = 50_000


def auto(network: Network) -> ContractionTree:
    """Exact where that is fast (small, or sparse enough), greedy otherwise."""
    if network.num_tensors <= AUTO_EXACT_LIMIT:
        try:
            return bounded_optimal(network, AUTO_BUDGET)
        except OverBudget:
            pass
    return greedy(network)


def naive(network: Network) -> ContractionTree:
    """Left-to-right order, no search (``optimize=False``)."""
    return ContractionTree.left_to_right(network.num_tensors)


OPTIMIZERS: dict[str, Optimizer] = {
    "auto": auto,
    "optimal": optimal,
    "greedy": greedy,
    "naive": naive,
}

ALIASES: dict[str, str] = {
    "dp": "optimal",
    "branch-all": "optimal",
    "branch-2": "greedy",
    "branch-1": "greedy",
    "random-greedy": "greedy",
    "random-greedy-128": "greedy",
    "auto-hq": "auto",
    "eager": "greedy",
}


def get_optimizer(name: str | bool) -> Optimizer:
    """The optimizer for a strategy name (``True`` means ``"auto"``, ``False`` no search)."""
    if name is True:
        return auto
    if name is False or name is None:
        return naive
    if isinstance(name, str):
        key = ALIASES.get(name, name)
        if key in OPTIMIZERS:
            return OPTIMIZERS[key]
    known = ", ".join(sorted([*OPTIMIZERS, *ALIASES]))
    raise PathError(f"unknown optimize strategy {name!r}; known: {known}")
