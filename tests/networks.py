"""Seeded random networks and brute-force oracles for optimizer and cost tests."""

from __future__ import annotations

import math
import random
from functools import cache

from einopt.network import Network, bits
from einopt.tree import ContractionTree

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def rand_equation(num_tensors: int, seed: int, *, degree: int = 3, hyper: float = 0.3,
                  num_output: int = 1, max_size: int = 5) -> tuple[str, list[tuple[int, ...]]]:
    """A random connected-ish einsum with hyperedges and outputs.

    Each index joins 2 tensors, or with probability ``hyper`` 3 or more (a hyperedge);
    ``num_output`` random indices are kept in the output.
    """
    rng = random.Random(seed)
    terms: list[list[str]] = [[] for _ in range(num_tensors)]
    sizes: dict[str, int] = {}
    num_edges = max(1, num_tensors * degree // 2)
    for k in range(num_edges):
        lab = LETTERS[k % len(LETTERS)]
        if lab in sizes:
            break
        arity = 2 if rng.random() > hyper else rng.randint(3, max(3, min(4, num_tensors)))
        arity = min(arity, num_tensors)
        for t in rng.sample(range(num_tensors), arity):
            terms[t].append(lab)
        sizes[lab] = rng.randint(2, max_size)
    labels = list(sizes)
    out = rng.sample(labels, min(num_output, len(labels)))
    eq = ",".join("".join(t) for t in terms) + "->" + "".join(out)
    shapes = [tuple(sizes[c] for c in t) for t in terms]
    return eq, shapes


def subset_mask(net: Network, subset: int) -> int:
    """Indices of the tensor formed by merging the leaves in ``subset`` (by definition)."""
    inside = outside = 0
    for t, m in enumerate(net.masks):
        if subset >> t & 1:
            inside |= m
        else:
            outside |= m
    return inside & (outside | net.output_mask)


def brute_force_flops(net: Network) -> int:
    """Least flops over every binary tree, by exhaustive search over set partitions."""
    n = net.num_tensors
    sizes = net.sizes

    @cache
    def best(state: frozenset[int]) -> int:
        if len(state) == 1:
            return 0
        parts = sorted(state)
        result = math.inf
        for x in range(len(parts)):
            for y in range(x + 1, len(parts)):
                a, b = parts[x], parts[y]
                ma, mb = subset_mask(net, a), subset_mask(net, b)
                c = math.prod(sizes[i] for i in bits(ma | mb))
                rest = frozenset(state - {a, b} | {a | b})
                result = min(result, c + best(rest))
        return int(result)

    return best(frozenset(1 << t for t in range(n)))


def all_trees(n: int):
    """Every binary tree over ``n`` leaves, as SSA merge tuples (small n only)."""

    def rec(live: tuple[int, ...], nxt: int, merges: tuple[tuple[int, int], ...]):
        if len(live) == 1:
            yield merges
            return
        for x in range(len(live)):
            for y in range(x + 1, len(live)):
                a, b = live[x], live[y]
                rest = tuple(z for z in live if z not in (a, b)) + (nxt,)
                yield from rec(rest, nxt + 1, merges + ((a, b),))

    for merges in rec(tuple(range(n)), n, ()):
        yield ContractionTree(n, merges)
