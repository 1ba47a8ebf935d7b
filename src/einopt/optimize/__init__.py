"""Stage 4: path optimizers, each ``Network -> ContractionTree``, and their registry.

Strategy names are parsed once at the api into a function from this registry; the
names of opt_einsum's strategies are accepted as aliases of the nearest einopt one.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

from ..errors import PathError
from ..network import Network
from ..tree import ContractionTree, tree_cost
from .acyclic import acyclic_tree
from .chain import chain_tree
from .external import External, external_tree
from .fast import Compiled, accelerator
from .greedy import greedy, greedy_tree, random_greedy
from .hyper import hyper
from .objective import FLOPS, Budget, Objective, max_time_of, parse_objective, workers_of
from .optimal import FULL_LIMIT, OverBudget, bounded_optimal, full_dp, optimal
from .reference import reference_greedy
from .refine import reconfigure

__all__ = [
    "Budget",
    "External",
    "Objective",
    "Optimizer",
    "OPTIMIZERS",
    "auto",
    "auto_hq",
    "external_tree",
    "get_optimizer",
    "greedy",
    "greedy_tree",
    "hyper",
    "max_time_of",
    "optimal",
    "parse_objective",
    "random_greedy",
    "workers_of",
]

Optimizer = Callable[[Network, Budget], ContractionTree]

#: ``auto`` tries the exact search up to this many tensors, within a work budget
#: (pair evaluations) that keeps it to milliseconds, and falls back to greedy; up to
#: AUTO_FULL_LIMIT tensors over all subsets, outer products included (about 10 ms at
#: 10 tensors, 90 ms at 12), above over connected subsets, unbudgeted up to 12 tensors
#: (11 ms at 12, at most the all-subsets search's 3^n pairs).
AUTO_EXACT_LIMIT = 20
AUTO_BUDGET = 50_000
AUTO_FULL_LIMIT = 10
DEFAULT_BUDGET = Budget()


#: Beyond the exact search, ``auto`` starts from opt_einsum's greedy tree (rebuilt exactly,
#: in about half its time: see :mod:`.reference`), so it is never worse than it, and
#: re-solves exactly the subtrees (up to 5 leaves) of its most expensive merges, once.
#: (The compiled greedy of the ``fast`` extra would add its trees' pricing in Python to
#: every call, which costs more than it saves here: ``hyper`` and ``optimal`` use it.)
AUTO_RECONFIGURE_K = 5
AUTO_RECONFIGURE_TOP = 8
#: Chains up to this length get the exact chain dynamic program (O(n^3): longer ones
#: would plan slower than greedy; ``optimal`` and ``hyper`` solve any length).
AUTO_CHAIN_LIMIT = 100
#: Acyclic networks (tensors joined as a tree) that the bounded exact search above gives
#: up on, or that are too large for it, get their own exact search where it prices at
#: most this many splits (tens of milliseconds: see .acyclic, whose work is known
#: before it starts).
AUTO_ACYCLIC_WORK = 20_000


def refined_greedy(network: Network, obj: Objective, top: int = AUTO_RECONFIGURE_TOP
                   ) -> ContractionTree:
    """``auto`` past the exact search: opt_einsum's greedy tree, its costliest merges
    re-solved exactly."""
    return reconfigure(network, reference_greedy(network), k=AUTO_RECONFIGURE_K,
                       objective=obj, max_passes=1, top=top)


def auto(network: Network, budget: Budget = DEFAULT_BUDGET) -> ContractionTree:
    """Exact where that is fast (small, or sparse enough); refined greedy otherwise, never
    worse than opt_einsum's greedy."""
    n = network.num_tensors
    if 2 < n <= FULL_LIMIT and budget.objective.name != "flops":
        return full_dp(network, budget.objective)
    if n > FULL_LIMIT and n <= AUTO_CHAIN_LIMIT:
        exact = chain_tree(network, budget.objective)
        if exact is not None:
            return _never_worse(network, exact, budget.objective)
    if n <= AUTO_EXACT_LIMIT:
        try:
            exact = bounded_optimal(network, None if n <= FULL_LIMIT else AUTO_BUDGET,
                                    AUTO_FULL_LIMIT)
        except OverBudget:
            pass
        else:  # the bounded exact search can miss a cheaper greedy tree (a random
            # 18-tensor network: 183 flops against 177): the cheaper one is kept
            return _cheaper(network, exact, reference_greedy(network))
    if n > FULL_LIMIT:  # an acyclic network whose exact search is known to be small
        exact = acyclic_tree(network, budget.objective, max_work=AUTO_ACYCLIC_WORK)
        if exact is not None:
            return _never_worse(network, exact, budget.objective)
    return refined_greedy(network, budget.objective)


def _never_worse(network: Network, exact: ContractionTree, objective: Objective
                 ) -> ContractionTree:
    """An exact tree over trees without outer products, checked against opt_einsum's
    greedy tree only where that can fall outside them: greedy merges tensors that share
    an index, which on a chain or an acyclic network are neighbours, unless an index
    every tensor holds links them all."""
    if functools.reduce(operator.and_, network.masks) == 0:
        return exact
    return _cheaper(network, exact, reference_greedy(network), objective)


def _cheaper(network: Network, tree: ContractionTree, other: ContractionTree,
             objective: Objective = FLOPS) -> ContractionTree:
    """``tree`` unless ``other`` scores better under ``objective`` (ties keep ``tree``)."""
    if objective.name == "flops":  # exact ints
        return tree if tree_cost(network, tree).flops <= tree_cost(network, other).flops \
            else other
    return tree if objective.score(tree_cost(network, tree)) <= \
        objective.score(tree_cost(network, other)) else other


def _optimal(network: Network, budget: Budget) -> ContractionTree:
    if 2 < network.num_tensors <= FULL_LIMIT:
        return full_dp(network, budget.objective)
    exact = chain_tree(network, budget.objective)  # the same search, in O(n^3) numpy
    if exact is not None:
        return exact
    module = accelerator()
    if module is not None and budget.objective.name == "flops":
        # the same search over connected subsets, compiled
        compiled = Compiled(network, module).optimal(budget.objective, outer=False)
        if compiled is not None:
            return compiled
    return optimal(network)


def _greedy(network: Network, budget: Budget) -> ContractionTree:
    return greedy(network)


def naive(network: Network, budget: Budget = DEFAULT_BUDGET) -> ContractionTree:
    """Left-to-right order, no search (``optimize=False``)."""
    return ContractionTree.left_to_right(network.num_tensors)


#: Repeats of opt_einsum's ``random-greedy`` and ``random-greedy-128``.
RANDOM_REPEATS = 32
RANDOM_REPEATS_HQ = 128
#: ``auto-hq`` solves exactly up to this many tensors within this work budget (pair
#: evaluations; opt_einsum's ``auto-hq`` runs its dynamic programming up to 16 tensors).
AUTO_HQ_EXACT_LIMIT = 16
AUTO_HQ_BUDGET = 500_000


def _sampled(network: Network, budget: Budget, repeats: int) -> ContractionTree:
    """The best of ``repeats`` randomized greedy trees, refined as ``auto`` refines its
    greedy tree (once, its costliest subtrees exactly)."""
    obj = budget.objective
    best = random_greedy(network, repeats, budget.seed, obj, budget.max_time)
    return reconfigure(network, best, k=AUTO_RECONFIGURE_K, objective=obj, max_passes=1,
                       top=AUTO_RECONFIGURE_TOP)


def _random_greedy(network: Network, budget: Budget) -> ContractionTree:
    return _sampled(network, budget, RANDOM_REPEATS)


def _random_greedy_128(network: Network, budget: Budget) -> ContractionTree:
    return _sampled(network, budget, RANDOM_REPEATS_HQ)


def auto_hq(network: Network, budget: Budget = DEFAULT_BUDGET) -> ContractionTree:
    """A higher-quality ``auto`` of bounded work: exact up to 16 tensors (within a work
    budget), else the best of 128 randomized greedy trees, refined once by exact
    re-optimization of its costliest subtrees."""
    n = network.num_tensors
    obj = budget.objective
    if 2 < n <= FULL_LIMIT:
        return full_dp(network, obj)
    if n <= AUTO_HQ_EXACT_LIMIT and obj.name == "flops":
        try:
            return bounded_optimal(network, AUTO_HQ_BUDGET)
        except OverBudget:
            pass
    best = random_greedy(network, RANDOM_REPEATS_HQ, budget.seed, obj, budget.max_time)
    return reconfigure(network, best, k=AUTO_RECONFIGURE_K + 1, objective=obj, max_passes=1,
                       top=2 * AUTO_RECONFIGURE_TOP)


#: einopt's strategies by name. ``random-greedy``, ``random-greedy-128`` and ``auto-hq``
#: are opt_einsum's names for searches of fixed work (milliseconds on small networks),
#: unlike ``hyper``, which spends its whole time budget.
OPTIMIZERS: dict[str, Optimizer] = {
    "auto": auto,
    "optimal": _optimal,
    "greedy": _greedy,
    "hyper": hyper,
    "naive": naive,
    "random-greedy": _random_greedy,
    "random-greedy-128": _random_greedy_128,
    "auto-hq": auto_hq,
}

#: The rest of opt_einsum's strategy names (``opt_einsum.paths._PATH_OPTIONS``), each an
#: alias of the einopt search of similar cost: its exhaustive searches (``optimal``,
#: ``dp``, ``branch-all``) are exact, ``branch-2`` (a pruned exhaustive search) is
#: ``auto`` (exact within a work budget), and its single-pass heuristics are greedy.
ALIASES: dict[str, str] = {
    "dp": "optimal",
    "dynamic-programming": "optimal",
    "branch-all": "optimal",
    "branch-2": "auto",
    "branch-1": "greedy",
    "eager": "greedy",
    "opportunistic": "greedy",
}


def get_optimizer(name: str | bool | Callable[..., Any] | None) -> Optimizer:
    """The optimizer for a strategy name (``True`` means ``"auto"``, ``False`` no search),
    or for another library's optimizer object or path function (see :mod:`.external`)."""
    if name is True:
        return auto
    if name is False or name is None:
        return naive
    if isinstance(name, str):
        key = name.lower()  # opt_einsum's names are case-insensitive
        key = ALIASES.get(key, key)
        if key in OPTIMIZERS:
            return OPTIMIZERS[key]
    elif isinstance(name, External):
        return name.tree
    elif callable(name):
        return External(name).tree
    known = ", ".join(sorted([*OPTIMIZERS, *ALIASES]))
    raise PathError(f"unknown optimize strategy {name!r}; known: {known}")
