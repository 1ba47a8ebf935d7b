"""opt_einsum's greedy rule, reimplemented to give the very same tree: ``auto``'s floor.

``auto`` starts from this tree and only ever replaces it by a cheaper one, so it is never
worse than ``opt_einsum.paths.greedy``, on hyperedges and batch outputs too. The rule:

1. tensors with identical index sets are multiplied first (Hadamard products);
2. an index held by every tensor counts as an output index; only pairs that share a
   non-output index are candidates, scored ``size(result) - size(a) - size(b)``, ties
   going to the pair whose newer tensor is older, then whose older tensor is older;
3. at first each tensor queues its best partner per index among the tensors after it,
   and each new tensor queues its best partner; a queued pair whose tensor is gone is
   dropped (never re-scored), unless the tensor was multiplied into one with the same
   indices, which inherits it;
4. what is left is joined by outer products, smallest output part first.

The work is that of opt_einsum's function with cheaper arithmetic: a candidate's result
size comes from the few indices the pair shares, not from set algebra over both.
"""

from __future__ import annotations

import heapq
import math

from ..network import Network
from ..tree import ContractionTree

__all__ = ["reference_greedy"]


def reference_greedy(network: Network) -> ContractionTree:
    """The tree ``opt_einsum.paths.greedy`` finds for ``network``'s operands.

    Works on the operands' own index sets (``network.raw``: size-1 axes and indices only
    one operand holds included, as opt_einsum sees them).
    """
    n = network.num_tensors
    if n <= 1:
        return ContractionTree(n, ())
    sizes = network.sizes
    keys = [frozenset(t) for t in network.raw]
    out = frozenset(network.output) | frozenset.intersection(*keys)
    merges: list[tuple[int, int]] = []
    nxt = n  # the next SSA id

    key_of: dict[int, frozenset[int]] = {}
    id_of: dict[frozenset[int], int] = {}
    for t, key in enumerate(keys):
        old = id_of.get(key)
        if old is None:
            id_of[key] = t
            key_of[t] = key
        else:
            merges.append((old, t))
            del key_of[old]
            id_of[key] = nxt
            key_of[nxt] = key
            nxt += 1

    holders: dict[int, set[int]] = {}
    for t, key in key_of.items():
        for i in key:
            if i not in out:
                holders.setdefault(i, set()).add(t)
    size: dict[int, int] = {t: math.prod([sizes[i] for i in key]) for t, key in key_of.items()}
    # Product of the indices only this tensor holds (not output): summed at its next merge.
    alone: dict[int, int] = {}
    for i, h in holders.items():
        if len(h) == 1 and sizes[i] != 1:
            (t,) = h
            alone[t] = alone.get(t, 1) * sizes[i]

    def cost(x: int, y: int) -> int:
        div = alone.get(x, 1) * alone.get(y, 1)
        for i in key_of[x] & key_of[y]:
            s = sizes[i]
            div *= s if i in out or len(holders[i]) > 2 else s * s
        if not div:  # a size-0 index: count the result's indices one by one
            return joined(x, y) - size[x] - size[y]
        return size[x] * size[y] // div - size[x] - size[y]

    def joined(x: int, y: int) -> int:
        """The size of x and y's product: their output indices and those others hold."""
        return math.prod([sizes[i] for i in key_of[x] | key_of[y]
                          if i in out or len(holders[i] - {x, y}) > 0])

    # A pair's result is fixed when the pair is queued, as opt_einsum does: an index is
    # kept if it is an output index, held by the pair's one tensor and another, or shared
    # and held by 3+ tensors. Holder counts only fall, so the step at which an index's
    # count first fell to 2 and to 1 tells what it was when a waiting pair was queued
    # (queued at its newer tensor's birth step; a pair valid again after a tensor was
    # multiplied into one with the same indices keeps its old result).
    step = 0
    born: dict[int, int] = {}
    fell2 = {i: 0 for i, h in holders.items() if len(h) <= 2}
    fell1 = {i: 0 for i, h in holders.items() if len(h) <= 1}
    never = math.inf

    queue: list[tuple[int, int, int]] = []  # (cost, newer id, older id)
    scored: dict[tuple[int, int], int] = {}
    for h in holders.values():
        if len(h) < 2:
            continue
        ids = sorted(h)
        for a, x in enumerate(ids[:-1]):
            best = None
            for y in ids[a + 1:]:
                c = scored.get((x, y))
                if c is None:
                    c = scored[(x, y)] = cost(x, y)
                if best is None or (c, y) < best[:2]:
                    best = (c, y, x)
            queue.append(best)  # type: ignore[arg-type]
    heapq.heapify(queue)

    # A queued pair names its tensors by their index sets: it stays valid while tensors
    # with those indices remain (a tensor that absorbed a smaller one, or was multiplied
    # by one with the same indices, inherits its queued pairs).
    ever = dict(key_of)
    while queue:
        _, y0, x0 = heapq.heappop(queue)
        kx, ky = ever[x0], ever[y0]
        x, y = id_of.get(kx, -1), id_of.get(ky, -1)
        if x < 0 or y < 0:
            continue
        cx, cy = (kx - out, ky - out) if out else (kx, ky)  # the indices that join tensors
        queued = born.get(y0, 0)
        shared = cx & cy
        kz = frozenset([i for i in cx ^ cy if fell1.get(i, never) > queued]
                       + [i for i in shared if fell2.get(i, never) > queued])
        if out:
            kz |= (kx | ky) & out
        step += 1
        del key_of[x], key_of[y], id_of[kx], id_of[ky]
        for i in cx:
            holders[i].discard(x)
        for i in cy:
            holders[i].discard(y)
        merges.append((x, y))
        z = nxt
        nxt += 1
        old = id_of.get(kz)
        cz = kz - out if out else kz
        if old is not None:  # equal to a waiting tensor's indices: multiply them now
            merges.append((old, z))
            del key_of[old]
            for i in cz:
                holders[i].discard(old)
            z = nxt
            nxt += 1
        for i in cz:
            holders[i].add(z)
        born[z] = step
        for i in (cz if old is not None else shared & cz):  # the counts that fell
            left = len(holders[i])
            if left <= 2 and i not in fell2:
                fell2[i] = step
            if left <= 1 and i not in fell1:
                fell1[i] = step
        key_of[z] = ever[z] = kz
        id_of[kz] = z
        sz = size[z] = math.prod([sizes[i] for i in kz])
        # A pair queued before some of its partners merged away keeps indices no other
        # tensor holds now: they are summed at this tensor's next merge.
        lone = [sizes[i] for i in cz if len(holders[i]) == 1]
        az = alone[z] = math.prod(lone) if lone else 1
        partners = set().union(*[holders[i] for i in cz])
        partners.discard(z)
        if not partners:
            continue
        # z is the newest tensor: its best partner, ties going to the older one (cost()
        # inlined: this loop is most of the time).
        bc = bw = -1
        first = True
        for w in partners:
            div = az * alone.get(w, 1)
            for i in kz & key_of[w]:
                s = sizes[i]
                div *= s if i in out or len(holders[i]) > 2 else s * s
            sw = size[w]
            c = (sz * sw // div if div else joined(z, w)) - sz - sw
            if first or c < bc or (c == bc and w < bw):
                bc, bw, first = c, w, False
        heapq.heappush(queue, (bc, z, bw))

    # Outer products, smallest output part first.
    rest = [(math.prod([sizes[i] for i in key & out]), t, key) for t, key in key_of.items()]
    heapq.heapify(rest)
    _, a, ka = heapq.heappop(rest)
    while rest:
        _, b, kb = heapq.heappop(rest)
        merges.append((min(a, b), max(a, b)))
        kz = (ka | kb) & out
        _, a, ka = heapq.heappushpop(rest, (math.prod([sizes[i] for i in kz]), nxt, kz))
        nxt += 1
    return ContractionTree(n, tuple(merges))
