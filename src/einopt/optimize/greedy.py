"""Greedy contraction order, and its randomized (Boltzmann) variant.

Repeatedly merge the pair that shrinks memory the most: the score of merging ``a`` and
``b`` is ``size(ab) - alpha * (size(a) + size(b))`` (smaller is better). Only pairs that
share an index are candidates; disconnected parts are joined at the end by outer
products, smallest first. With ``temperature > 0`` each candidate's score gets Gumbel
noise, which samples merges from a Boltzmann distribution over scores: many fast
repeats of this explore trees the deterministic rule never sees.

Index sets are held sparsely (sets of index ids, sizes as exact ints), so a merge costs
time proportional to the indices involved, not to the network's size: 10,000-tensor
networks take about a second.
"""

from __future__ import annotations

import heapq
import math
import random
import time

from ..network import Network
from ..tree import ContractionTree, tree_cost
from .objective import FLOPS, Objective, OutOfTime
from .reference import reference_greedy

__all__ = ["greedy", "greedy_run", "greedy_tree", "random_greedy", "SWEEP_LIMIT"]

#: The sweeping regime (``"sweep"``) grows one tensor with many indices, so its cost
#: per merge grows with the network: searches try it only up to this many tensors.
SWEEP_LIMIT = 2000

#: Hyperedges held by more tensors than this are not enumerated pair by pair (that is
#: quadratic); a tensor joined only through them is paired with their smallest holders.
_WIDE = 32



def _transform(score: float) -> float:
    """A monotone map of a score to a scale where additive noise is meaningful."""
    magnitude = math.log2(abs(score) + 1)  # exact for huge ints, which floats overflow
    return magnitude if score >= 0 else -magnitude


#: How candidates are queued: every pair (``"global"``), each tensor's best partner only
#: (``"sweep"``), or every pair at first and the best partner of each new tensor after
#: (``"hybrid"``, the rule of opt_einsum's greedy).
REGIMES = ("global", "sweep", "hybrid")


def greedy_tree(network: Network, alpha: float = 1.0, temperature: float = 0.0,
                seed: int | None = None, regime: str = "global",
                deadline: float | None = None) -> ContractionTree:
    """Greedy tree; see :func:`greedy_run` for the parameters."""
    return greedy_run(network, alpha, temperature, seed, regime, deadline)[0]


def greedy_run(network: Network, alpha: float = 1.0, temperature: float = 0.0,
               seed: int | None = None, regime: str = "global",
               deadline: float | None = None) -> tuple[ContractionTree, int]:
    """Greedy tree and its flops, by cost ``size(ab) - alpha*(size(a)+size(b))``.

    ``temperature`` adds Gumbel noise to each candidate's cost (seeded by ``seed``).

    ``regime`` (see :data:`REGIMES`): where only a tensor's best partner is queued, a
    tensor whose partner is merged elsewhere waits until a neighbour's merge offers it
    again. Queuing best partners only tends to grow recent tensors, sweeping through
    the network, where ``"global"`` merges the globally best pair and grows many
    clusters at once. The regimes differ by orders of magnitude on some networks, each
    way, and the best-only ones queue fewer candidates (they run faster).

    Raises :class:`OutOfTime` once ``time.perf_counter()`` passes ``deadline``: with
    some parameters a run on a large hypergraph re-queues stale pairs for long.
    """
    if regime not in REGIMES:
        raise ValueError(f"unknown greedy regime {regime!r}; known: {', '.join(REGIMES)}")
    n = network.num_tensors
    if n <= 1:
        return ContractionTree(n, ()), 0
    rng = random.Random(seed)
    out = frozenset(i for i in network.output if network.output_mask >> i & 1)
    idx: dict[int, frozenset[int]] = {t: frozenset(term) for t, term in enumerate(network.terms)}
    sizes = network.sizes
    sz: dict[int, int] = {t: math.prod(sizes[i] for i in held) for t, held in idx.items()}
    counts = [0] * network.num_indices
    holders: list[set[int]] = [set() for _ in range(network.num_indices)]
    for t, held in idx.items():
        for i in held:
            counts[i] += 1
            holders[i].add(t)

    def result(sa: frozenset[int], sb: frozenset[int]) -> frozenset[int]:
        drop = [i for i in sa & sb if counts[i] == 2 and i not in out]
        return (sa | sb).difference(drop) if drop else sa | sb

    # Integer arithmetic throughout (sizes can exceed any float): alpha as a fraction
    # over 1024, so ties are exact and broken by age (older tensors first).
    a_num, a_den = round(alpha * 1024), 1024

    def score(x: int, y: int) -> int:
        # size(result) = size(a) * size(b) / size(shared) / size(summed), from the
        # (small) intersection alone: no union set is built per candidate.
        shared = idx[x] & idx[y]
        div = 1
        for i in shared:
            s = sizes[i]
            div *= s * s if counts[i] == 2 and i not in out else s
        size_r = sz[x] * sz[y] // div if div else math.prod(sizes[i] for i in
                                                               result(idx[x], idx[y]))
        return a_den * size_r - a_num * (sz[x] + sz[y])

    noise = temperature > 0

    def key(s: int) -> float:
        if not noise:
            return s
        return _transform(s) - temperature * math.log(-math.log(rng.random() or 1e-300))

    heap: list[tuple[float, int, int, int]] = []

    # Ties go to the pair whose newer tensor is older (the hybrid rule, opt_einsum's), or
    # whose older tensor is older.
    newer_first = regime == "hybrid"

    def neighbours(x: int, best_only: bool) -> list[tuple[float, int, int, int]]:
        ys: set[int] = set()
        big: list[int] = []
        for i in idx[x]:
            h = holders[i]
            if len(h) > _WIDE:
                big.append(i)
            else:
                ys.update(h)
        ys.discard(x)
        if big and not ys:
            # Joined only through wide hyperedges: pair with their smallest holders.
            pool = set().union(*(holders[i] for i in big))
            pool.discard(x)
            ys = set(heapq.nsmallest(_WIDE, pool, key=lambda t: (sz[t], t)))
        found = []
        for y in ys:
            s = score(x, y)
            pair = (x, y) if (x < y) != newer_first else (y, x)
            found.append((key(s) if noise else s, s, *pair))
        if best_only and found:
            return [min(found)]
        return found

    first_best = regime == "sweep"
    later_best = regime != "global"
    queued: set[tuple[int, int]] = set()  # every pair is found from both ends
    for x in range(n):
        if deadline is not None and not x & 1023 and time.perf_counter() > deadline:
            raise OutOfTime("greedy run stopped while queuing the first pairs")
        for c in neighbours(x, first_best):
            if (c[2], c[3]) not in queued:
                queued.add((c[2], c[3]))
                heap.append(c)
    heapq.heapify(heap)

    merges: list[tuple[int, int]] = []
    waiting: set[int] = set()  # best-only regimes: tensors whose queued partner was taken

    total = 0  # flops of the merges so far (exact)

    def merge(x: int, y: int) -> int:
        nonlocal total
        sa, sb = idx.pop(x), idx.pop(y)
        both = sa & sb
        shared = math.prod(sizes[i] for i in both)
        joint = sz[x] * sz[y] // shared if shared else math.prod(sizes[i] for i in sa | sb)
        total += joint
        r = result(sa, sb)
        summed = [i for i in both if i not in r]  # only shared indices can be summed
        for i in both:
            counts[i] -= 1
        for i in summed:
            counts[i] = 0
        for i in sa:
            holders[i].discard(x)
        for i in sb:
            holders[i].discard(y)
        z = n + len(merges)
        merges.append((x, y))
        for i in r:
            holders[i].add(z)
        idx[z] = r
        d = math.prod(sizes[i] for i in summed)
        sz[z] = joint // d if d else math.prod(sizes[i] for i in r)
        del sz[x], sz[y]
        return z

    pops = 0
    while heap:
        _, old, x, y = heapq.heappop(heap)
        pops += 1
        if deadline is not None and not pops & 15 and time.perf_counter() > deadline:
            raise OutOfTime(f"greedy run stopped after {pops} steps")
        if x not in idx or y not in idx:
            if later_best:
                waiting.update(t for t in (x, y) if t in idx)
                if not heap:  # every queued partner is gone: offer the waiting again
                    for item in (it for t in sorted(waiting) if t in idx
                                 for it in neighbours(t, True)):
                        heapq.heappush(heap, item)
                    waiting.clear()
            continue
        s2 = score(x, y)
        if s2 > old:  # stale (a hyperedge changed): re-queue with the current score
            heapq.heappush(heap, (key(s2), s2, x, y))
            continue
        z = merge(x, y)
        for item in neighbours(z, later_best):
            heapq.heappush(heap, item)

    # Disconnected parts: outer products, smallest first.
    rest = [(sz[x], x) for x in idx]
    heapq.heapify(rest)
    while len(rest) > 1:
        _, x = heapq.heappop(rest)
        _, y = heapq.heappop(rest)
        z = merge(x, y)
        heapq.heappush(rest, (sz[z], z))
    return ContractionTree(n, tuple(merges)), total


def greedy(network: Network) -> ContractionTree:
    """``optimize="greedy"``: opt_einsum's greedy tree, rebuilt exactly (so a drop-in call
    takes the path opt_einsum would), in a third to a half of its time."""
    return reference_greedy(network)


def random_greedy(network: Network, repeats: int = 32, seed: int | None = None,
                  objective: Objective = FLOPS, max_time: float | None = None
                  ) -> ContractionTree:
    """The best of ``repeats`` greedy trees (opt_einsum's ``random-greedy`` in spirit).

    The first two are the deterministic trees of the ``"global"`` and ``"hybrid"``
    regimes; each further one draws ``alpha`` in [0, 2], a temperature log-uniform in
    [0.001, 1] and a regime, seeded by ``seed`` (a fixed seed when None: the same
    network gets the same tree). ``max_time`` (seconds), when given, ends the repeats
    early. Trees are compared by ``objective``.
    """
    n = network.num_tensors
    if n <= 2:
        return greedy_tree(network)
    rng = random.Random(0 if seed is None else seed)
    deadline = None if max_time is None else time.perf_counter() + max_time
    exact = objective.name == "flops"  # greedy_run counts flops exactly
    best: ContractionTree | None = None
    best_score: float = math.inf
    for k in range(max(1, repeats)):
        if k == 0:
            tree, flops = greedy_run(network)
        elif k == 1:
            tree, flops = greedy_run(network, regime="hybrid")
        else:
            regime = REGIMES[rng.randrange(len(REGIMES))]
            if regime == "sweep" and n > SWEEP_LIMIT:
                regime = "hybrid"
            tree, flops = greedy_run(network, rng.uniform(0.0, 2.0),
                                     math.exp(rng.uniform(math.log(1e-3), 0.0)),
                                     rng.randrange(2**31), regime)
        score = flops if exact else objective.score(tree_cost(network, tree))
        if score < best_score or best is None:
            best, best_score = tree, score
        if deadline is not None and time.perf_counter() > deadline:
            break
    assert best is not None
    return best
