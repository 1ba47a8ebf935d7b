"""Stage 4: path optimizers, each ``Network -> ContractionTree``, and their registry.

Strategy names are parsed once at the api into a function from this registry; the
names of opt_einsum's strategies are accepted as aliases of the nearest einopt one.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import PathError
from ..network import Network
from ..tree import ContractionTree, tree_cost
from .greedy import SWEEP_LIMIT, greedy, greedy_run, greedy_tree
from .hyper import hyper
from .objective import Budget, Objective, parse_objective
from .optimal import FULL_LIMIT, OverBudget, _full_dp, bounded_optimal, optimal
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


#: Beyond the exact search, ``auto`` keeps the best of the two greedy regimes (global
#: best pair, and sweeping: see :func:`greedy_tree`) and this many randomized greedy
#: trees (greedy is fragile: ties broken differently can change the cost by orders of
#: magnitude), then reconfigures the subtrees (up to 6 leaves) of its most expensive
#: nodes once.
AUTO_GREEDY_TRIALS = 4
AUTO_TEMPERATURE = 0.1
AUTO_RECONFIGURE_TOP = 24


def auto(network: Network, budget: Budget = DEFAULT_BUDGET) -> ContractionTree:
    """Exact where that is fast (small, or sparse enough); refined greedy otherwise."""
    n = network.num_tensors
    if 2 < n <= FULL_LIMIT and budget.objective.name != "flops":
        return _full_dp(network, budget.objective)
    if n <= AUTO_EXACT_LIMIT:
        try:
            return bounded_optimal(network, AUTO_BUDGET)
        except OverBudget:
            pass
    obj = budget.objective
    # Each randomized trial costs a greedy run: fewer on very large networks (about a
    # second each at 10,000 tensors).
    trials = AUTO_GREEDY_TRIALS if n <= 1000 else 1 if n <= 4000 else 0
    runs = [greedy_run(network)]
    if n <= SWEEP_LIMIT:
        runs.append(greedy_run(network, best_only=True))
    runs += [greedy_run(network, temperature=AUTO_TEMPERATURE, seed=seed)
             for seed in range(trials)]
    candidates = [tree for tree, _ in runs]
    scored: list[tuple[float, int]]
    if obj.name == "flops":  # the greedy runs count their flops exactly
        scored = sorted((flops, k) for k, (_, flops) in enumerate(runs))
    else:
        scored = sorted((obj.score(tree_cost(network, t)), k) for k, t in enumerate(candidates))
    # Refinement can reorder close candidates: refine the best two, keep the better.
    refined = [reconfigure(network, candidates[k], k=6, objective=obj, max_passes=1,
                           top=AUTO_RECONFIGURE_TOP) for _, k in scored[:2]]
    return min(refined, key=lambda t: obj.score(tree_cost(network, t)))


def _optimal(network: Network, budget: Budget) -> ContractionTree:
    if 2 < network.num_tensors <= FULL_LIMIT:
        return _full_dp(network, budget.objective)
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
