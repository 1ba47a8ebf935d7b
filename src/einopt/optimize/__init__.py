"""Stage 4: path optimizers, each ``Network -> ContractionTree``, and their registry.

Strategy names are parsed once at the api into a function from this registry; the
names of opt_einsum's strategies are accepted as aliases of the nearest einopt one.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import PathError
from ..network import Network
from ..tree import ContractionTree, tree_cost
from .greedy import greedy, greedy_run, greedy_tree
from .hyper import hyper
from .objective import Budget, Objective, parse_objective
from .optimal import FULL_LIMIT, OverBudget, bounded_optimal, full_dp, optimal
from .refine import reconfigure

__all__ = [
    "Budget",
    "Objective",
    "Optimizer",
    "OPTIMIZERS",
    "auto",
    "get_optimizer",
    "greedy",
    "greedy_tree",
    "hyper",
    "optimal",
    "parse_objective",
]

Optimizer = Callable[[Network, Budget], ContractionTree]

#: ``auto`` tries the exact search up to this many tensors, within a work budget
#: (pair evaluations) that keeps it to milliseconds, and falls back to greedy.
AUTO_EXACT_LIMIT = 20
AUTO_BUDGET = 50_000
DEFAULT_BUDGET = Budget()


#: Beyond the exact search, ``auto`` keeps the better of two greedy regimes (the
#: global best pair, and opt_einsum's rule: see :func:`greedy_run`), then re-optimizes
#: exactly the subtrees (up to 5 leaves) of its most expensive nodes, once. That costs
#: about three greedy runs: an order of magnitude better trees than either greedy alone
#: on large networks, for little planning time.
AUTO_RECONFIGURE_K = 5
AUTO_RECONFIGURE_TOP = 8


def auto(network: Network, budget: Budget = DEFAULT_BUDGET) -> ContractionTree:
    """Exact where that is fast (small, or sparse enough); refined greedy otherwise."""
    n = network.num_tensors
    if 2 < n <= FULL_LIMIT and budget.objective.name != "flops":
        return full_dp(network, budget.objective)
    if n <= AUTO_EXACT_LIMIT:
        try:
            return bounded_optimal(network, AUTO_BUDGET)
        except OverBudget:
            pass
    obj = budget.objective
    runs = [greedy_run(network, regime="hybrid"), greedy_run(network)]
    if obj.name == "flops":  # the greedy runs count their flops exactly
        best = min(runs, key=lambda r: r[1])[0]
    else:
        best = min((t for t, _ in runs), key=lambda t: obj.score(tree_cost(network, t)))
    return reconfigure(network, best, k=AUTO_RECONFIGURE_K, objective=obj, max_passes=1,
                       top=AUTO_RECONFIGURE_TOP)


def _optimal(network: Network, budget: Budget) -> ContractionTree:
    if 2 < network.num_tensors <= FULL_LIMIT:
        return full_dp(network, budget.objective)
    return optimal(network)


def _greedy(network: Network, budget: Budget) -> ContractionTree:
    return greedy(network)


def naive(network: Network, budget: Budget = DEFAULT_BUDGET) -> ContractionTree:
    """Left-to-right order, no search (``optimize=False``)."""
    return ContractionTree.left_to_right(network.num_tensors)


OPTIMIZERS: dict[str, Optimizer] = {
    "auto": auto,
    "optimal": _optimal,
    "greedy": _greedy,
    "hyper": hyper,
    "naive": naive,
}

ALIASES: dict[str, str] = {
    "dp": "optimal",
    "branch-all": "optimal",
    "branch-2": "greedy",
    "branch-1": "greedy",
    "random-greedy": "hyper",
    "random-greedy-128": "hyper",
    "auto-hq": "hyper",
    "eager": "greedy",
}


def get_optimizer(name: str | bool | None) -> Optimizer:
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
