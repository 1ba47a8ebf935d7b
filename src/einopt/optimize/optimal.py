"""Exact contraction order by dynamic programming over subsets of tensors.

Small networks (up to ``FULL_LIMIT`` tensors) are solved over *all* subsets, outer
products included, so the result is the true optimum over every binary tree. Larger
networks are solved per connected component over *connected* subsets only (outer
products only where the graph is disconnected), with cost capping: a pass keeps only
partial trees costing at most ``cap``; if a complete tree is found its cost is optimal,
else ``cap`` grows, up to the greedy tree's cost. Where not even that cap lets a tree
through, the greedy tree (by its outer products) beats every connected tree, and it is
returned.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..cost import size_of
from ..network import Network, bits, components
from ..tree import ContractionTree, append_merges, tree_cost
from .greedy import greedy
from .objective import FLOPS, Objective

__all__ = ["optimal", "bounded_optimal", "subset_dp", "localize", "OverBudget", "FULL_LIMIT"]

FULL_LIMIT = 12


class OverBudget(Exception):
    """The exact search would need more pair evaluations than it was allowed."""


def optimal(network: Network) -> ContractionTree:
    """Tree of least flops for ``network`` (exact; see module docstring for the scope)."""
    return bounded_optimal(network, None)


def bounded_optimal(network: Network, budget: int | None,
                    full_limit: int = FULL_LIMIT) -> ContractionTree:
    """As :func:`optimal`, but raise :class:`OverBudget` past ``budget`` pair evaluations
    of the connected search; networks of at most ``full_limit`` tensors take the search
    over all subsets instead (unbudgeted: 3^n pairs, about 90 ms at 12 tensors)."""
    n = network.num_tensors
    if n <= 2:
        return ContractionTree(n, ((0, 1),) if n == 2 else ())
    if n <= full_limit:
        return full_dp(network)
    return _connected_dp(network, budget)


def full_dp(network: Network, objective: Objective = FLOPS) -> ContractionTree:
    n = network.num_tensors
    _, split, _ = subset_dp(network.masks, network.output_mask, network.sizes, objective)
    return _tree_from_splits(n, (1 << n) - 1, split)


def subset_dp(masks: Sequence[int], keep: int, sizes: Sequence[int],
              objective: Objective = FLOPS) -> tuple[float, list[int], list[int]]:
    """Best tree over all subsets of ``masks`` (outer products included).

    Args:
        masks: index masks of the tensors to merge.
        keep: indices held outside these tensors (or in the output): never summed.
        sizes: index sizes.

    Returns:
        ``(cost, split, node)``: the least cost; for each subset ``s`` the part ``split[s]``
        merged with ``s ^ split[s]``; and ``node[s]``, the index mask of subset ``s``.
    """
    n = len(masks)
    full = (1 << n) - 1
    union = [0] * (full + 1)
    for s in range(1, full + 1):
        low = s & -s
        union[s] = union[s ^ low] | masks[low.bit_length() - 1]
    node = [union[s] & (keep | union[full ^ s]) for s in range(full + 1)]
    size_cache: dict[int, int] = {}

    def size(m: int) -> int:
        v = size_cache.get(m)
        if v is None:
            v = size_cache[m] = size_of(m, sizes)
        return v

    node_size = [size(m) for m in node]

    def joint(a: int, b: int) -> int:
        """Size of ``node[a] | node[b]``, from the (small) shared part."""
        shared = size(node[a] & node[b])
        return node_size[a] * node_size[b] // shared if shared else size(node[a] | node[b])

    is_flops = objective.name == "flops"
    is_max = objective.name == "size"
    best: list[float] = [0] * (full + 1)
    split = [0] * (full + 1)
    for s in range(1, full + 1):
        low = s & -s
        if s == low:
            continue
        rest = s ^ low
        b_cost: float = -1  # an int: exact for costs beyond any float
        b_split = 0
        s_size = -1
        # Submasks a of s that contain the lowest tensor, and a != s.
        sub = rest
        while True:
            a = sub | low
            if a != s:
                ca, cb = best[a], best[s ^ a]
                lower = max(ca, cb) if is_max else ca + cb
                if b_cost < 0 or lower < b_cost:
                    flops = joint(a, s ^ a)
                    if is_flops:
                        c = lower + flops
                    else:
                        if s_size < 0:
                            s_size = node_size[s]
                        c = objective.combine(ca, cb, objective.step(flops, s_size))
                    if b_cost < 0 or c < b_cost:
                        b_cost, b_split = c, a
            if sub == 0:
                break
            sub = (sub - 1) & rest
        best[s], split[s] = b_cost, b_split
    return best[full], split, node


def localize(masks: Sequence[int], keep: int, sizes: Sequence[int]
             ) -> tuple[list[int], int, list[int], list[int]]:
    """Renumber the indices of ``masks`` to bits ``0..m-1`` for a small subset search.

    Returns the local masks, the local ``keep`` (restricted to those indices), the local
    sizes and, per local bit, the global index id, so that search work does not depend
    on how many indices the whole network has.
    """
    union = 0
    for m in masks:
        union |= m
    glob = bits(union)
    pos = {g: j for j, g in enumerate(glob)}

    def loc(m: int) -> int:
        r = 0
        for g in bits(m & union):
            r |= 1 << pos[g]
        return r

    return [loc(m) for m in masks], loc(keep), [sizes[g] for g in glob], glob


def _tree_from_splits(n: int, root: int, split: dict[int, int] | list[int]) -> ContractionTree:
    merges: list[tuple[int, int]] = []
    ids: dict[int, int] = {1 << i: i for i in range(n)}
    append_merges(root, lambda s: (split[s], s ^ split[s]), ids, merges, n)
    return ContractionTree(n, tuple(merges))


def _connected_dp(network: Network, budget: int | None = None) -> ContractionTree:
    n = network.num_tensors
    sizes = network.sizes
    masks = network.masks
    out = network.output_mask
    holders_of = [0] * network.num_indices
    for t, m in enumerate(masks):
        for i in bits(m):
            holders_of[i] |= 1 << t
    floor = greedy(network)
    upper = tree_cost(network, floor).flops

    split: dict[int, int] = {}
    roots: list[tuple[int, int]] = []  # (tensor set, mask) of each solved component
    for comp in components([bits(m) for m in network.masks]):
        solved = _solve_component(comp, masks, sizes, out, holders_of, upper, split, budget)
        if solved is None:
            return floor
        roots.append(solved)

    # Join components by outer products, smallest first.
    roots.sort(key=lambda sm: size_of(sm[1], sizes))
    while len(roots) > 1:
        (s1, m1), (s2, m2) = roots[0], roots[1]
        split[s1 | s2] = s1
        roots = sorted([(s1 | s2, m1 | m2), *roots[2:]], key=lambda sm: size_of(sm[1], sizes))
    return _tree_from_splits(n, roots[0][0], split)


def _solve_component(
    comp: list[int],
    masks: tuple[int, ...],
    sizes: tuple[int, ...],
    out: int,
    holders_of: list[int],
    upper: int,
    split: dict[int, int],
    budget: int | None,
) -> tuple[int, int] | None:
    """The component's best tree (its splits written to ``split``) as (tensor set,
    result mask); None where every connected tree costs more than ``upper``."""
    k = len(comp)
    if k == 1:
        return 1 << comp[0], masks[comp[0]]
    cap = max(1, min(size_of(masks[t], sizes) for t in comp))
    while True:
        cap = min(cap * 8, upper)
        leaves = {1 << t: (0, masks[t], 0) for t in comp}
        levels: list[dict[int, tuple[int, int, int]]] = [{}, leaves]
        for m in range(2, k + 1):
            level: dict[int, tuple[int, int, int]] = {}
            for a in range(1, m // 2 + 1):
                left, right = levels[a], levels[m - a]
                if budget is not None:
                    budget -= len(left) * len(right)
                    if budget < 0:
                        raise OverBudget
                for s1, (c1, m1, _) in left.items():
                    for s2, (c2, m2, _) in right.items():
                        if s1 & s2 or not m1 & m2 or (a == m - a and s1 > s2):
                            continue
                        c = c1 + c2
                        if c > cap:
                            continue
                        c += size_of(m1 | m2, sizes)
                        if c > cap:
                            continue
                        s = s1 | s2
                        prev = level.get(s)
                        if prev is None or c < prev[0]:
                            drop = 0
                            for i in bits(m1 & m2 & ~out):
                                if not holders_of[i] & ~s:
                                    drop |= 1 << i
                            level[s] = (c, (m1 | m2) & ~drop, s1)
            levels.append(level)
        if levels[k]:
            (root, (_, r_mask, _)), = levels[k].items()
            for level in levels[2:]:
                for s, (_, _, s1) in level.items():
                    split[s] = s1
            return root, r_mask
        if cap >= upper:  # every connected tree costs more than the greedy tree
            return None
