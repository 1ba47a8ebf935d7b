"""Exact contraction order for acyclic networks (tensors joined as a tree), by a dynamic
program over their connected parts.

In an acyclic network every shared index joins two tensors and those joins form a tree
(a tree tensor network, a star, a comb; a chain is the special case that
:mod:`.chain` solves in O(n^3)). A tree of merges without outer products builds only
connected parts of that tree, and two connected parts merge into a connected one only
across a single join. So the best tree for a connected part ``S`` is the best of its
``|S| - 1`` splits at the joins inside it, and the whole search costs the sum of ``|S|``
over the connected parts: n**3 / 6 for a chain, exponential for a star. That sum is
computed first, in time linear in ``n``, and the search runs only where it fits the
caller's bound: exact where exact is cheap, known to be before any work is spent.
(:func:`~einopt.optimize.optimal.optimal`'s search over connected subsets, with its
cost cap, reaches the same optimum and is often faster where sizes vary, since it never
forms the expensive parts; but its work is known only once it is done, so ``auto`` and
``hyper``, which must stay within a small or timed budget, use this one.)

Scope: the optimum is over trees without outer products, which is the search space of
:func:`~einopt.optimize.optimal.optimal` beyond its all-subsets limit (and of
opt_einsum's ``dp`` and cotengra's ``optimal``); an outer product of small tensors can
beat it (small vectors around a large tensor, multiplied together first). Indices held
by every tensor (batch-like) scale every merge alike and are allowed, and so are joins
the output keeps (summed by no merge); an index held by three or more tensors but not
all makes the network not acyclic here.

Arithmetic: costs are exact Python ints (floats only for a fractional ``combo`` weight).
Ties go to the join above the lowest-numbered tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..network import Network
from ..tree import ContractionTree, append_merges
from .objective import FLOPS, Objective

__all__ = ["Acyclic", "acyclic_structure", "acyclic_tree", "search_work"]


@dataclass(frozen=True, slots=True)
class Acyclic:
    """A network read as a tree of ``n`` tensors, rooted at tensor 0.

    Attributes:
        parent: per tensor, its parent (-1 for the root).
        order: tensor ids from the root down (every parent before its children).
        join: per tensor, the product of the sizes of the indices it shares with its
            parent (1 for the root).
        summed: per tensor, the part of ``join`` that the merge across it sums (the rest
            the output keeps).
        free: per tensor, the product of the sizes of the indices only it holds.
        trace: the part of ``free`` that the output drops, summed by the tensor's first
            merge (networks built by einopt sum those beforehand: all ones).
        batch_out: product of the sizes of the indices every tensor holds and the output
            keeps.
        batch_sum: the same for those every tensor holds and the last merge sums.
    """

    parent: tuple[int, ...]
    order: tuple[int, ...]
    join: tuple[int, ...]
    summed: tuple[int, ...]
    free: tuple[int, ...]
    trace: tuple[int, ...]
    batch_out: int
    batch_sum: int

    def children(self) -> list[list[int]]:
        """Per tensor, its children in increasing id."""
        kids: list[list[int]] = [[] for _ in self.parent]
        for t, p in enumerate(self.parent):
            if p >= 0:
                kids[p].append(t)
        return kids


def acyclic_structure(network: Network) -> Acyclic | None:
    """``network`` as an :class:`Acyclic`, or None if it is not one (or has under 3
    tensors). Linear in the total length of the terms, and it stops at the first index
    that rules the network out (a third holder where an earlier tensor lacks the index),
    so it is cheap on any network."""
    n = network.num_tensors
    if n < 3:
        return None
    m = network.num_indices
    count = [0] * m
    last = [-1] * m
    first = [0] * m
    second = [0] * m
    for t, term in enumerate(network.terms):
        for i in term:
            if last[i] == t:
                continue
            last[i] = t
            c = count[i]
            if c == 0:
                first[i] = t
            elif c == 1:
                second[i] = t
            elif c != t:  # a third holder of an index that some earlier tensor lacks
                return None
            count[i] = c + 1
    out = set(network.output)
    sizes = network.sizes
    free = [1] * n
    trace = [1] * n
    batch_out = batch_sum = 1
    joins: dict[tuple[int, int], list[int]] = {}
    for i in range(m):
        c = count[i]
        if c == 1:
            free[first[i]] *= sizes[i]
            if i not in out:
                trace[first[i]] *= sizes[i]
        elif c == 2:
            sizes_of = joins.get((first[i], second[i]))
            if sizes_of is None:
                if len(joins) == n - 1:  # one join too many: a cycle
                    return None
                sizes_of = joins[first[i], second[i]] = [1, 1]
            sizes_of[0] *= sizes[i]
            if i not in out:
                sizes_of[1] *= sizes[i]
        elif c == n:
            if i in out:
                batch_out *= sizes[i]
            else:
                batch_sum *= sizes[i]
        elif c:
            return None
    if len(joins) != n - 1:
        return None
    nbrs: list[list[tuple[int, list[int]]]] = [[] for _ in range(n)]
    for (a, b), sizes_of in joins.items():
        nbrs[a].append((b, sizes_of))
        nbrs[b].append((a, sizes_of))
    parent = [-2] * n
    join = [1] * n
    summed = [1] * n
    parent[0] = -1
    order = [0]
    for t in order:  # breadth first; grows while it runs
        for u, (size, gone) in nbrs[t]:
            if parent[u] == -2:
                parent[u] = t
                join[u], summed[u] = size, gone
                order.append(u)
    if len(order) != n:  # n - 1 joins but not connected: a cycle elsewhere
        return None
    return Acyclic(tuple(parent), tuple(order), tuple(join), tuple(summed), tuple(free),
                   tuple(trace), batch_out, batch_sum)


def search_work(acyclic: Acyclic, cap: int) -> int:
    """Candidate splits the exact search would price (the sum of ``|S| - 1`` over
    connected parts ``S``), or ``cap + 1`` as soon as it would pass ``cap``.

    Parts are counted by their top tensor: a part topped at ``v`` takes, per child, no
    tensor of it or a part topped at the child.

    No tree of ``n`` tensors prices fewer than ``(n - 1)**2``: the sum counts each part
    once per join inside it, and the parts across a join that leaves ``a`` and ``b``
    tensors on its sides number at least ``a * b`` (the path between each pair of
    tensors on opposite sides), so the sum is at least the sum of the distances between
    all pairs of tensors, whose least is a star's. :func:`acyclic_tree` so refuses a
    bound below it before reading the network.
    """
    over = cap + 1
    count = [1] * len(acyclic.parent)  # parts topped at each tensor
    total = [1] * len(acyclic.parent)  # their summed sizes
    work = 0
    kids = acyclic.children()
    for v in reversed(acyclic.order):
        c, s = 1, 1
        for k in kids[v]:
            # each of v's parts extends by nothing (1 way) or by one of k's parts
            c, s = c * (1 + count[k]), s * (1 + count[k]) + c * total[k]
            if c > over:
                return over
        count[v], total[v] = c, s
        work += s - c
        if work > cap:
            return over
    return work


def acyclic_tree(network: Network, objective: Objective = FLOPS, *,
                 max_work: int | None = None) -> ContractionTree | None:
    """The optimal tree of ``network`` under ``objective`` if it is acyclic and its search
    prices at most ``max_work`` splits (see :func:`search_work`), else None.

    Optimal among trees without outer products (see the module docstring).
    ``objective`` is ``flops``, ``write`` or ``combo``; ``size`` returns None (its
    tie-break on flops is not additive: :func:`~einopt.optimize.chain.chain_tree` and the
    subset searches handle it).
    """
    if objective.name == "size" or 0 in network.sizes:  # sizes 0: nothing to order
        return None
    if max_work is not None and (network.num_tensors - 1) ** 2 > max_work:
        return None  # too large for any tree of tensors (see search_work)
    acyclic = acyclic_structure(network)
    if acyclic is None:
        return None
    if max_work is not None and search_work(acyclic, max_work) > max_work:
        return None
    split = _solve(acyclic, objective)
    n = len(acyclic.parent)
    ids = {1 << t: t for t in range(n)}
    merges: list[tuple[int, int]] = []
    append_merges((1 << n) - 1, lambda s: (split[s], s ^ split[s]), ids, merges, n)
    return ContractionTree(n, tuple(merges))


def _parts(acyclic: Acyclic, kids: Sequence[list[int]]) -> list[int]:
    """Every connected part as a bitmask of tensors, smaller parts first."""
    topped: list[list[int]] = [[] for _ in acyclic.parent]
    for v in reversed(acyclic.order):
        parts = [1 << v]
        for k in kids[v]:
            below = topped[k]
            parts = parts + [p | q for p in parts for q in below]
        topped[v] = parts
    every = [p for parts in topped for p in parts]
    every.sort(key=int.bit_count)
    return every


def _solve(acyclic: Acyclic, objective: Objective) -> dict[int, int]:
    """Best split of every connected part with 2+ tensors: part -> its side below the
    join it splits at."""
    n = len(acyclic.parent)
    kids = acyclic.children()
    below = [0] * n  # tensors at or below each tensor
    for v in reversed(acyclic.order):
        below[v] = 1 << v
        for k in kids[v]:
            below[v] |= below[k]
    parent, join, summed = acyclic.parent, acyclic.join, acyclic.summed
    batch = acyclic.batch_out * acyclic.batch_sum
    # Elements of a part: its free sizes, the joins that leave it and the kept joins
    # inside it (the batch aside).
    edge = [acyclic.free[t] * join[t] for t in range(n)]
    for t in range(n):
        if parent[t] >= 0:
            edge[parent[t]] *= join[t]
    whole = (1 << n) - 1
    value: dict[int, float] = {}
    size: dict[int, int] = {}
    trace = {1 << t: acyclic.trace[t] for t in range(n)}  # summed by a tensor's 1st merge
    split: dict[int, int] = {}
    for part in _parts(acyclic, kids):
        if part & (part - 1) == 0:
            t = part.bit_length() - 1
            value[part] = 0
            size[part] = edge[t]
            continue
        best = None
        rest = part
        while rest:
            low = rest & -rest
            rest ^= low
            t = low.bit_length() - 1
            if not (parent[t] >= 0 and part >> parent[t] & 1):
                continue  # the part's top: no join above it inside the part
            one = part & below[t]
            two = part ^ one
            union = size[one] * size[two] // join[t]
            result = union // (summed[t] * trace.get(one, 1) * trace.get(two, 1))
            out = result * batch if part != whole else result * acyclic.batch_out
            cost = value[one] + value[two] + objective.step(union * batch, out)
            if best is None or cost < best:
                best, pick, keep = cost, one, result
        value[part] = best
        size[part] = keep
        split[part] = pick
    return split

