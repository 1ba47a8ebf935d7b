"""Greedy contraction order: repeatedly merge the pair that shrinks memory the most.

The score of merging ``a`` and ``b`` is ``size(result) - size(a) - size(b)`` (smaller is
better), ties broken by the pair's flops. Only pairs that share an index are candidates;
disconnected parts are joined at the end by outer products, smallest first. Scores of
stale candidates (hyperedges change as tensors merge) are re-evaluated lazily.
"""

from __future__ import annotations

import heapq

from ..cost import HolderCounts, size_of
from ..network import Network, bits
from ..tree import ContractionTree

__all__ = ["greedy"]


def greedy(network: Network) -> ContractionTree:
    """Greedy tree for ``network`` (deterministic)."""
    n = network.num_tensors
    if n <= 1:
        return ContractionTree(n, ())
    sizes = network.sizes
    holders = HolderCounts(network.masks, network.output_mask, network.num_indices)
    masks: dict[int, int] = dict(enumerate(network.masks))
    node_size = {x: size_of(m, sizes) for x, m in masks.items()}
    by_index: list[set[int]] = [set() for _ in sizes]
    for x, m in masks.items():
        for i in bits(m):
            by_index[i].add(x)

    heap: list[tuple[int, int, int, int]] = []

    def score(x: int, y: int) -> tuple[int, int]:
        a, b = masks[x], masks[y]
        r = holders.result(a, b)
        return size_of(r, sizes) - node_size[x] - node_size[y], size_of(a | b, sizes)

    def push_neighbours(x: int) -> None:
        seen = {x}
        for i in bits(masks[x]):
            for y in by_index[i]:
                if y not in seen:
                    seen.add(y)
                    s, f = score(x, y)
                    heapq.heappush(heap, (s, f, min(x, y), max(x, y)))

    for x in range(n):
        push_neighbours(x)

    merges: list[tuple[int, int]] = []
    while heap:
        s, f, x, y = heapq.heappop(heap)
        if x not in masks or y not in masks:
            continue
        s2, f2 = score(x, y)
        if (s2, f2) > (s, f):
            heapq.heappush(heap, (s2, f2, x, y))
            continue
        a, b = masks.pop(x), masks.pop(y)
        r = holders.merge(a, b)
        z = n + len(merges)
        merges.append((x, y))
        for i in bits(a):
            by_index[i].discard(x)
        for i in bits(b):
            by_index[i].discard(y)
        masks[z] = r
        node_size[z] = size_of(r, sizes)
        for i in bits(r):
            by_index[i].add(z)
        push_neighbours(z)

    # Disconnected parts: outer products, smallest first.
    rest = [(node_size[x], x) for x in masks]
    heapq.heapify(rest)
    while len(rest) > 1:
        _, x = heapq.heappop(rest)
        _, y = heapq.heappop(rest)
        r = holders.merge(masks.pop(x), masks.pop(y))
        z = n + len(merges)
        merges.append((x, y))
        masks[z] = r
        node_size[z] = size_of(r, sizes)
        heapq.heappush(rest, (node_size[z], z))
    return ContractionTree(n, tuple(merges))
