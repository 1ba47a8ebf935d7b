"""A multilevel hypergraph partitioner in pure Python, for when KaHyPar is absent.

A hypergraph is given by the pins (node ids) of each hyperedge and integer edge
weights. Bisection is multilevel: nodes are clustered along their heaviest hyperedges
(each hyperedge rates a neighbour by its weight over its size less one) until a few
dozen clusters remain; the coarsest hypergraph is split by greedy region growing from
several random seeds, and the split is projected back level by level, each level
refined by Fiduccia–Mattheyses passes (gains kept exact by delta updates; a pass stops
after a run of moves that do not improve the best cut and is rolled back to its best
prefix). A k-way partition is a recursive bisection with the block counts split as
evenly as possible.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Sequence

__all__ = ["partition", "bisection", "cut_weight"]

#: Coarsening stops near this many clusters (the initial split is tried there).
COARSEST = 40
#: Below this many nodes a hypergraph is split directly, without coarsening.
FLAT = 64
#: Hyperedges with more pins than this do not rate neighbours while clustering.
WIDE = 64
#: Refinement passes after each initial split, and at each finer level.
COARSE_PASSES = 4
FINE_PASSES = 2
#: A pass stops after this many moves in a row that do not improve its best cut.
FRUITLESS_MIN = 16
FRUITLESS_MAX = 120


class _Level:
    """One hypergraph of the hierarchy: pins, edge weights, node weights, incidence."""

    __slots__ = ("pins", "ew", "vw", "inc")

    def __init__(self, pins: list[list[int]], ew: list[int], vw: list[int]) -> None:
        self.pins, self.ew, self.vw = pins, ew, vw
        inc: list[list[int]] = [[] for _ in vw]
        for e, p in enumerate(pins):
            for v in p:
                inc[v].append(e)
        self.inc = inc


def cut_weight(pins: Sequence[Sequence[int]], ew: Sequence[int], block: Sequence[int]) -> int:
    """Total weight of the hyperedges whose pins lie in more than one block."""
    total = 0
    for p, w in zip(pins, ew, strict=True):
        b = block[p[0]]
        if any(block[v] != b for v in p):
            total += w
    return total


def partition(num_nodes: int, pins: Sequence[Sequence[int]], ew: Sequence[int], parts: int,
              imbalance: float, rng: random.Random, starts: int = 2,
              vw: Sequence[int] | None = None, vcycles: int = 0) -> list[int]:
    """Block (``0..parts-1``) of each node of a ``parts``-way min-cut partition.

    Args:
        pins: the nodes of each hyperedge (edges with fewer than two pins are ignored).
        ew: positive integer weight of each hyperedge.
        imbalance: allowed relative excess of a block's weight over the average (a
            block may always exceed it by one lightest node); every block gets a node
            where there are enough.
        starts: initial splits tried on each coarsest hypergraph.
        vw: node weights (1 each by default).
        vcycles: extra coarsen-and-refine cycles per bisection.
    """
    keep = [e for e, p in enumerate(pins) if len(p) > 1]
    level = _Level([list(pins[e]) for e in keep], [ew[e] for e in keep],
                   list(vw) if vw is not None else [1] * num_nodes)
    block = [0] * num_nodes
    total = sum(level.vw)
    most = _block_cap(total, parts, imbalance, min(level.vw, default=1))
    stack = [(level, list(range(num_nodes)), parts, 0)]
    while stack:
        lev, nodes, k, first = stack.pop()
        if k <= 1 or len(nodes) <= 1:
            for v in nodes:
                block[v] = first
            continue
        k0 = k // 2
        side = bisection(lev, (k0 * most, (k - k0) * most), k0 / k, rng, starts, (k0, k - k0),
                         vcycles)
        for s, kk, base in ((1, k - k0, first + k0), (0, k0, first)):
            sub = [j for j in range(len(nodes)) if side[j] == s]
            if kk == 1:
                for j in sub:
                    block[nodes[j]] = base
            else:
                stack.append((_restrict(lev, sub), [nodes[j] for j in sub], kk, base))
    return block


def _restrict(level: _Level, nodes: list[int]) -> _Level:
    """The sub-hypergraph induced by ``nodes`` (renumbered in their order)."""
    local = {v: j for j, v in enumerate(nodes)}
    seen: set[int] = set()
    pins: list[list[int]] = []
    ew: list[int] = []
    for v in nodes:
        for e in level.inc[v]:
            if e in seen:
                continue
            seen.add(e)
            p = [local[u] for u in level.pins[e] if u in local]
            if len(p) > 1:
                pins.append(p)
                ew.append(level.ew[e])
    return _Level(pins, ew, [level.vw[v] for v in nodes])


def _block_cap(total: int, parts: int, imbalance: float, slack: int) -> int:
    """Most weight a block may take: the average and ``imbalance`` more, or ``slack``
    over the average (so that refinement can always move a node)."""
    return max(math.floor((1 + imbalance) * total / parts), math.ceil(total / parts) + slack)


def bisection(level: _Level, caps: tuple[int, int], ratio: float, rng: random.Random,
              starts: int = 2, floors: tuple[int, int] = (1, 1), vcycles: int = 0
              ) -> list[int]:
    """Side of each node of ``level`` in a multilevel min-cut bisection.

    Side ``s`` weighs at most ``caps[s]`` and at least ``floors[s]`` (where the nodes
    allow); initial splits give side 0 about ``ratio`` of the weight. Each V-cycle
    coarsens again within the sides found and refines the split on the way back.
    """
    n = len(level.vw)
    if n <= 1:
        return [0] * n
    total = sum(level.vw)
    target = min(max(ratio * total, total - caps[1], floors[0]), caps[0], total - floors[1])
    side: list[int] | None = None
    for _ in range(1 + (vcycles if n > FLAT else 0)):
        hierarchy, maps = _coarsen(level, total, rng, side)
        coarse = hierarchy[-1]
        # The coarsest nodes are heavy: let each side take one more of them.
        heavy = max(coarse.vw) if len(hierarchy) > 1 else 0
        coarse_caps = (caps[0] + heavy, caps[1] + heavy)
        if side is None:
            best: tuple[int, int, list[int]] | None = None
            for _ in range(max(1, starts)):
                trial = _grow(coarse, target, rng)
                pen, cut = _refine(coarse, trial, coarse_caps, floors, rng, COARSE_PASSES)
                if best is None or (pen, cut) < best[:2]:
                    best = (pen, cut, trial)
            assert best is not None
            current = best[2]
        else:  # the sides found so far, on the coarsest clusters (each within one side)
            current = [0] * len(coarse.vw)
            for v, s in enumerate(side):
                c = v
                for cluster in maps:
                    c = cluster[c]
                current[c] = s
            _refine(coarse, current, coarse_caps, floors, rng, COARSE_PASSES)
        for depth in range(len(maps) - 1, -1, -1):
            cluster = maps[depth]
            current = [current[c] for c in cluster]
            _refine(hierarchy[depth], current, caps, floors, rng, FINE_PASSES)
        side = current
    assert side is not None
    return side


def _coarsen(level: _Level, total: int, rng: random.Random, side: list[int] | None
             ) -> tuple[list[_Level], list[list[int]]]:
    """The hierarchy of ever coarser clusterings (within ``side``, if given)."""
    hierarchy = [level]
    maps: list[list[int]] = []
    if len(level.vw) <= FLAT:
        return hierarchy, maps
    limit = max(1, math.ceil(1.5 * total / COARSEST))
    while len(hierarchy[-1].vw) > COARSEST:
        fine = hierarchy[-1]
        cluster, count = _cluster(fine, limit, rng, side)
        if count > 0.9 * len(fine.vw):
            break
        maps.append(cluster)
        hierarchy.append(_contract(fine, cluster, count))
        if side is not None:
            coarse_side = [0] * count
            for v, c in enumerate(cluster):
                coarse_side[c] = side[v]
            side = coarse_side
    return hierarchy, maps


def _cluster(level: _Level, limit: int, rng: random.Random, side: list[int] | None = None
             ) -> tuple[list[int], int]:
    """Heavy-edge clustering: each node joins the neighbour it shares most weight with
    (on the same side, if ``side`` is given)."""
    pins, ew, vw, inc = level.pins, level.ew, level.vw, level.inc
    n = len(vw)
    cluster = [-1] * n
    cw: list[int] = []
    order = list(range(n))
    rng.shuffle(order)
    for v in order:
        if cluster[v] >= 0:
            continue
        rating: dict[int, float] = {}
        for e in inc[v]:
            p = pins[e]
            if len(p) > WIDE:
                continue
            r = ew[e] / (len(p) - 1)
            for u in p:
                rating[u] = rating.get(u, 0.0) + r
        wv = vw[v]
        best_u, best_r = -1, 0.0
        for u, r in rating.items():
            if u == v:
                continue
            if side is not None and side[u] != side[v]:
                continue
            c = cluster[u]
            wu = cw[c] if c >= 0 else vw[u]
            if r > best_r and wu + wv <= limit:
                best_u, best_r = u, r
        if best_u < 0:
            cluster[v] = len(cw)
            cw.append(wv)
            continue
        c = cluster[best_u]
        if c < 0:
            c = cluster[best_u] = len(cw)
            cw.append(vw[best_u])
        cluster[v] = c
        cw[c] += wv
    return cluster, len(cw)


def _contract(level: _Level, cluster: list[int], count: int) -> _Level:
    """The hypergraph of the clusters; parallel hyperedges are merged, weights summed."""
    vw = [0] * count
    for v, w in enumerate(level.vw):
        vw[cluster[v]] += w
    index: dict[tuple[int, ...], int] = {}
    pins: list[list[int]] = []
    ew: list[int] = []
    for p, w in zip(level.pins, level.ew, strict=True):
        if len(p) == 2:
            a, b = cluster[p[0]], cluster[p[1]]
            if a == b:
                continue
            key: tuple[int, ...] = (a, b) if a < b else (b, a)
        else:
            key = tuple(sorted({cluster[u] for u in p}))
            if len(key) < 2:
                continue
        j = index.get(key)
        if j is None:
            index[key] = len(pins)
            pins.append(list(key))
            ew.append(w)
        else:
            ew[j] += w
    return _Level(pins, ew, vw)


def _grow(level: _Level, target: float, rng: random.Random) -> list[int]:
    """Side 1 everywhere, then side 0 grown from a random node, most attached first."""
    pins, ew, vw, inc = level.pins, level.ew, level.vw, level.inc
    n = len(vw)
    side = [1] * n
    attach = [0.0] * n
    heap = [(0.0, rng.random(), rng.randrange(n))]
    weight = 0
    left = n
    while weight < target and left:
        if not heap:  # disconnected: start again from a random node still on side 1
            rest = [v for v in range(n) if side[v] == 1]
            heap = [(0.0, 0.0, rng.choice(rest))]
        _, _, v = heapq.heappop(heap)
        if side[v] == 0:
            continue
        if weight + vw[v] > target and weight > 0 and rng.random() < 0.5:
            break
        side[v] = 0
        weight += vw[v]
        left -= 1
        for e in inc[v]:
            p = pins[e]
            r = ew[e] / (len(p) - 1)
            for u in p:
                if side[u] == 1:
                    attach[u] += r
                    heapq.heappush(heap, (-attach[u], rng.random(), u))
    return side


def _refine(level: _Level, side: list[int], caps: tuple[int, int], floors: tuple[int, int],
            rng: random.Random, passes: int) -> tuple[int, int]:
    """Fiduccia–Mattheyses passes on ``side`` (changed in place); its (penalty, cut).

    Gains are computed only for nodes on cut hyperedges and for nodes a move touches,
    then kept exact by delta updates; ties are broken in a random order.
    """
    pins, ew, vw, inc = level.pins, level.ew, level.vw, level.inc
    n = len(vw)
    m = len(pins)
    count0 = [0] * m
    count1 = [0] * m
    xor0 = [0] * m  # xor of the pins on each side: the lone pin when a count is 1
    xor1 = [0] * m
    weight = [0, 0]
    for v in range(n):
        weight[side[v]] += vw[v]
    cut = 0
    for e, p in enumerate(pins):
        for v in p:
            if side[v]:
                count1[e] += 1
                xor1[e] ^= v
            else:
                count0[e] += 1
                xor0[e] ^= v
        if count0[e] and count1[e]:
            cut += ew[e]
    cap0, cap1 = caps

    def penalty() -> int:
        return max(0, weight[0] - cap0) + max(0, weight[1] - cap1)

    def full_gain(v: int) -> int:
        g = 0
        own, other = (count1, count0) if side[v] else (count0, count1)
        for e in inc[v]:
            if own[e] == 1:
                g += ew[e]
            elif other[e] == 0:
                g -= ew[e]
        return g

    pen = penalty()
    limit = max(FRUITLESS_MIN, min(n // 3, FRUITLESS_MAX))
    for _ in range(passes):
        salt = rng.getrandbits(30)
        gain = [0] * n
        known = [False] * n
        heaps: list[list[tuple[int, int, int]]] = [[], []]
        for e, p in enumerate(pins):
            if count0[e] and count1[e]:
                for v in p:
                    if not known[v]:
                        known[v] = True
                        g = gain[v] = full_gain(v)
                        heaps[side[v]].append((-g, v ^ salt, v))
        if pen:  # every node may help restore the balance
            for v in range(n):
                if not known[v]:
                    known[v] = True
                    g = gain[v] = full_gain(v)
                    heaps[side[v]].append((-g, v ^ salt, v))
        heapq.heapify(heaps[0])
        heapq.heapify(heaps[1])
        locked = [False] * n
        moves: list[int] = []
        best = (pen, cut, 0)
        cur_cut, cur_pen = cut, pen
        fruitless = 0
        while fruitless < limit:
            choice = -1
            choice_gain = 0
            for s in (0, 1):
                h = heaps[s]
                while h:
                    g, _, v = h[0]
                    if locked[v] or side[v] != s or gain[v] != -g:
                        heapq.heappop(h)
                        continue
                    break
                if not h:
                    continue
                v = h[0][2]
                w = vw[v]
                if weight[s] - w < floors[s]:
                    continue
                if weight[1 - s] + w > caps[1 - s]:
                    if not cur_pen:
                        continue
                    over_s = weight[s] - w - caps[s]
                    over_t = weight[1 - s] + w - caps[1 - s]
                    if (over_s if over_s > 0 else 0) + over_t >= cur_pen:
                        continue
                if choice < 0 or gain[v] > choice_gain:
                    choice, choice_gain = v, gain[v]
            if choice < 0:
                break
            v = choice
            s = side[v]
            t = 1 - s
            locked[v] = True
            side[v] = t
            weight[s] -= vw[v]
            weight[t] += vw[v]
            cur_cut -= choice_gain
            if cur_pen or weight[t] > caps[t]:
                cur_pen = penalty()
            # Delta gain updates (counts before and after the move) for nodes whose gain
            # is known; the others get theirs once all counts are updated.
            cs, ct, xs, xt = (count0, count1, xor0, xor1) if s == 0 else (count1, count0, xor1,
                                                                          xor0)
            fresh: list[int] = []
            for e in inc[v]:
                w = ew[e]
                p = pins[e]
                before_t = ct[e]
                if before_t == 0:
                    for u in p:
                        if not locked[u]:
                            if known[u]:
                                gain[u] += w
                                heapq.heappush(heaps[side[u]], (-gain[u], u ^ salt, u))
                            else:
                                fresh.append(u)
                elif before_t == 1:
                    u = xt[e]
                    if not locked[u] and known[u]:
                        gain[u] -= w
                        heapq.heappush(heaps[t], (-gain[u], u ^ salt, u))
                cs[e] -= 1
                ct[e] += 1
                xs[e] ^= v
                xt[e] ^= v
                after_s = cs[e]
                if after_s == 0:
                    for u in p:
                        if not locked[u] and known[u]:
                            gain[u] -= w
                            heapq.heappush(heaps[side[u]], (-gain[u], u ^ salt, u))
                elif after_s == 1:
                    u = xs[e]
                    if not locked[u] and known[u]:
                        gain[u] += w
                        heapq.heappush(heaps[s], (-gain[u], u ^ salt, u))
            for u in fresh:
                if not known[u]:
                    known[u] = True
                    g = gain[u] = full_gain(u)
                    heapq.heappush(heaps[side[u]], (-g, u ^ salt, u))
            moves.append(v)
            if (cur_pen, cur_cut) < best[:2]:
                best = (cur_pen, cur_cut, len(moves))
                fruitless = 0
            else:
                fruitless += 1
        for v in reversed(moves[best[2]:]):  # roll back to the best prefix
            s = side[v]
            t = 1 - s
            side[v] = t
            weight[s] -= vw[v]
            weight[t] += vw[v]
            cs, ct, xs, xt = (count0, count1, xor0, xor1) if s == 0 else (count1, count0, xor1,
                                                                          xor0)
            for e in inc[v]:
                cs[e] -= 1
                ct[e] += 1
                xs[e] ^= v
                xt[e] ^= v
        improved = (best[0], best[1]) < (pen, cut)
        pen, cut = best[0], best[1]
        if not improved:
            break
    return pen, cut
