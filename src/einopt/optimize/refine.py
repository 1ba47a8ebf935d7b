"""Local refinement of a tree: exact re-optimization of every subtree of up to k leaves.

For each internal node ``v`` (most expensive first), its subtree is cut at a frontier of
up to ``k`` pieces (expanding the largest piece each time); the pieces' best merge
order is found exactly by :func:`subset_dp` (indices held outside ``v`` are kept), and
the part of the tree between ``v`` and the frontier is replaced when that is cheaper.
Passes repeat until nothing improves or the deadline passes. Work per subtree is
independent of the network's size: the pieces' indices are renumbered locally.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Sequence

from ..cost import pair_flops, size_of
from ..network import Network, bits
from ..tree import ContractionTree, append_merges, tree_cost
from .objective import FLOPS, Objective
from .optimal import localize, subset_dp

__all__ = ["reconfigure"]


class _Tree:
    """A mutable binary tree: children of internal nodes and every node's index mask."""

    def __init__(self, network: Network, tree: ContractionTree, sizes: Sequence[int]) -> None:
        n = tree.num_leaves
        cost = tree_cost(network, tree, sizes)
        self.n = n
        self.kids: dict[int, tuple[int, int]] = {n + k: m for k, m in enumerate(tree.merges)}
        self.mask: dict[int, int] = dict(enumerate(cost.node_masks))
        self.size: dict[int, int] = dict(enumerate(cost.node_sizes))
        # each merge's flops as costed, until a re-solve replaces its children
        self.flops: dict[int, int] = dict(zip(self.kids, cost.merge_flops, strict=True))
        self.root = n + len(tree.merges) - 1 if tree.merges else 0
        self.next_id = n + len(tree.merges)
        self.sizes = sizes

    def to_tree(self, sliced: tuple[int, ...]) -> ContractionTree:
        merges: list[tuple[int, int]] = []
        ids = {t: t for t in range(self.n)}
        append_merges(self.root, self.kids.__getitem__, ids, merges, self.n)
        return ContractionTree(self.n, tuple(merges), sliced)


def _step_cost(t: _Tree, v: int, objective: Objective) -> float:
    flops = t.flops.get(v)
    if flops is None:
        a, b = t.kids[v]
        flops = pair_flops(t.mask[a], t.mask[b], t.sizes, t.size[a], t.size[b])
    return objective.step(flops, t.size[v])


def _frontier(t: _Tree, v: int, k: int) -> tuple[list[int], list[int]]:
    """Up to ``k`` pieces under ``v`` (largest expanded first) and the nodes cut away."""
    pieces = [v]
    inner: list[int] = []
    while len(pieces) < k:
        cands = [p for p in pieces if p in t.kids]
        if not cands:
            break
        p = max(cands, key=t.size.__getitem__)
        pieces.remove(p)
        pieces += t.kids[p]
        inner.append(p)
    return pieces, inner


def _improve(t: _Tree, v: int, k: int, objective: Objective) -> bool:
    pieces, inner = _frontier(t, v, k)
    if len(pieces) < 3:
        return False
    current: float = 0  # ints stay exact: costs can exceed any float
    for u in inner:
        c = _step_cost(t, u, objective)
        current = max(current, c) if objective.name == "size" else current + c
    masks, keep, sizes, glob = localize([t.mask[p] for p in pieces], t.mask[v], t.sizes)
    cost, split, node = subset_dp(masks, keep, sizes, objective)
    if not cost * 10**12 < current * (10**12 - 1):  # a real improvement, exact for ints
        return False
    for u in inner:
        t.flops.pop(u, None)
        if u != v:
            del t.kids[u], t.mask[u], t.size[u]
    piece_of = {1 << j: p for j, p in enumerate(pieces)}
    full = (1 << len(pieces)) - 1
    stack = [(full, v)]
    while stack:
        s, node_id = stack.pop()
        a = split[s]
        ids = []
        for part in (a, s ^ a):
            if part in piece_of:
                ids.append(piece_of[part])
            else:
                new = t.next_id
                t.next_id += 1
                t.mask[new] = sum(1 << glob[j] for j in bits(node[part]))
                t.size[new] = size_of(t.mask[new], t.sizes)
                stack.append((part, new))
                ids.append(new)
        t.kids[node_id] = (ids[0], ids[1])
    return True


def reconfigure(network: Network, tree: ContractionTree, k: int = 8,
                objective: Objective = FLOPS, deadline: float | None = None,
                sizes: Sequence[int] | None = None, max_passes: int = 8,
                top: int | None = None) -> ContractionTree:
    """``tree`` improved by exact re-optimization of its subtrees of up to ``k`` leaves.

    Args:
        sizes: index sizes to cost with (sliced indices as 1); the network's by default.
        deadline: ``time.perf_counter()`` value after which to stop and return.
        top: visit only this many of the most expensive nodes per pass.
    """
    if tree.num_leaves < 3:
        return tree
    t = _Tree(network, tree, network.sizes if sizes is None else sizes)
    for _ in range(max_passes):
        def cost(u: int) -> float:
            return _step_cost(t, u, objective)

        order = sorted(t.kids, key=cost, reverse=True) if top is None else \
            heapq.nlargest(top, t.kids, key=cost)
        changed = False
        for v in order:
            if deadline is not None and time.perf_counter() > deadline:
                return t.to_tree(tree.sliced)
            if v in t.kids and _improve(t, v, k, objective):
                changed = True
        if not changed:
            break
    return t.to_tree(tree.sliced)
