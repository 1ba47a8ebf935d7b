"""``hyper``: an anytime portfolio search that spends ``max_time`` and keeps the best tree.

The portfolio, for networks beyond the exact search's reach:

1. *sampling* (a quarter of the budget up to 300 tensors, more above): randomized
   greedy trees and recursive bisection trees, whose parameters are learned as the
   search goes (each method's draws perturb its best parameters so far half of the
   time, and explore otherwise; a method that keeps losing is drawn less); a method's
   first draw can be fixed (bisections' first options, :data:`.partition.PARTITION_FIRST`),
   and above 5,000 tensors that first bisection tree is drawn right after the greedy
   floor (cut at 0.7 of the budget): one or two such trees are all that fit there,
   and they decide the result;
2. *annealing* (most of the budget up to 3,000 tensors, what sampling leaves above, up
   to 50,000): simulated annealing over tree rotations, started from the best distinct
   trees of phase 1, a few chains with different temperatures;
3. *refinement*: exact reconfiguration of the best tree's subtrees: repeated passes
   over its costliest merges, then every subtree of up to 8-10 leaves.

With a memory limit every candidate is sliced before it is scored, so slicing and
tree choice are optimized together. Small networks are solved exactly. With
``budget.workers`` above 1, as many independent searches run at once (the others in
worker processes, :mod:`.workers`) and the best tree is kept.

The search pauses Python's cyclic garbage collector while it runs (as ``timeit`` does):
it makes no reference cycles, and a full collection walks the caller's whole heap, which
in a large process (a test run, a notebook) takes longer than a 1 s budget.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from ..network import Network
from ..tree import ContractionTree, tree_totals
from .acyclic import acyclic_tree
from .anneal import anneal
from .chain import chain_order, chain_tree
from .fast import MAX_COSTMOD, Compiled, accelerator
from .greedy import REGIMES, SWEEP_LIMIT, greedy_tree
from .objective import Budget, OutOfTime
from .optimal import FULL_LIMIT, OverBudget, bounded_optimal, full_dp
from .partition import (
    PARTITION_FIRST,
    kahypar_profile,
    partition_params,
    partition_tree,
    partition_tree_from,
)
from .reference import reference_greedy
from .refine import reconfigure
from .slicing import slice_tree
from .workers import collect, submit

__all__ = ["hyper", "DEFAULT_TIME"]

DEFAULT_TIME = 1.0
CHAIN_SHARE = 0.1  # of max_time, per annealing chain
CHAIN_SECONDS = 4e-10  # the chain dynamic program's time per n^3
ACYCLIC_SECONDS = 2e-6  # the acyclic search's time per split it prices
PROMISING = 1.0  # log10: sampled trees within 10x of the best are refined at once
RECONFIGURE_TOP = 32  # merges re-solved per refinement of a sampled tree
ALPHA_MAX = 16.0  # greedy's weight of the removed sizes, sampled log-uniformly up to this
SAMPLE_SHARE = 0.25  # of max_time: sampling greedy and partition trees
#: Above this many tensors no annealing chain is run (3,000 to 30,000 tensors gain from
#: the chains that follow sampling; larger networks are untried).
ANNEAL_LIMIT = 50_000
#: Sampling's share of the time is SAMPLE_SHARE up to SAMPLE_LIMIT tensors, then
#: LARGE_SAMPLE_SHARE up to HEAVY_LIMIT, then HEAVY_SAMPLE_SHARE (a draw is long there).
SAMPLE_LIMIT = 300
LARGE_SAMPLE_SHARE = 0.35
HEAVY_LIMIT = 3000
HEAVY_SAMPLE_SHARE = 0.85
PARTITION_LIMIT = 2000  # tensors
LARGE = 5000  # tensors: above, only compiled greedy trees are quick baselines
HUGE_FIRST_SHARE = 0.7  # of max_time: above LARGE, the first partition tree's deadline
_EXACT_BUDGET = 200_000
# Annealing temperatures, cycled over chains. Flop counts use TreeSA's local criterion
# (the log2 change of the two rotated merges' costs): a tree's total is dominated by its
# largest merges, so the global relative change barely sees moves elsewhere and the
# chains freeze. Objectives that count writes keep the global relative change.
LOCAL_TEMPS = (0.5, 0.25, 1.0)
LOCAL_T_END = 0.02
GLOBAL_TEMPS = (0.05, 0.01, 0.2)
GLOBAL_T_END = 1e-4


def _sliced_sizes(network: Network, tree: ContractionTree) -> list[int]:
    sizes = list(network.sizes)
    for i in tree.sliced:
        sizes[i] = 1
    return sizes


def _score(network: Network, budget: Budget, tree: ContractionTree) -> float:
    """How ``budget``'s objective scores ``tree`` (as sliced)."""
    cost = tree_totals(network, tree, _sliced_sizes(network, tree))
    slices = math.prod(network.sizes[i] for i in tree.sliced)
    return budget.objective.score(cost, slices)


class _Search:
    """Candidate trees so far, best first, and how they score."""

    def __init__(self, network: Network, budget: Budget, deadline: float) -> None:
        self.network = network
        self.budget = budget
        self.deadline = deadline
        self.pool: list[tuple[float, int, ContractionTree]] = []
        self.trials = 0

    def sizes(self, tree: ContractionTree) -> list[int]:
        return _sliced_sizes(self.network, tree)

    def offer(self, tree: ContractionTree) -> float:
        if self.budget.memory_limit is not None:
            tree = slice_tree(self.network, tree, self.budget.memory_limit)
        s = _score(self.network, self.budget, tree)
        self.trials += 1
        if all(abs(s - p[0]) > 1e-9 for p in self.pool):
            self.pool.append((s, self.trials, tree))
            self.pool.sort(key=lambda p: (p[0], p[1]))
            del self.pool[8:]
        return s

    @property
    def best(self) -> ContractionTree:
        return self.pool[0][2]

    @property
    def best_score(self) -> float:
        return self.pool[0][0] if self.pool else math.inf

    def refine(self, tree: ContractionTree, top: int) -> float:
        """Offer ``tree`` with its ``top`` costliest merges re-solved exactly (subtrees
        of up to 6 leaves, one pass); the refined tree's score."""
        return self.offer(reconfigure(self.network, tree, 6, self.budget.objective,
                                      self.deadline, self.sizes(tree), max_passes=1,
                                      top=top))

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


class _Method:
    """A tree sampler with learned parameters: perturb the best half of the time.

    ``make(params, seed, end)`` draws a tree (raising :class:`OutOfTime` past ``end``, a
    ``time.perf_counter()`` value); ``spread`` is how much longer than its last
    draw the next may take (a partition tree's time varies with its options)."""

    def __init__(self, name: str, sample: Callable[[random.Random, dict[str, float] | None],
                                                    dict[str, float]],
                 make: Callable[[dict[str, float], int, float], ContractionTree],
                 spread: float = 1.0, last: float = 0.0,
                 first: dict[str, float] | None = None) -> None:
        self.name = name
        self.first = first
        self.sample = sample
        self.make = make
        self.spread = spread
        self.best_params: dict[str, float] | None = None
        self.best_score = math.inf
        self.tries = 0
        self.last = last  # seconds its last draw took (before any: the expected time)

    def draw(self, rng: random.Random) -> dict[str, float]:
        self.tries += 1
        if self.tries == 1 and self.first is not None:
            return dict(self.first)
        exploit = self.best_params is not None and rng.random() < 0.5
        return self.sample(rng, self.best_params if exploit else None)

    def attempt(self, search: _Search, rng: random.Random, end: float
                ) -> tuple[dict[str, float], ContractionTree | None, float]:
        """One draw offered to ``search``: its parameters, tree and score (None and inf
        where it was cut at ``end``); ``last`` becomes its time, pricing included."""
        params = self.draw(rng)
        seed = rng.randrange(2**31)
        t0 = time.perf_counter()
        try:
            tree: ContractionTree | None = self.make(params, seed, end)
        except OutOfTime:
            tree = None
        score = math.inf if tree is None else search.offer(tree)
        self.last = time.perf_counter() - t0
        return params, tree, score

    def tell(self, params: dict[str, float], score: float) -> None:
        if score < self.best_score:
            self.best_params, self.best_score = params, score


def _greedy_params(rng: random.Random, near: dict[str, float] | None) -> dict[str, float]:
    if near is None:
        # alpha weighs the removed sizes: large values (up to 16) pay on hypergraphs
        return {"alpha": math.exp(rng.uniform(math.log(0.05), math.log(ALPHA_MAX))),
                "temperature": math.exp(rng.uniform(math.log(1e-3), 0.0)),
                "regime": float(rng.randrange(len(REGIMES)))}
    return {"alpha": min(2 * ALPHA_MAX, max(0.01, near["alpha"] * math.exp(rng.gauss(0, 0.2)))),
            "temperature": min(2.0, max(1e-3, near["temperature"] * math.exp(rng.gauss(0, 0.5)))),
            "regime": near["regime"] if rng.random() < 0.8 else float(rng.randrange(len(REGIMES)))}


def _regime(params: dict[str, float], n: int) -> str:
    return _fit(REGIMES[int(params["regime"])], n)


def _fit(regime: str, n: int) -> str:
    """``regime``, with "sweep" (quadratic per step) replaced by "hybrid" above its limit."""
    return "hybrid" if regime == "sweep" and n > SWEEP_LIMIT else regime


def _compiled_params(rng: random.Random, near: dict[str, float] | None) -> dict[str, float]:
    if near is None:
        return {"costmod": math.exp(rng.uniform(math.log(0.1), math.log(MAX_COSTMOD))),
                "temperature": math.exp(rng.uniform(math.log(1e-3), 0.0))}
    return {"costmod": min(MAX_COSTMOD, max(0.1, near["costmod"] * math.exp(rng.gauss(0, 0.2)))),
            "temperature": min(1.0, max(1e-3, near["temperature"] * math.exp(rng.gauss(0, 0.5))))}


_PAUSES = {"depth": 0, "was_enabled": False}
_PAUSE_LOCK = threading.Lock()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic collector off while any search runs (nested and concurrent searches
    counted), then back to the state it had before the first began."""
    with _PAUSE_LOCK:
        if _PAUSES["depth"] == 0:
            _PAUSES["was_enabled"] = gc.isenabled()
            gc.disable()
        _PAUSES["depth"] += 1
    try:
        yield
    finally:
        with _PAUSE_LOCK:
            _PAUSES["depth"] -= 1
            if _PAUSES["depth"] == 0 and _PAUSES["was_enabled"]:
                gc.enable()


def hyper(network: Network, budget: Budget) -> ContractionTree:
    """Best tree found within ``budget.max_time`` seconds (1 s by default); with
    ``budget.workers`` above 1, the best of that many independent searches."""
    if budget.workers > 1 and network.num_tensors > FULL_LIMIT:
        return _best_of_workers(network, budget)
    with _collector_paused():
        return _hyper(network, budget)


#: Seeds of the searches in worker processes: the caller's seed plus multiples of this.
WORKER_SEED_STEP = 7919


def _best_of_workers(network: Network, budget: Budget) -> ContractionTree:
    """This process's search and ``budget.workers - 1`` more in worker processes, on
    one clock (set-up and start-up count against ``max_time``); the best tree, this
    process's where scores tie. Workers late or failed add nothing."""
    total = DEFAULT_TIME if budget.max_time is None else budget.max_time
    start = time.perf_counter() if budget.started is None else budget.started
    wall_start = time.time() - (time.perf_counter() - start)
    own = replace(budget, started=start, workers=1)
    seeds = [None if budget.seed is None else budget.seed + WORKER_SEED_STEP * k
             for k in range(1, budget.workers)]
    futures = submit(_search_alone, [(network, replace(own, seed=s, progress=False),
                                      wall_start) for s in seeds])
    best = hyper(network, own)
    best_score = _score(network, budget, best)
    for tree in collect(futures, start + WORKERS_WAIT * total):
        score = _score(network, budget, tree)
        if score < best_score:
            best, best_score = tree, score
    return best


#: Share of ``max_time`` after which workers' trees are no longer waited for (their
#: searches end at 0.95 of it, as this process's does).
WORKERS_WAIT = 0.98


def _search_alone(network: Network, budget: Budget, wall_start: float) -> ContractionTree:
    """One search in a worker process, its clock started when the caller's was
    (``wall_start``, a ``time.time()`` value: the processes share no other clock)."""
    started = time.perf_counter() - (time.time() - wall_start)
    return hyper(network, replace(budget, started=started))


def _hyper(network: Network, budget: Budget) -> ContractionTree:
    n = network.num_tensors
    total = DEFAULT_TIME if budget.max_time is None else budget.max_time
    start = time.perf_counter() if budget.started is None else budget.started
    search = _Search(network, budget, start + 0.95 * total)
    report = _progress(budget, total)
    obj = budget.objective
    if n <= FULL_LIMIT:
        search.offer(full_dp(network, obj) if n > 2 else bounded_optimal(network, None))
        if budget.memory_limit is not None:
            best = search.best
            search.offer(reconfigure(network, best, 8, obj, search.deadline,
                                     search.sizes(best)))
        report(total, search.best_score)
        return search.best

    rng = random.Random(budget.seed)
    module = accelerator()
    compiled = Compiled(network, module) if module is not None else None
    # The floor, whatever the budget (a budget below its time, about 30 us per tensor, is
    # overrun): opt_einsum's greedy tree (see .reference), so hyper never loses to auto.
    t0 = time.perf_counter()
    search.offer(reference_greedy(network))
    one = time.perf_counter() - t0  # about the time of one greedy run and its scoring
    # A chain is solved exactly where its O(n^3) dynamic program fits the budget.
    if CHAIN_SECONDS * n**3 < 0.5 * search.time_left() and chain_order(network) is not None:
        exact = chain_tree(network, obj)
        if exact is not None:
            search.offer(exact)
    # So is an acyclic network where its search over connected parts fits.
    exact = acyclic_tree(network, obj, max_work=int(0.4 * search.time_left() / ACYCLIC_SECONDS))
    if exact is not None:
        search.offer(exact)
    # Quick baselines: the other greedy regimes, compiled greedy trees, a partition tree.
    quick: list[Callable[[], ContractionTree]] = []
    if compiled is not None:
        quick += [compiled.greedy, lambda: compiled.greedy(costmod=0.5)]
    if n <= LARGE:  # above, a draw takes a sizable share of the budget: sampling decides
        quick += [lambda: greedy_tree(network, deadline=search.deadline),
                  lambda: greedy_tree(network, regime="hybrid", deadline=search.deadline)]
    if n <= SWEEP_LIMIT:
        quick.append(lambda: greedy_tree(network, regime="sweep", deadline=search.deadline))
    if n <= PARTITION_LIMIT or (n <= LARGE and kahypar_profile() is not None):
        quick.append(lambda: partition_tree(network, seed=rng.randrange(2**31), objective=obj,
                                            deadline=search.deadline))
    for make in quick:
        if search.time_left() < 0.75 * total:
            break
        _offer(search, make)
    for seed in range(4 if n <= LARGE else 0):  # the randomized greedy trees of auto_hq
        if search.time_left() < 0.6 * total + one:
            break
        regime = _fit("sweep", n) if seed % 2 else "global"
        _offer(search, functools.partial(greedy_tree, network, temperature=0.1, seed=seed,
                                         regime=regime, deadline=search.deadline))

    # Phase 1's methods: trees sampled with learned parameters. Untried methods are drawn
    # first: cheapest first, but partition trees first on large networks (where they are
    # often far better, and slow). Until one is timed, a greedy draw is expected to take
    # as long as the first run (compiled ones too: their pricing in Python is a sizable
    # part of a run).
    greedy = _Method("greedy", _greedy_params, lambda p, seed, end: greedy_tree(
        network, p["alpha"], p["temperature"], seed, _regime(p, n), deadline=end), last=one)
    methods = []
    if compiled is not None:
        methods.append(_Method("compiled", _compiled_params, lambda p, seed, end:
                               compiled.greedy(p["costmod"], p["temperature"], seed), last=one))
    if compiled is None or n <= LARGE:  # above, one Python draw outlasts most budgets
        methods.append(greedy)
    if n <= PARTITION_LIMIT or kahypar_profile() is not None:  # built-in: too slow above
        part = _Method("partition", partition_params, lambda p, seed, end: partition_tree_from(
            network, p, seed, obj, deadline=end), spread=2.0, first=PARTITION_FIRST)
        if n > LARGE:  # one or two such trees fit: the first is drawn now, cut where the
            methods.insert(0, part)  # refinement below would no longer fit after it
            params, _, score = part.attempt(search, rng, start + HUGE_FIRST_SHARE * total)
            part.tell(params, score)
        else:
            methods.append(part)
    # The best tree so far, its costliest merges re-solved (above LARGE: auto's gain at
    # least, where the partition tree loses to the greedy floor).
    if search.time_left() > (one if n > LARGE else 0.5 * total):
        search.refine(search.best, 24)
    if n <= 2 * FULL_LIMIT and obj.name == "flops":
        try:
            search.offer(bounded_optimal(network, _EXACT_BUDGET))
        except OverBudget:
            pass

    share = (SAMPLE_SHARE if n <= SAMPLE_LIMIT
             else LARGE_SAMPLE_SHARE if n <= HEAVY_LIMIT else HEAVY_SAMPLE_SHARE)
    sampler = _Sampler(search, methods, rng, total, one)
    sampler.run(start + share * total, report, start, leader_stops=True)

    # Phase 2: short annealing chains (annealing is seed-sensitive: many short chains
    # beat one long one), from the best distinct trees first, then alternately from the
    # best so far and from fresh randomized greedy trees.
    starts = [p[2] for p in search.pool[:3]]
    local = obj.name == "flops"
    temps, t_end = (LOCAL_TEMPS, LOCAL_T_END) if local else (GLOBAL_TEMPS, GLOBAL_T_END)
    chain = 0
    setup = one  # a chain's set-up (until a probe is timed: about a greedy run's time)
    while search.time_left() > 0.1 * total + setup and n <= ANNEAL_LIMIT:
        per_chain = min(search.time_left() - 0.1 * total, CHAIN_SHARE * total)
        if chain < len(starts):
            tree = starts[chain]
        elif chain % 2:
            tree = search.best
        else:
            params = _greedy_params(rng, greedy.best_params)
            tree = greedy_tree(network, params["alpha"], params["temperature"],
                               rng.randrange(2**31),
                               _regime(params, n))
        # Calibrate: moves per second on this network, then a schedule that fits.
        t0 = time.perf_counter()
        probe = anneal(network, tree, 512, rng.randrange(2**31), obj, search.sizes(tree),
                       t_start=temps[chain % 3], t_end=temps[chain % 3], local=local)
        setup = time.perf_counter() - t0
        rate = 512 / max(setup, 1e-6)
        search.offer(probe)
        moves = max(1024, int(rate * per_chain))
        deadline = min(search.deadline - 0.1 * total, time.perf_counter() + per_chain)
        if deadline - time.perf_counter() < setup:
            break  # the chain's set-up alone would outlast it (huge networks)
        tree = anneal(network, tree, moves, rng.randrange(2**31), obj, search.sizes(tree),
                      t_start=temps[chain % 3], t_end=t_end, deadline=deadline, local=local)
        search.offer(tree)
        chain += 1
        report(time.perf_counter() - start, search.best_score)

    # Phase 3: exact refinement of the best tree's subtrees, then more samples while
    # time is left (a large network's phases end early: each draw is long).
    _polish(search, one)
    for k in (8, 10):
        if search.time_left() <= 2 * one:  # its set-up alone takes about a greedy run
            break
        best = search.best
        search.offer(reconfigure(network, best, k, obj, search.deadline, search.sizes(best)))
    sampler.run(search.deadline, report, start)
    report(total, search.best_score)
    return search.best


def _polish(search: _Search, one: float) -> None:
    """Passes over the best tree's costliest merges, re-solved exactly, while they gain.

    Each gain moves the costliest merges elsewhere, so passes over a few of them repeat
    (on 10,000 tensors four such passes took a partition tree from 10^777 to 10^680 in
    1.8 s, where one pass over every merge took 4 s for 10^676); a pass that gains
    nothing widens the next one fourfold, up to every merge. A pass is started where
    most of the last one's time (at first, a greedy run's: about its set-up) is left.
    """
    top = RECONFIGURE_TOP
    last = one
    while top < 4 * search.network.num_tensors and search.time_left() > 0.8 * last:
        before = search.best_score
        t0 = time.perf_counter()
        search.refine(search.best, top)
        last = time.perf_counter() - t0
        if search.best_score >= before - 1e-9:
            top *= 4


def _offer(search: _Search, make: Callable[[], ContractionTree]) -> float:
    """Offer ``make()``'s tree; a run cut at the deadline offers nothing."""
    try:
        return search.offer(make())
    except OutOfTime:
        return math.inf


class _Sampler:
    """Phase 1: trees drawn from the methods with learned parameters, the promising
    ones refined at once; each method is drawn only where its last draw's time fits
    (with ``leader_stops``, sampling ends once the leading method's draw no longer fits:
    the phases after it refine that method's trees, which beats drawing losers)."""

    def __init__(self, search: _Search, methods: list[_Method], rng: random.Random,
                 total: float, one: float) -> None:
        self.search, self.methods, self.rng = search, methods, rng
        self.total, self.one = total, one

    def run(self, end: float, report: Callable[[float, float], None], start: float,
            leader_stops: bool = False) -> None:
        search, rng = self.search, self.rng
        while search.time_left() > 0:
            now = time.perf_counter()
            fits = [m for m in self.methods if now + max(m.last * m.spread, 0.1 * self.one) <= end]
            leader = min(self.methods, key=lambda m: m.best_score)
            if not fits or (leader_stops and leader not in fits
                            and leader.best_score < math.inf):
                break  # the leading method's draw no longer fits: refining pays more
            # Draw the method whose best is better more often.
            m = min(fits, key=lambda m: (m.tries > 0, m.best_score, m.tries))
            if rng.random() < 0.3:
                m = fits[rng.randrange(len(fits))]
            before = search.best_score
            params, tree, score = m.attempt(search, rng, search.deadline)
            if tree is None:
                continue
            if score <= before + PROMISING and search.time_left() > 0.1 * self.total:
                # Promising: its costliest merges re-solved exactly (as the final
                # refinement does), which often turns a near miss into the best tree.
                score = min(score, search.refine(tree, RECONFIGURE_TOP))
            m.tell(params, score)
            report(time.perf_counter() - start, search.best_score)
