"""Simulated annealing over tree rotations (in the spirit of TreeSA).

A rotation at node ``v = (x, (b, c))`` swaps ``x`` with ``b`` or with ``c``; only the
inner node's index set and the two nodes' step costs change, so a move is evaluated
in time independent of the tree's size. Uphill moves are accepted with probability
``exp(-d / T)`` while ``T`` cools geometrically over ``moves`` moves; the best tree seen
is returned. ``d`` is the relative change of the whole tree's cost (the global
criterion) or, with ``local=True`` and a flop objective, the change of
``log2`` of the two rotated merges' summed cost (TreeSA's local criterion, which keeps
moves far from the dominant merges alive on large networks). The same seed and number of
moves give the same tree; a deadline may stop the schedule early.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence

from ..network import Network
from ..tree import ContractionTree, append_merges, tree_cost
from .objective import FLOPS, Objective

__all__ = ["anneal"]


def anneal(network: Network, tree: ContractionTree, moves: int, seed: int | None = None,
           objective: Objective = FLOPS, sizes: Sequence[int] | None = None,
           t_start: float = 0.05, t_end: float = 1e-4,
           deadline: float | None = None, local: bool = False) -> ContractionTree:
    """``tree`` improved by ``moves`` annealing moves (or until ``deadline``)."""
    n = tree.num_leaves
    if n < 3:
        return tree
    sizes = network.sizes if sizes is None else sizes
    log2 = [math.log2(s) if s > 0 else -1e9 for s in sizes]
    cost = tree_cost(network, tree, sizes)
    mask = list(cost.node_masks)
    kids: list[tuple[int, int] | None] = [None] * n + list(tree.merges)
    size_cache: dict[int, float] = {}

    def lsize(m: int) -> float:
        v = size_cache.get(m)
        if v is None:
            v = 0.0
            rest = m
            while rest:
                low = rest & -rest
                v += log2[low.bit_length() - 1]
                rest ^= low
            if len(size_cache) > 200_000:
                size_cache.clear()
            size_cache[m] = v
        return v

    write = objective.name in ("write", "combo")
    wflops = 0.0 if objective.name == "write" else 1.0
    wwrite = objective.factor if objective.name == "combo" else (1.0 if write else 0.0)
    # Costs relative to the tree's largest merge, so they stay in float range; a move
    # that would pass 2^1000 times it counts as infinite (rejected).
    ref = max([lsize(m) for m in mask] + [lsize(mask[k[0]] | mask[k[1]])
                                          for k in kids if k is not None])

    def pow2(e: float) -> float:
        return 2.0 ** e if e < 1000 else math.inf

    def step(v: int) -> float:
        k = kids[v]
        assert k is not None
        c = wflops * pow2(lsize(mask[k[0]] | mask[k[1]]) - ref)
        if wwrite:
            c += wwrite * pow2(lsize(mask[v]) - ref)
        return c

    node_cost = [0.0] * n + [step(v) for v in range(n, len(kids))]
    local = local and not wwrite
    # log2 of each merge's flops, for the local criterion (node_cost's relative floats
    # under- and overflow over the cost ranges of large networks)
    node_log = [0.0] * n + [lsize(mask[k[0]] | mask[k[1]])  # type: ignore[index]
                            for k in kids[n:]] if local else []
    total = sum(node_cost)
    best_total, best_kids = total, kids.copy()
    rng = random.Random(seed)
    internal = [v for v in range(n, len(kids))
                if any(c >= n for c in kids[v])]  # type: ignore[union-attr]
    if not internal:
        return tree
    internal_set = set(internal)
    temp = t_start
    ratio = t_end / t_start
    for move in range(moves):
        if move % 256 == 0:
            if deadline is not None and time.perf_counter() >= deadline:
                break
            temp = t_start * ratio ** (move / moves)
        v = internal[rng.randrange(len(internal))]
        k = kids[v]
        assert k is not None
        x, y = k
        if y < n or (x >= n and rng.random() < 0.5):
            x, y = y, x
        if y < n:
            continue
        ky = kids[y]
        assert ky is not None
        b, c = ky if rng.random() < 0.5 else ky[::-1]
        # New shape: v = (y', c) with y' = (x, b).
        mv = mask[v]
        new_my = (mask[x] | mask[b]) & (mask[c] | mv)
        old = node_cost[v] + node_cost[y]
        l_y, l_v = lsize(mask[x] | mask[b]), lsize(new_my | mask[c])  # the merges' flops
        c_y = wflops * pow2(l_y - ref)
        c_v = wflops * pow2(l_v - ref)
        if wwrite:
            c_y += wwrite * pow2(lsize(new_my) - ref)
            c_v += wwrite * pow2(lsize(mv) - ref)
        delta = c_y + c_v - old
        if local:
            if not delta <= 0:
                d = _lse2(l_y, l_v) - _lse2(node_log[y], node_log[v])
                if d > 0 and rng.random() >= math.exp(max(-700.0, -d / temp)):
                    continue
        elif not delta <= 0:  # uphill (or infinite): accepted with Boltzmann's probability
            if total <= 0:  # rounding drift of the running sum: recount it
                total = sum(node_cost)
            if not delta < math.inf or rng.random() >= math.exp(
                    max(-700.0, -delta / (total * temp))):
                continue
        kids[y] = (x, b)
        kids[v] = (y, c)
        mask[y] = new_my
        node_cost[y], node_cost[v] = c_y, c_v
        if local:
            node_log[y], node_log[v] = l_y, l_v
        total += delta
        if y not in internal_set and any(z >= n for z in (x, b)):
            internal.append(y)
            internal_set.add(y)
        if total < best_total * (1 - 1e-9):
            best_total, best_kids = total, kids.copy()
    return _to_tree(n, best_kids, tree.sliced)


def _lse2(a: float, b: float) -> float:
    """log2(2**a + 2**b)."""
    hi, lo = (a, b) if a >= b else (b, a)
    return hi + math.log2(1.0 + 2.0 ** (lo - hi))


def _to_tree(n: int, kids: list[tuple[int, int] | None],
             sliced: tuple[int, ...]) -> ContractionTree:
    merges: list[tuple[int, int]] = []

    def children(v: int) -> tuple[int, int]:
        k = kids[v]
        assert k is not None
        return k

    append_merges(len(kids) - 1, children, {t: t for t in range(n)}, merges, n)
    return ContractionTree(n, tuple(merges), sliced)
