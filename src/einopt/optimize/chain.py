"""Exact contraction order for chains of tensors, by the interval dynamic program.

A chain (a matrix chain, a tensor train contracted to a scalar or to its open legs)
orders its tensors so that every shared index joins two neighbours. Its trees without
outer products merge two adjacent intervals at every step, and the best of them follows
from the classic O(n^3) recursion over intervals. Each interval length is one numpy sweep
over all (start, split) pairs, so a 1,000-tensor chain plans in well under a second.

Scope: the optimum is over trees that merge two adjacent intervals of the chain at every
step. Unless every tensor holds some index, that is the search space of
:func:`~einopt.optimize.optimal.optimal` beyond its all-subsets limit. When only the two
end tensors carry free indices it is also the optimum over every binary tree (the tests
check it against the all-subsets search). A free index on a middle tensor can make an
outer product of its neighbours cheaper ('a,ab,bcd,c->d' with a large ``d``):
``strict=True`` declines such chains.

Arithmetic: costs are exact integers. When every value the recursion can meet is below
2**53, the sweep runs on float64, which holds all of them exactly, so the optimum and its
ties are exact. Where that bound (a loose one) is passed, a float64 sweep is tried
first: if the best tree's cost is below 2**53, so is every value it was chosen among
that could beat it (a candidate at or above 2**53 rounds to at least 2**53), and the
tree is exact. Otherwise the sweep runs on natural logs of the costs, whose rounding
error is bounded; the splits of an interval within that bound of its best are compared
again with Python ints, so the tree is still exactly optimal (only slower where many
ties are exact).
Ties go to the smallest left part.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..network import Network
from ..tree import ContractionTree, append_merges
from .acyclic import acyclic_structure
from .objective import FLOPS, Objective

__all__ = ["Chain", "chain_order", "chain_structure", "chain_tree"]

#: float64 holds every integer below ``2**EXACT_BITS`` exactly.
EXACT_BITS = 53
#: Candidates per numpy call: a block of rows stays in cache across the passes over it.
BLOCK = 1 << 16


@dataclass(frozen=True, slots=True)
class Chain:
    """A network read as a chain of ``n`` tensors.

    Attributes:
        order: tensor ids in chain order.
        bonds: ``n + 1`` products of index sizes; ``bonds[k]`` joins positions ``k - 1``
            and ``k``, and ``bonds[0] = bonds[n] = 1``.
        free: per position, the product of the sizes of the indices only that tensor holds.
        batch_out: product of the sizes of the indices every tensor holds and the output keeps.
        batch_sum: the same for those every tensor holds and the last merge sums.
    """

    order: tuple[int, ...]
    bonds: tuple[int, ...]
    free: tuple[int, ...]
    batch_out: int
    batch_sum: int

    def middle_free(self) -> bool:
        """Whether a tensor other than the two ends carries a free index (outer
        products of its neighbours may then beat every tree of adjacent merges)."""
        return any(f != 1 for f in self.free[1:-1])


def chain_order(network: Network) -> list[int] | None:
    """The tensor ids in chain order if ``network`` is a chain of 3+ tensors, else None.

    Runs in time linear in the total length of the terms, so it is cheap on any network.
    """
    chain = chain_structure(network)
    return None if chain is None else list(chain.order)


def chain_structure(network: Network) -> Chain | None:
    """``network`` as a :class:`Chain`, or None if it is not one (or has under 3 tensors).

    In a chain every index is held by one tensor (free, whether the output keeps it or
    not), by two neighbours (a bond, not in the output: several bonds may join the same
    pair), or by every tensor (batch-like); the bonds form one path through all tensors:
    an acyclic network (:func:`~einopt.optimize.acyclic.acyclic_structure`) in which no
    tensor has three neighbours and the output keeps no bond.
    """
    tree = acyclic_structure(network)
    if tree is None or tree.summed != tree.join:
        return None
    n = len(tree.parent)
    nbrs: list[list[int]] = [[] for _ in range(n)]
    for t, p in enumerate(tree.parent):
        if p >= 0:
            nbrs[t].append(p)
            nbrs[p].append(t)
    if any(len(x) > 2 for x in nbrs):
        return None
    order = [next(t for t in range(n) if len(nbrs[t]) == 1)]
    prev = -1
    while len(order) < n:
        cur = order[-1]
        nxt = next(x for x in nbrs[cur] if x != prev)
        prev = cur
        order.append(nxt)
    # the bond between neighbours is the join above whichever is the other's child
    bonds = [1] + [tree.join[b if tree.parent[b] == a else a]
                   for a, b in zip(order[:-1], order[1:], strict=True)] + [1]
    return Chain(tuple(order), tuple(bonds), tuple(tree.free[t] for t in order),
                 tree.batch_out, tree.batch_sum)


def chain_tree(network: Network, objective: Objective = FLOPS, *,
               strict: bool = False) -> ContractionTree | None:
    """The optimal tree of ``network`` under ``objective`` if it is a chain, else None.

    Optimal among trees of adjacent merges (see the module docstring); with ``strict``,
    None also where that may not be the optimum over all trees (free indices on a middle
    tensor). ``objective`` is ``flops``, ``write``, ``combo`` (weight >= 0) or ``size``
    (largest intermediate, then least flops among the trees that reach it).

    Time grows as n**3 (about 0.4 s for 1,000 tensors, 3 s for 2,000) and memory as
    about 18 n**2 bytes, so callers bound ``n``; recognition alone is linear.
    """
    chain = chain_structure(network)
    if chain is None or (strict and chain.middle_free()):
        return None
    split = _solve(chain, objective)
    n = len(chain.order)
    ids: dict[tuple[int, int], int] = {(i, 1): t for i, t in enumerate(chain.order)}
    merges: list[tuple[int, int]] = []

    def children(node: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
        i, length = node
        a = int(split[i, length])
        return (i, a), (i + a, length - a)

    append_merges((0, n), children, ids, merges, n)
    return ContractionTree(n, tuple(merges))


def _solve(chain: Chain, objective: Objective) -> np.ndarray:
    """Table of best splits: ``[i, L]`` is the length of the left part of ``[i, i + L)``.

    Additive objectives weigh each merge as ``cf * flops + cw * size`` (for ``combo`` with
    weight ``w = num / den`` that is ``den`` times its cost, so integers stay integers).
    """
    name = objective.name
    if name in ("flops", "size"):
        cf, cw = 1, 0
    elif name == "write":
        cf, cw = 0, 1
    else:
        w = Fraction(objective.factor)
        if w < 0:
            raise ValueError(f"the write weight of {name!r} must be >= 0, got {w}")
        cf, cw = w.denominator, w.numerator
    n = len(chain.order)
    bits = _log2_bound(chain, cf + cw)
    log = bits >= EXACT_BITS - 1  # a bit to spare for the rounding of the bound itself
    # Rounding of the log sweep stays below (4n + 5) ulps of the largest log value.
    tol = 16 * (n + 8) * np.finfo(float).eps * max(1.0, bits * math.log(2)) if log else 0.0
    if name != "size":
        if log:  # the bound is loose: a float sweep whose root stays below 2**53 is exact
            root, split, _ = _sweep(chain, False, 0.0, cf, cw)
            if root < 2.0 ** EXACT_BITS:
                return split
        return _sweep(chain, log, tol, cf, cw)[1]
    top, _, exact = _sweep(chain, log, tol, 0, 0, max_size=True)
    if exact is None:
        def allowed(length: int, size: np.ndarray) -> np.ndarray:
            return size <= top
    else:
        limit = exact.value(0, n)

        def allowed(length: int, size: np.ndarray) -> np.ndarray:
            ok = size < top - tol
            with np.errstate(invalid="ignore"):  # both -inf where sizes are 0
                near = (size == top) | (np.abs(size - top) <= tol)
            for k in np.flatnonzero(near):
                ok[k] = exact.size(k, length) <= limit
            return ok
    return _sweep(chain, log, tol, 1, 0, allowed=allowed)[1]


def _log2_bound(chain: Chain, weight: int) -> float:
    """log2 of a bound on every cost the recursion meets: ``n - 1`` merges, each of at
    most the batch, all free sizes, three bonds and the weight."""
    def lg(x: int) -> float:
        return math.log2(x) if x > 1 else 0.0

    return (lg(len(chain.order)) + lg(chain.batch_out * chain.batch_sum)
            + sum(lg(f) for f in chain.free) + 3 * lg(max(chain.bonds)) + lg(weight))


def _values(xs: Sequence[int], log: bool) -> np.ndarray:
    if log:
        return np.array([math.log(x) if x else -math.inf for x in xs])
    return np.array(xs, dtype=float)


Allowed = Callable[[int, np.ndarray], np.ndarray]


def _sweep(chain: Chain, log: bool, tol: float, cf: int, cw: int, *, max_size: bool = False,
           allowed: Allowed | None = None
           ) -> tuple[float, np.ndarray, _Exact | None]:
    """One pass of the interval recursion, shortest intervals first.

    Values live in two tables, by start (``C[i, L]``) and by end (``R[j, n - L]``), so
    that the left and right parts of every split of one length are contiguous slices.
    With ``max_size`` the cost is the largest result; with ``allowed`` (length, result
    sizes of the intervals of that length) -> mask, the other intervals are ruled out.

    Returns the root's value, the split table and, on the log scale, the exact
    arithmetic that settled near ties.
    """
    n = len(chain.order)
    zero = -np.inf if log else 0.0
    p = _values(chain.bonds, log)
    free = _values(chain.free, log)
    b_all, b_out = _values([chain.batch_out * chain.batch_sum, chain.batch_out], log)
    C = np.full((n, n + 1), zero)
    R = np.full((n, n + 1), zero)
    split = np.zeros((n, n + 1), dtype=np.int16 if n < 1 << 15 else np.int32)
    exact = _Exact(chain, cf, cw, split, max_size) if log else None
    lcf = math.log(cf) if log and cf else 0.0
    lcw = math.log(cw) if log and cw else 0.0
    part = free.copy()  # free-size product of [i, i + L), kept up to date with L
    buf = np.empty(BLOCK + n)
    rows_at = np.arange(n)
    for length in range(2, n + 1):
        r, w = n - length + 1, length - 1
        if log:
            part[:r] += free[length - 1:]
            flop = p[:r] + p[length:] + part[:r] + b_all
            size = flop if length < n else part[:1] + b_out
            coef = flop + lcf
        else:
            part[:r] *= free[length - 1:]
            flop = p[:r] * p[length:] * part[:r] * b_all
            size = flop if length < n else part[:1] * b_out
            coef = flop * cf
        window = sliding_window_view(p, w)  # window[i + 1][a - 1] = p[i + a]
        best = np.empty(r)
        pick = np.empty(r, dtype=np.intp)
        step = max(1, BLOCK // w)
        for s in range(0, r, step):
            e = min(r, s + step)
            b = buf[:(e - s) * w].reshape(e - s, w)
            left, right = C[s:e, 1:length], R[length - 1 + s:length - 1 + e, n - length + 1:n]
            if max_size:
                np.maximum(left, right, out=b)
            elif log:
                np.logaddexp(left, right, out=b)
                if cf:
                    np.logaddexp(b, window[s + 1:e + 1] + coef[s:e, None], out=b)
            else:
                if cf:
                    np.multiply(window[s + 1:e + 1], coef[s:e, None], out=b)
                    b += left
                else:
                    np.copyto(b, left)
                b += right
            k = b.argmin(axis=1)
            pick[s:e] = k
            best[s:e] = b[rows_at[:e - s], k]
            if exact is not None:
                near = b <= (best[s:e] + tol)[:, None]
                for row in np.flatnonzero((near.sum(axis=1) > 1) & (best[s:e] < np.inf)):
                    pick[s + row] = exact.choose(s + row, length, np.flatnonzero(near[row]))
        if max_size:
            value = np.maximum(best, size)
        elif cw:
            value = np.logaddexp(best, size + lcw) if log else best + size * cw
        else:
            value = best
        if allowed is not None:
            value = np.where(allowed(length, size), value, np.inf)
        C[:r, length] = value
        R[length - 1:, n - length] = value
        split[:r, length] = pick + 1
    return float(C[0, n]), split, exact


class _Exact:
    """Exact integer costs of intervals along the chosen splits, to settle near ties."""

    def __init__(self, chain: Chain, cf: int, cw: int, split: np.ndarray,
                 max_size: bool) -> None:
        self.n = len(chain.order)
        self.bonds = chain.bonds
        self.cf, self.cw, self.split, self.max_size = cf, cw, split, max_size
        self.b_all = chain.batch_out * chain.batch_sum
        self.b_out = chain.batch_out
        # Prefix products of the free sizes, zeros counted apart so quotients stay exact.
        self.prefix, self.zeros = [1], [0]
        for f in chain.free:
            self.prefix.append(self.prefix[-1] * (f or 1))
            self.zeros.append(self.zeros[-1] + (f == 0))
        self.memo: dict[tuple[int, int], int] = {}

    def _free(self, i: int, length: int) -> int:
        if self.zeros[i + length] - self.zeros[i]:
            return 0
        return self.prefix[i + length] // self.prefix[i]

    def flop(self, i: int, length: int) -> int:
        """Size of interval ``[i, i + length)``'s result before the last merge sums."""
        return self.bonds[i] * self.bonds[i + length] * self._free(i, length) * self.b_all

    def size(self, i: int, length: int) -> int:
        """Size of interval ``[i, i + length)``'s result."""
        if length == self.n:
            return self._free(0, self.n) * self.b_out
        return self.flop(i, length)

    def value(self, i: int, length: int) -> int:
        """Exact cost of the chosen tree over ``[i, i + length)`` (its splits are final)."""
        memo, split = self.memo, self.split
        stack = [(i, length)]
        while stack:
            node = stack[-1]
            if node in memo:
                stack.pop()
                continue
            j, m = node
            if m == 1:
                memo[node] = 0
                stack.pop()
                continue
            a = int(split[j, m])
            kids = [(j, a), (j + a, m - a)]
            missing = [kid for kid in kids if kid not in memo]
            if missing:
                stack += missing
                continue
            x, y = memo[kids[0]], memo[kids[1]]
            if self.max_size:
                memo[node] = max(x, y, self.size(j, m))
            else:
                memo[node] = (x + y + self.cf * self.flop(j, m) * self.bonds[j + a]
                              + self.cw * self.size(j, m))
            stack.pop()
        return memo[i, length]

    def choose(self, i: int, length: int, near: np.ndarray) -> int:
        """Among the near-best splits (left lengths ``near + 1``), the exact best."""
        flop = self.flop(i, length) if self.cf and not self.max_size else 0
        costs = []
        for k in near.tolist():
            a = k + 1
            x, y = self.value(i, a), self.value(i + a, length - a)
            costs.append(max(x, y) if self.max_size else
                         x + y + self.cf * flop * self.bonds[i + a])
        return int(near[costs.index(min(costs))])
