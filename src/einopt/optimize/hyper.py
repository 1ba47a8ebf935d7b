"""``hyper``: an anytime portfolio search that spends ``max_time`` and keeps the best tree.

The portfolio: the exact search where it is cheap; randomized greedy trees whose
parameters (``alpha``, ``temperature``) are learned as the search goes (half the draws
perturb the best parameters so far, half explore); and subtree reconfiguration of
every promising tree. The last part of the budget refines the best tree with larger
subtrees. With a memory limit every candidate is sliced before it is scored, so
slicing and tree choice are optimized together.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any

from ..network import Network
from ..tree import ContractionTree, tree_cost
from .greedy import greedy_tree
from .objective import Budget
from .optimal import FULL_LIMIT, OverBudget, _full_dp, bounded_optimal
from .refine import reconfigure
from .slicing import slice_tree

__all__ = ["hyper", "DEFAULT_TIME"]

DEFAULT_TIME = 1.0
_EXACT_BUDGET = 200_000


class _Search:
    """The best tree so far and how it scores."""

    def __init__(self, network: Network, budget: Budget, deadline: float) -> None:
        self.network = network
        self.budget = budget
        self.deadline = deadline
        self.best: ContractionTree | None = None
        self.best_score = math.inf
        self.trials = 0

    def sizes(self, tree: ContractionTree) -> list[int]:
        sizes = list(self.network.sizes)
        for i in tree.sliced:
            sizes[i] = 1
        return sizes

    def score(self, tree: ContractionTree) -> tuple[ContractionTree, float]:
        if self.budget.memory_limit is not None:
            tree = slice_tree(self.network, tree, self.budget.memory_limit)
        cost = tree_cost(self.network, tree, self.sizes(tree))
        slices = math.prod(self.network.sizes[i] for i in tree.sliced)
        return tree, self.budget.objective.score(cost, slices)

    def offer(self, tree: ContractionTree) -> float:
        tree, s = self.score(tree)
        self.trials += 1
        if s < self.best_score:
            self.best, self.best_score = tree, s
        return s

    def refine(self, tree: ContractionTree, k: int) -> ContractionTree:
        tree, _ = self.score(tree)
        return reconfigure(self.network, tree, k=k, objective=self.budget.objective,
                           deadline=self.deadline, sizes=self.sizes(tree))

    def time_left(self) -> float:
        return self.deadline - time.perf_counter()


def _progress(budget: Budget, total: float) -> Callable[[float, float], None]:
    if not budget.progress:
        return lambda done, best: None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - optional extra
        from ..errors import PathError

        raise PathError("progress=True needs the tqdm package (pip install tqdm)") from None
    bar: Any = tqdm(total=round(total, 2), unit="s", desc="hyper", leave=False)

    def update(done: float, best: float) -> None:
        bar.n = round(min(done, total), 2)
        bar.set_postfix(log10_cost=f"{best:.3f}", refresh=False)
        bar.refresh()
        if done >= total:
            bar.close()

    return update


def hyper(network: Network, budget: Budget) -> ContractionTree:
    """Best tree found within ``budget.max_time`` seconds (1 s by default)."""
    n = network.num_tensors
    total = DEFAULT_TIME if budget.max_time is None else budget.max_time
    start = time.perf_counter()
    # Leave time for the final slicing and bookkeeping.
    search = _Search(network, budget, start + 0.92 * total)
    report = _progress(budget, total)
    if n <= FULL_LIMIT:
        tree = _full_dp(network, budget.objective) if n > 2 else bounded_optimal(network, None)
        search.offer(tree)
        if budget.memory_limit is not None:
            search.offer(search.refine(tree, 8))
        report(total, search.best_score)
        assert search.best is not None
        return search.best

    rng = random.Random(budget.seed)
    base = greedy_tree(network)
    search.offer(base)
    search.offer(search.refine(base, 8))
    if n <= 2 * FULL_LIMIT and budget.objective.name == "flops":
        try:
            search.offer(bounded_optimal(network, _EXACT_BUDGET))
        except OverBudget:
            pass

    best_params = (1.0, 0.0)
    params_score = math.inf
    k = 8
    while search.time_left() > 0.15 * total:
        if rng.random() < 0.5 and params_score < math.inf:
            alpha = min(4.0, max(0.0, best_params[0] * math.exp(rng.gauss(0, 0.25))))
            temp = min(2.0, max(1e-3, max(best_params[1], 1e-3) * math.exp(rng.gauss(0, 0.5))))
        else:
            alpha = rng.uniform(0.0, 2.0)
            temp = math.exp(rng.uniform(math.log(1e-3), math.log(1.0)))
        tree = greedy_tree(network, alpha, temp, rng.randrange(2**31))
        s = search.offer(tree)
        if s < params_score:
            best_params, params_score = (alpha, temp), s
        if s <= search.best_score + 0.3:  # promising: refine it
            search.offer(search.refine(tree, k))
        report(time.perf_counter() - start, search.best_score)
    # Final phase: deepen the refinement of the best tree.
    assert search.best is not None
    for k in (10, 12):
        if search.time_left() <= 0:
            break
        search.offer(search.refine(search.best, k))
    report(total, search.best_score)
    return search.best
