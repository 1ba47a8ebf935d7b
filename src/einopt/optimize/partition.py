"""Contraction trees by recursive hypergraph bisection (divide and conquer).

The tensors are split in two so that the indices cut between the halves weigh least
(an index weighs log2 of its size: cutting it costs a factor of its size), within a
balance tolerance; each half is split again until groups of at most ``cutoff`` tensors
remain, which are ordered exactly. The tree merges the halves bottom-up. Bisection
uses the ``kahypar`` package when it is installed and a profile is configured (see
:func:`kahypar_profile`), and a built-in partitioner otherwise: greedy region growing
from a random seed, then Fiduccia–Mattheyses refinement passes that move single tensors
between the halves.
"""

from __future__ import annotations

import heapq
import math
import os
import random
from collections.abc import Sequence

from ..network import Network, bits
from ..tree import ContractionTree, append_merges
from .objective import FLOPS, Objective
from .optimal import localize, subset_dp

__all__ = ["partition_tree", "bisect", "kahypar_bisect", "kahypar_profile"]


def kahypar_profile() -> str | None:
    """The KaHyPar configuration file to use, if ``kahypar`` is installed and one is set.

    The ``kahypar`` package ships no configuration; point ``EINOPT_KAHYPAR_PROFILE`` at
    one of KaHyPar's ``.ini`` profiles (a cut-objective, direct k-way one suits
    bisection) to partition with it.
    """
    path = os.environ.get("EINOPT_KAHYPAR_PROFILE")
    if not path or not os.path.isfile(path):
        return None
    try:
        import kahypar  # noqa: F401
    except ImportError:
        return None
    return path


def kahypar_bisect(nodes: Sequence[int], edges_of: Sequence[Sequence[int]],
                   weight: Sequence[float], imbalance: float, seed: int,
                   profile: str) -> set[int]:
    """One side of a bisection of ``nodes`` computed by KaHyPar with ``profile``."""
    import kahypar

    local = {v: j for j, v in enumerate(nodes)}
    pins: dict[int, list[int]] = {}
    for v in nodes:
        for e in edges_of[v]:
            pins.setdefault(e, []).append(local[v])
    edges = [(e, p) for e, p in pins.items() if len(p) > 1]
    if not edges:
        return set(nodes[: len(nodes) // 2])
    index = [0]
    flat: list[int] = []
    for _, p in edges:
        flat += p
        index.append(len(flat))
    weights = [max(1, round(100 * weight[e])) for e, _ in edges]
    graph = kahypar.Hypergraph(len(nodes), len(edges), index, flat, 2, weights, [])
    context = kahypar.Context()
    context.loadINIconfiguration(profile)
    context.setK(2)
    context.setEpsilon(max(imbalance, 0.001))
    context.setSeed(seed)
    context.suppressOutput(True)
    kahypar.partition(graph, context)
    return {v for v in nodes if graph.blockID(local[v]) == 0}


def bisect(nodes: Sequence[int], edges_of: Sequence[Sequence[int]], weight: Sequence[float],
           imbalance: float, rng: random.Random, passes: int = 4, starts: int = 1) -> set[int]:
    """One side of a balanced min-cut bisection of ``nodes``: the best of ``starts`` tries."""
    best: tuple[float, set[int]] | None = None
    for _ in range(starts):
        side, cut = _bisect_once(nodes, edges_of, weight, imbalance, rng, passes)
        if best is None or cut < best[0]:
            best = (cut, side)
    assert best is not None
    return best[1]


def _bisect_once(nodes: Sequence[int], edges_of: Sequence[Sequence[int]],
                 weight: Sequence[float], imbalance: float, rng: random.Random,
                 passes: int) -> tuple[set[int], float]:
    """One side of a balanced min-cut bisection of ``nodes`` (tensor ids), and its cut.

    Args:
        edges_of: for each tensor id, the hyperedges (index ids) it touches.
        weight: weight of each hyperedge (index id).
        imbalance: allowed relative excess of the larger side over half.
    """
    n = len(nodes)
    members = set(nodes)
    pins: dict[int, list[int]] = {}
    for v in nodes:
        for e in edges_of[v]:
            pins.setdefault(e, []).append(v)
    pins = {e: p for e, p in pins.items() if len(p) > 1}
    cap = math.floor((1 + imbalance) * n / 2)
    low = n - cap

    # Initial partition: grow side A from a random seed, most-connected tensor first.
    side = dict.fromkeys(nodes, 1)
    start = rng.choice(list(nodes))
    conn: dict[int, float] = {start: 0.0}
    heap = [(0.0, rng.random(), start)]
    size_a = 0
    target = n // 2
    while size_a < target:
        if not heap:  # disconnected: restart from any tensor still on side B
            rest = [v for v in nodes if side[v] == 1]
            heap = [(0.0, rng.random(), rng.choice(rest))]
        _, _, v = heapq.heappop(heap)
        if side[v] == 0:
            continue
        side[v] = 0
        size_a += 1
        for e in edges_of[v]:
            for u in pins.get(e, ()):
                if side[u] == 1:
                    conn[u] = conn.get(u, 0.0) + weight[e]
                    heapq.heappush(heap, (-conn[u], rng.random(), u))

    # Fiduccia–Mattheyses refinement.
    count = {e: [0, 0] for e in pins}
    for e, p in pins.items():
        for v in p:
            count[e][side[v]] += 1

    def gain(v: int) -> float:
        s, g = side[v], 0.0
        for e in edges_of[v]:
            c = count.get(e)
            if c is None:
                continue
            if c[s] == 1:
                g += weight[e]  # v is the last pin on its side: the edge becomes uncut
            if c[1 - s] == 0:
                g -= weight[e]  # the edge was internal to v's side: it becomes cut
        return g

    def cut() -> float:
        return sum(weight[e] for e, c in count.items() if c[0] and c[1])

    best_cut = cut()
    for _ in range(passes):
        sizes = [sum(1 for v in nodes if side[v] == 0), 0]
        sizes[1] = n - sizes[0]
        heap2 = [(-gain(v), rng.random(), v) for v in nodes]
        heapq.heapify(heap2)
        locked: set[int] = set()
        moves: list[int] = []
        current = best_cut
        best_prefix, best_value = 0, best_cut
        while heap2:
            g, _, v = heapq.heappop(heap2)
            if v in locked:
                continue
            g_now = gain(v)
            if -g != g_now:
                heapq.heappush(heap2, (-g_now, rng.random(), v))
                continue
            s = side[v]
            if sizes[s] - 1 < low:
                locked.add(v)
                continue
            locked.add(v)
            side[v] = 1 - s
            sizes[s] -= 1
            sizes[1 - s] += 1
            touched = set()
            for e in edges_of[v]:
                c = count.get(e)
                if c is None:
                    continue
                c[s] -= 1
                c[1 - s] += 1
                touched.update(pins[e])
            current -= g_now
            moves.append(v)
            if current < best_value - 1e-12:
                best_prefix, best_value = len(moves), current
            for u in touched:
                if u not in locked and u in members:
                    heapq.heappush(heap2, (-gain(u), rng.random(), u))
        for v in moves[best_prefix:][::-1]:  # undo the moves after the best prefix
            s = side[v]
            side[v] = 1 - s
            for e in edges_of[v]:
                c = count.get(e)
                if c is not None:
                    c[s] -= 1
                    c[1 - s] += 1
        if best_value >= best_cut - 1e-12:
            break
        best_cut = best_value
    return {v for v in nodes if side[v] == 0}, best_cut


def partition_tree(network: Network, imbalance: float = 0.2, cutoff: int = 6,
                   seed: int | None = None, objective: Objective = FLOPS,
                   weight_mode: str = "log", starts: int = 3) -> ContractionTree:
    """Tree by recursive bisection; groups of at most ``cutoff`` tensors solved exactly."""
    n = network.num_tensors
    if n <= 1:
        return ContractionTree(n, ())
    rng = random.Random(seed)
    profile = kahypar_profile()
    sizes = network.sizes
    edges_of = [list(t) for t in network.terms]
    if weight_mode == "log":
        weight = [math.log2(s) if s > 1 else 0.01 for s in sizes]
    else:
        weight = [1.0] * len(sizes)
    holders = [0] * network.num_indices
    for m in network.masks:
        for i in bits(m):
            holders[i] += 1

    merges: list[tuple[int, int]] = []
    result: dict[frozenset[int], int] = {}

    def solve_group(group: list[int]) -> int:
        """Merge ``group`` exactly; return the SSA id of its root."""
        if len(group) == 1:
            return group[0]
        inside = 0
        for t in group:
            inside |= network.masks[t]
        # Indices also held by a tensor outside the group (or the output) are kept.
        count: dict[int, int] = {}
        for t in group:
            for i in network.terms[t]:
                count[i] = count.get(i, 0) + 1
        keep = network.output_mask
        for i, c in count.items():
            if c < holders[i]:
                keep |= 1 << i
        masks, keep_l, sizes_l, _ = localize([network.masks[t] for t in group], keep, sizes)
        _, split, _ = subset_dp(masks, keep_l, sizes_l, objective)
        ids = {1 << j: t for j, t in enumerate(group)}
        return append_merges((1 << len(group)) - 1, lambda s: (split[s], s ^ split[s]), ids,
                             merges, n)

    # Iterative divide and conquer: split groups top-down, merge halves bottom-up.
    halves: dict[frozenset[int], tuple[tuple[int, ...], tuple[int, ...]]] = {}
    stack: list[tuple[tuple[int, ...], bool]] = [(tuple(range(n)), False)]
    while stack:
        group, done = stack.pop()
        key = frozenset(group)
        if done:
            ga, gb = halves.pop(key)
            a, b = result.pop(frozenset(ga)), result.pop(frozenset(gb))
            merges.append((a, b))
            result[key] = n + len(merges) - 1
            continue
        if len(group) <= cutoff:
            result[key] = solve_group(list(group))
            continue
        if profile is not None:
            side_a = kahypar_bisect(group, edges_of, weight, imbalance,
                                    rng.randrange(2**31), profile)
        else:
            side_a = bisect(group, edges_of, weight, imbalance, rng, starts=starts)
        ga = tuple(t for t in group if t in side_a)
        gb = tuple(t for t in group if t not in side_a)
        if not ga or not gb:
            ga, gb = group[: len(group) // 2], group[len(group) // 2:]
        halves[key] = (ga, gb)
        stack += [(group, True), (gb, False), (ga, False)]
    return ContractionTree(n, tuple(merges))

