"""Slicing: choose indices to loop over so every intermediate fits a memory limit.

Slicing an index fixes it to one value per pass: every intermediate holding it shrinks
by its size, and the total work is one pass's flops times the number of passes. Indices
are chosen greedily, each time the one (among those on the largest intermediates) that
leaves the least total flops, until the largest intermediate fits. Searches that know
the limit (``hyper``) score every candidate tree after slicing, so the tree adapts too.
"""

from __future__ import annotations

import math

from ..errors import PathError
from ..network import Network, bits
from ..tree import ContractionTree, tree_cost

__all__ = ["slice_tree"]


def slice_tree(network: Network, tree: ContractionTree, memory_limit: int) -> ContractionTree:
    """``tree`` with sliced indices such that no intermediate exceeds ``memory_limit``."""
    if memory_limit < 1:
        raise PathError(f"memory_limit must be at least 1 element, got {memory_limit}")
    sizes = list(network.sizes)
    sliced: list[int] = list(tree.sliced)
    for i in sliced:
        sizes[i] = 1
    cost = tree_cost(network, tree, sizes)
    while cost.max_size > memory_limit:
        n = network.num_tensors
        big = 0  # candidates: the indices of the largest intermediates
        for m, s in zip(cost.node_masks[n:], cost.node_sizes[n:], strict=True):
            if s == cost.max_size:
                big |= m
        best = None
        for i in bits(big):
            if sizes[i] <= 1:
                continue
            trial = sizes.copy()
            trial[i] = 1
            c = tree_cost(network, tree, trial)
            passes = math.prod(network.sizes[j] for j in [*sliced, i])
            key = (c.max_size > memory_limit, c.flops * passes, c.max_size, i)
            if best is None or key < best[0]:
                best = (key, i, c)
        if best is None:  # pragma: no cover - every index of size > 1 can be sliced
            raise PathError(f"cannot meet memory_limit={memory_limit}")
        _, i, cost = best
        sizes[i] = 1
        sliced.append(i)
    return tree.with_sliced(sorted(sliced))
