"""Contraction orders under opt_einsum's ``memory_limit``: no intermediate larger.

opt_einsum's ``memory_limit`` bounds the size of every intermediate a path forms, with
no slicing: a pairwise step whose result would exceed it is not taken, and where no
complete pairwise order fits, the path contracts what fits pairwise and then all the
tensors left in one step (one einsum over several operands, which forms no
intermediate). The last pairwise step, whose result is the output, is not bounded.

:func:`limited_order` finds such an order for a network: the optimizer's own tree when
it fits; else, on small networks, the cheapest tree of which every intermediate fits
(exact, over subsets of tensors); else a greedy sequence of fitting merges, stopped
where the merges so far plus one step over the rest cost least. The result is a
:class:`LimitedOrder`: a forest of fitting merges in SSA form, complete (a tree) or
not (the tensors left are contracted at once).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..cost import size_of
from ..network import Network, bits
from ..tree import ContractionTree, tree_cost
from .objective import Budget

__all__ = ["LimitedOrder", "limited_order", "capped_dp", "fits", "DP_LIMIT"]

#: Networks of up to this many tensors get the exact capped search when the
#: optimizer's tree does not fit (3^n subset pairs).
DP_LIMIT = 10
#: Up to this many tensors the greedy fallback weighs every pair at each step.
GREEDY_LIMIT = 64


@dataclass(frozen=True, slots=True)
class LimitedOrder:
    """Merges whose results fit a memory limit, in SSA form (node ``n + k`` is merge
    ``k``'s result); a forest when incomplete, its roots then contracted in one step."""

    num_leaves: int
    merges: tuple[tuple[int, int], ...]

    @property
    def complete(self) -> bool:
        """Whether the merges form one tree (no final step over several operands)."""
        return len(self.merges) >= self.num_leaves - 1

    def linear_path(self) -> list[tuple[int, ...]]:
        """opt_einsum's linear path: each merge as a pair of current positions, then one
        step over every operand left when more than one is."""
        n = self.num_leaves
        live = list(range(n))
        path: list[tuple[int, ...]] = []
        for k, (x, y) in enumerate(self.merges):
            px, py = live.index(x), live.index(y)
            path.append((min(px, py), max(px, py)))
            for p in sorted((px, py), reverse=True):
                del live[p]
            live.append(n + k)
        if len(live) > 1:
            path.append(tuple(range(len(live))))
        return path

    def groups(self) -> list[tuple[int, tuple[int, ...], tuple[tuple[int, int], ...]]]:
        """Per root of the forest made by merges: ``(node, leaves, merges)``, the merges
        renumbered as a tree over those leaves (in increasing order)."""
        n = self.num_leaves
        leaves: dict[int, tuple[int, ...]] = {i: (i,) for i in range(n)}
        own: dict[int, list[int]] = {i: [] for i in range(n)}
        roots = set(range(n))
        for k, (x, y) in enumerate(self.merges):
            z = n + k
            leaves[z] = tuple(sorted(leaves[x] + leaves[y]))
            own[z] = own.pop(x) + own.pop(y) + [k]
            roots -= {x, y}
            roots.add(z)
        out = []
        for z in sorted(r for r in roots if r >= n):
            ls = leaves[z]
            local = {leaf: j for j, leaf in enumerate(ls)}
            merges = []
            for k in own[z]:
                x, y = self.merges[k]
                merges.append((local[x], local[y]))
                local[n + k] = len(ls) + len(merges) - 1
            out.append((z, ls, tuple(merges)))
        return out


def fits(network: Network, tree: ContractionTree, limit: int) -> bool:
    """Whether every merge of ``tree`` but the last (the output) makes at most ``limit``
    elements."""
    sizes = tree_cost(network, tree).node_sizes[network.num_tensors:-1]
    return max(sizes, default=0) <= limit


def limited_order(network: Network, optimizer: Callable[[Network, Budget], ContractionTree],
                  budget: Budget, limit: int) -> LimitedOrder:
    """A contraction order of ``network`` none of whose intermediates exceeds ``limit``
    elements (see the module doc); ``optimizer`` is tried first, on ``budget``."""
    n = network.num_tensors
    tree = optimizer(network, budget)
    if n <= 2 or fits(network, tree, limit):
        return LimitedOrder(n, tree.merges)
    if n <= DP_LIMIT:
        found = capped_dp(network, limit)
        if found is not None:
            return LimitedOrder(n, found.merges)
    if n <= GREEDY_LIMIT:
        return _greedy_prefix(network, limit)
    return _tree_prefix(network, tree, limit)


def capped_dp(network: Network, limit: int) -> ContractionTree | None:
    """The tree of least flops whose intermediates (all but the output) hold at most
    ``limit`` elements, by dynamic programming over all subsets; None when none does."""
    n = network.num_tensors
    masks, sizes, keep = network.masks, network.sizes, network.output_mask
    full = (1 << n) - 1
    union = [0] * (full + 1)
    for s in range(1, full + 1):
        low = s & -s
        union[s] = union[s ^ low] | masks[low.bit_length() - 1]
    inf = math.inf
    best: list[float] = [inf] * (full + 1)
    split = [0] * (full + 1)
    node_size = [0] * (full + 1)
    for s in range(1, full + 1):
        node = union[s] & (keep | union[full ^ s])
        node_size[s] = size_of(node, sizes)
        low = s & -s
        if s == low:
            best[s] = 0
            continue
        if s != full and node_size[s] > limit:
            continue  # this intermediate may not be formed
        rest = s ^ low
        sub = rest
        b_cost, b_split = inf, 0
        while True:
            a = sub | low
            if a != s:
                ca, cb = best[a], best[s ^ a]
                if ca + cb < b_cost:
                    c = ca + cb + size_of(union[a] & (keep | union[full ^ a]) |
                                          union[s ^ a] & (keep | union[full ^ (s ^ a)]),
                                          sizes)
                    if c < b_cost:
                        b_cost, b_split = c, a
            if sub == 0:
                break
            sub = (sub - 1) & rest
        best[s], split[s] = b_cost, b_split
    if best[full] == inf:
        return None
    merges: list[tuple[int, int]] = []

    def build(s: int) -> int:
        if s & (s - 1) == 0:
            return s.bit_length() - 1
        a = split[s]
        x, y = build(a), build(s ^ a)
        merges.append((x, y))
        return n + len(merges) - 1

    build(full)
    return ContractionTree(n, tuple(merges))


def _final_cost(masks: Sequence[int], keep: int, sizes: Sequence[int]) -> int:
    """Flops of one einsum over tensors ``masks`` (every index of any, ``k - 1``
    multiplications per point)."""
    union = keep
    for m in masks:
        union |= m
    return size_of(union, sizes) * max(1, len(masks) - 1)


def _greedy_prefix(network: Network, limit: int) -> LimitedOrder:
    """Greedy fitting merges (smallest ``size(ab) - size(a) - size(b)`` first, pairs that
    share an index before outer products), stopped where the merges so far plus one
    einsum over the rest cost least."""
    n = network.num_tensors
    sizes, keep = network.sizes, network.output_mask
    live: dict[int, int] = dict(enumerate(network.masks))
    size: dict[int, int] = {t: size_of(m, sizes) for t, m in live.items()}
    merges: list[tuple[int, int]] = []
    spent = 0
    best_total = _final_cost(list(live.values()), keep, sizes)
    best_len = 0
    counts = [0] * network.num_indices
    for m in live.values():
        for i in bits(m):
            counts[i] += 1
    while len(live) > 1:
        nodes = sorted(live)
        choice = None
        for ai, x in enumerate(nodes):
            mx = live[x]
            for y in nodes[ai + 1:]:
                my = live[y]
                r = 0
                for i in bits(mx | my):
                    if keep >> i & 1 or counts[i] > (mx >> i & 1) + (my >> i & 1):
                        r |= 1 << i
                rs = size_of(r, sizes)
                if len(live) > 2 and rs > limit:
                    continue
                key = (0 if mx & my else 1, rs - size[x] - size[y], x, y)
                if choice is None or key < choice[0]:
                    choice = (key, x, y, r, rs)
        if choice is None:
            break
        _, x, y, r, rs = choice
        spent += size_of(live[x] | live[y], sizes)
        z = n + len(merges)
        merges.append((x, y))
        for i in bits(live[x]):
            counts[i] -= 1
        for i in bits(live[y]):
            counts[i] -= 1
        for i in bits(r):
            counts[i] += 1
        del live[x], live[y]
        live[z], size[z] = r, rs
        total = spent + (_final_cost(list(live.values()), keep, sizes) if len(live) > 1 else 0)
        if total < best_total:
            best_total, best_len = total, len(merges)
    return LimitedOrder(n, tuple(merges[:best_len]))


def _tree_prefix(network: Network, tree: ContractionTree, limit: int) -> LimitedOrder:
    """``tree``'s merges whose results, and every result below them, fit ``limit``."""
    n = network.num_tensors
    sizes = tree_cost(network, tree).node_sizes
    ok = [True] * n
    kept: list[tuple[int, int]] = []
    ids: dict[int, int] = {i: i for i in range(n)}
    last = len(tree.merges) - 1
    for k, (x, y) in enumerate(tree.merges):
        good = ok[x] and ok[y] and (k == last or sizes[n + k] <= limit)
        ok.append(good)
        if good:
            kept.append((ids[x], ids[y]))
            ids[n + k] = n + len(kept) - 1
    return LimitedOrder(n, tuple(kept))
