"""The divide-and-conquer tree builder behind :func:`einopt.optimize.partition.partition_tree`.

Before any split the network is reduced: scalars are multiplied together and into the
smallest tensor, and (optionally) each tensor whose indices are a subset of another's
is absorbed into its smallest such superset, a merge that costs no more than the
superset's size and never grows it. The reduced tensors are split top-down by a
caller's ``split`` function; groups of at most ``cutoff`` are ordered exactly (up to
``exact`` tensors) or greedily, and the blocks of each split are merged in the order
an exact search over the blocks finds best (greedily for many blocks).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence

from ..caches import BoundedDict
from ..cost import size_of
from ..network import Network, bits
from ..tree import append_merges
from .objective import Objective
from .optimal import subset_dp

__all__ = ["Reduced", "reduced", "REDUCED", "Builder", "greedy_order"]

Split = Callable[[list[int], dict[int, int]], list[list[int]]]


class Reduced:
    """A network with scalars and (optionally) dominated tensors folded into others.

    Attributes:
        network: the original network.
        hosts: the original tensor behind each reduced tensor.
        terms: index ids of each reduced tensor (indices only its members hold and the
            output lacks are summed when they are absorbed).
        holders: per index, how many reduced tensors hold it.
        is_out: per index, whether it is an output index.
        log: per index, log2 of its size.
        members: per original tensor, the tensors folded into it, in merge order.
    """

    def __init__(self, network: Network, absorb: bool) -> None:
        self.network = network
        n = network.num_tensors
        terms = network.terms
        self.is_out = [False] * network.num_indices
        for i in bits(network.output_mask):
            self.is_out[i] = True
        self.log = [math.log2(s) if s > 1 else 0.0 for s in network.sizes]
        holders = [0] * network.num_indices
        pins: list[list[int]] = [[] for _ in range(network.num_indices)]
        for t, term in enumerate(terms):
            for i in term:
                holders[i] += 1
                pins[i].append(t)
        size = [math.prod(network.sizes[i] for i in term) for term in terms]
        into = list(range(n))  # the tensor each is folded into (itself if none)
        self.members: dict[int, list[int]] = {}
        scalars = [t for t in range(n) if not terms[t]]
        if absorb:
            sets = [frozenset(term) for term in terms]
            for t in sorted(range(n), key=lambda t: (len(terms[t]), size[t], t)):
                if not terms[t]:
                    continue
                e = min(terms[t], key=lambda i: holders[i])
                best = -1
                for u in pins[e]:
                    if u != t and into[u] == u and sets[t] <= sets[u] and (
                            best < 0 or size[u] < size[best]):
                        best = u
                if best >= 0:
                    into[t] = best
                    self.members.setdefault(best, []).append(t)
        if scalars and len(scalars) < n:
            smallest = min((t for t in range(n) if terms[t]), key=lambda t: (size[t], t))
            chain = scalars[0]
            self.members.setdefault(chain, []).extend(scalars[1:])
            for s in scalars:
                into[s] = chain
            into[chain] = smallest
            self.members.setdefault(smallest, []).insert(0, chain)
        elif scalars:  # only scalars: one chain
            self.members.setdefault(scalars[0], []).extend(scalars[1:])
            for s in scalars[1:]:
                into[s] = scalars[0]

        def root(t: int) -> int:
            while into[t] != t:
                t = into[t]
            return t

        self.hosts = [t for t in range(n) if into[t] == t]
        # A host's indices: its members' (all within its own), less those summed
        # inside it (held by no tensor outside it, and not output).
        inside: dict[tuple[int, int], int] = {}
        union: dict[int, set[int]] = {h: set() for h in self.hosts}
        for t in range(n):
            h = root(t)
            union[h].update(terms[t])
            for i in terms[t]:
                inside[h, i] = inside.get((h, i), 0) + 1
        self.terms: list[tuple[int, ...]] = [
            tuple(sorted(i for i in union[h] if self.is_out[i] or inside[h, i] < holders[i]))
            for h in self.hosts]
        self.holders = [0] * network.num_indices
        for term in self.terms:
            for i in term:
                self.holders[i] += 1

    def emit(self, host: int, merges: list[tuple[int, int]]) -> int:
        """Append the merges that fold ``host``'s members into it; the result's SSA id."""
        n = self.network.num_tensors
        members = self.members
        stack: list[tuple[int, int, int]] = [(host, 0, host)]  # (tensor, next member, id)
        done: dict[int, int] = {}
        while stack:
            t, k, cur = stack[-1]
            ms = members.get(t, ())
            if k == len(ms):
                stack.pop()
                done[t] = cur
                if stack:
                    u, j, acc = stack[-1]
                    merges.append((acc, cur))
                    stack[-1] = (u, j + 1, n + len(merges) - 1)
                continue
            m = ms[k]
            stack.append((m, 0, m))
        return done[host]


#: The reduced forms of the last few networks partitioned (a search draws many partition
#: trees of one network), by the network's id and ``absorb``.
REDUCED: BoundedDict[tuple[int, bool], Reduced] = BoundedDict("reduced networks", 8)


def reduced(network: Network, absorb: bool) -> Reduced:
    """The :class:`Reduced` form of ``network``, remembered for the last few networks."""
    key = (id(network), absorb)
    r = REDUCED.get(key)
    if r is None or r.network is not network:  # an id reused by a later network: replace
        r = REDUCED[key] = Reduced(network, absorb)
    return r


class Builder:
    """Splits groups of reduced tensors top-down and merges them bottom-up."""

    def __init__(self, red: Reduced, objective: Objective, exact: int, exact_merge: int) -> None:
        self.red = red
        self.objective = objective
        self.exact = exact
        self.exact_merge = exact_merge
        self.merges: list[tuple[int, int]] = []

    def counts(self, group: Sequence[int]) -> dict[int, int]:
        """How many tensors of ``group`` hold each index they hold."""
        counts: dict[int, int] = {}
        terms = self.red.terms
        for v in group:
            for e in terms[v]:
                counts[e] = counts.get(e, 0) + 1
        return counts

    def build(self, cutoff: int, split: Split) -> int:
        """SSA id of the root of the tree over all reduced tensors.

        Top-down, groups are split into blocks (numbered after their parent); then in
        reverse order leaves are ordered and blocks merged.
        """
        holders, is_out = self.red.holders, self.red.is_out
        groups: list[list[int]] = [list(range(len(self.red.hosts)))]
        kept: list[list[int]] = []
        kids: list[range] = []
        k = 0
        while k < len(groups):
            grp = groups[k]
            counts = self.counts(grp)
            kept.append([e for e, c in counts.items() if c < holders[e] or is_out[e]])
            blocks = split(grp, counts) if len(grp) > max(cutoff, 2) else []
            if len(blocks) > 1:
                kids.append(range(len(groups), len(groups) + len(blocks)))
                groups += blocks
            else:
                kids.append(range(0))
            k += 1
        ssa = [0] * len(groups)
        terms = self.red.terms
        for k in range(len(groups) - 1, -1, -1):
            if kids[k]:
                items = [(ssa[c], kept[c]) for c in kids[k]]
                ssa[k] = self.order(items, kept[k], self.exact_merge)
            else:
                grp = groups[k]
                items = [(self.red.emit(self.red.hosts[v], self.merges), terms[v]) for v in grp]
                ssa[k] = items[0][0] if len(items) == 1 else self.order(items, kept[k],
                                                                          self.exact)
            groups[k] = []
        return ssa[0]

    def order(self, items: Sequence[tuple[int, Sequence[int]]], kept: Sequence[int],
              exact: int) -> int:
        """Merge ``(ssa id, indices)`` items keeping ``kept``; the SSA id of the result."""
        n = self.red.network.num_tensors
        if len(items) == 2:
            self.merges.append((items[0][0], items[1][0]))
            return n + len(self.merges) - 1
        local: dict[int, int] = {}
        masks = []
        for _, idx in items:
            m = 0
            for e in idx:
                j = local.get(e)
                if j is None:
                    j = local[e] = len(local)
                m |= 1 << j
            masks.append(m)
        keep = 0
        for e in kept:
            j = local.get(e)
            if j is not None:
                keep |= 1 << j
        sizes = [0] * len(local)
        for e, j in local.items():
            sizes[j] = self.red.network.sizes[e]
        if len(items) <= exact:
            _, split, _ = subset_dp(masks, keep, sizes, self.objective)
            ids = {1 << j: s for j, (s, _) in enumerate(items)}
            return append_merges((1 << len(items)) - 1, lambda s: (split[s], s ^ split[s]),
                                 ids, self.merges, n)
        ids_list = [s for s, _ in items]
        for a, b in greedy_order(masks, keep, sizes):
            self.merges.append((ids_list[a], ids_list[b]))
            ids_list.append(n + len(self.merges) - 1)
        return ids_list[-1]


def greedy_order(masks: Sequence[int], keep: int, sizes: Sequence[int]
                 ) -> list[tuple[int, int]]:
    """Greedy SSA merges of a few tensors: least ``size(ab) - size(a) - size(b)`` first.

    Indices in ``keep`` are never summed; tensors that share no index are merged last,
    smallest first.
    """
    count = [0] * len(sizes)
    for mk in masks:
        for j in bits(mk):
            count[j] += 1
    live = dict(enumerate(masks))
    size = {v: size_of(mk, sizes) for v, mk in live.items()}

    def result(a: int, b: int) -> int:
        ma, mb = live[a], live[b]
        summed = 0
        for j in bits(ma & mb & ~keep):
            if count[j] == 2:
                summed |= 1 << j
        return (ma | mb) & ~summed

    heap: list[tuple[int, int, int]] = []

    def push(a: int, b: int) -> None:
        heapq.heappush(heap, (size_of(result(a, b), sizes) - size[a] - size[b], a, b))

    for a in range(len(masks)):
        for b in range(a + 1, len(masks)):
            if masks[a] & masks[b]:
                push(a, b)
    merges: list[tuple[int, int]] = []
    nxt = len(masks)
    while len(live) > 1:
        while heap and (heap[0][1] not in live or heap[0][2] not in live):
            heapq.heappop(heap)
        if heap:
            _, a, b = heapq.heappop(heap)
        else:  # no shared index left: outer products, smallest first
            a, b = sorted(live, key=lambda v: (size[v], v))[:2]
        r = result(a, b)
        for j in bits(live[a] & live[b]):
            count[j] -= 1
        del live[a], live[b]
        merges.append((a, b))
        live[nxt] = r
        size[nxt] = size_of(r, sizes)
        for v in live:
            if v != nxt and live[v] & r:
                push(v, nxt)
        nxt += 1
    return merges
