"""Common subexpressions: the same operands twice, computed once.

When an einsum's operands split into two groups that are the same arrays under a
renaming of indices (``nmi,nki,nmj,nkj->n`` on ``B, A, B, A``: ``B[nmi] A[nki]`` and
``B[nmj] A[nkj]``), the einsum is ``R(ext) R(phi(ext))`` (times the operands in
neither group), where ``R`` sums the first group over the indices only it holds and
``phi`` renames them. ``R`` is then computed once: for the example, the per-example
gradient ``R[n,m,k]``, squared and summed. The planner prices this form beside the
plain one and keeps the cheaper.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from ..parse import Equation, Label

__all__ = ["Twins", "find_twins", "MAX_PAIRS"]

#: at most this many operand pairs are tried exhaustively (3**pairs splits)
MAX_PAIRS = 4


@dataclass(frozen=True, slots=True)
class Twins:
    """A split of an einsum's operands into a group, its twin group, and the rest.

    Attributes:
        first, second: operand positions; ``second[j]`` is the same array as
            ``first[j]`` with its indices renamed.
        rest: the other operand positions.
        inner: the einsum of ``first`` producing ``R`` over its external indices.
        outer: the einsum of ``R``, its renamed copy and ``rest``, giving the output.
    """

    first: tuple[int, ...]
    second: tuple[int, ...]
    rest: tuple[int, ...]
    inner: Equation
    outer: Equation


def _rename(first: Sequence[Sequence[Label]], second: Sequence[Sequence[Label]]
            ) -> dict[Label, Label] | None:
    """The positional renaming of ``first``'s terms into ``second``'s, if a bijection."""
    phi: dict[Label, Label] = {}
    back: dict[Label, Label] = {}
    for a, b in zip(first, second, strict=True):
        if len(a) != len(b):
            return None
        for la, lb in zip(a, b, strict=True):
            if phi.setdefault(la, lb) != lb or back.setdefault(lb, la) != la:
                return None
    return phi


def find_twins(inputs: Sequence[Sequence[Label]], output: Sequence[Label],
               aliases: Sequence[int]) -> list[Twins]:
    """Every valid split of the operands (``aliases[k]``: the first position holding the
    same array as operand ``k``) into twin groups, smallest rest first.

    Up to :data:`MAX_PAIRS` pairs every split is tried; beyond, only the split with every
    pair divided, each pair's orientation propagated from the first along shared
    indices (:func:`_oriented`): the squared norm of a long chain, for instance."""
    classes: dict[int, list[int]] = {}
    for k, a in enumerate(aliases):
        classes.setdefault(a, []).append(k)
    pairs = [tuple(v) for v in classes.values() if len(v) == 2]
    if not pairs:
        return []
    single = tuple(k for v in classes.values() if len(v) != 2 for k in v)
    if len(pairs) > MAX_PAIRS:
        tw = _split(inputs, output, pairs, single, _oriented(inputs, pairs))
        return [] if tw is None else [tw]
    found = []
    # Each pair is split one way or the other between the copies, or left whole to the
    # outer einsum (an operand that is the same in both copies, such as a shared input).
    for choice in itertools.product((0, 1, 2), repeat=len(pairs)):
        kept = [c for c in choice if c != 2]
        if not kept or kept[0] == 1:
            continue  # the first split pair keeps its order: each split is seen once
        tw = _split(inputs, output, pairs, single, choice)
        if tw is not None:
            found.append(tw)
    return found


def _oriented(inputs: Sequence[Sequence[Label]], pairs: Sequence[tuple[int, ...]]
              ) -> tuple[int, ...]:
    """Per pair, which operand goes to the first copy: the first pair as given, then
    each pair that shares an index with those placed, the way that extends the renaming
    of the first copy's indices into the second's (most indices agreeing)."""
    phi: dict[Label, Label] = {}
    choice: dict[int, int] = {}
    todo = list(range(len(pairs)))
    while todo:
        placed = {*phi, *phi.values()}
        near = [p for p in todo if placed & {lab for k in pairs[p] for lab in inputs[k]}]
        p = near[0] if near else todo[0]
        todo.remove(p)
        a, b = pairs[p]

        def agree(x: int, y: int) -> int:
            return sum(phi.get(la) == lb for la, lb in zip(inputs[x], inputs[y], strict=False))

        c = 0 if agree(a, b) >= agree(b, a) else 1
        choice[p] = c
        x, y = (a, b) if c == 0 else (b, a)
        for la, lb in zip(inputs[x], inputs[y], strict=False):
            phi.setdefault(la, lb)
    return tuple(choice[p] for p in range(len(pairs)))


def _split(inputs: Sequence[Sequence[Label]], output: Sequence[Label],
           pairs: Sequence[tuple[int, ...]], single: tuple[int, ...],
           choice: Sequence[int]) -> Twins | None:
    """The twin split that ``choice`` names per pair (0: as given, 1: swapped, 2: both
    operands left to the outer einsum), or None if it is not one."""
    split = [(a, b) if c == 0 else (b, a) for (a, b), c in zip(pairs, choice, strict=True)
             if c != 2]
    rest = tuple(sorted(single + tuple(k for p, c in zip(pairs, choice, strict=True)
                                       if c == 2 for k in p)))
    first = tuple(a for a, _ in split)
    second = tuple(b for _, b in split)
    phi = _rename([inputs[k] for k in first], [inputs[k] for k in second])
    if phi is None:
        return None
    in_first = {lab for k in first for lab in inputs[k]}
    in_second = {lab for k in second for lab in inputs[k]}
    outside = {lab for k in rest for lab in inputs[k]} | set(output)
    ext = [lab for lab in dict.fromkeys(lab for k in first for lab in inputs[k])
           if lab in in_second or lab in outside]
    # R's twin must sum exactly the renamed internal indices.
    ext2 = {lab for lab in in_second if lab in in_first or lab in outside}
    if {phi[lab] for lab in ext} != ext2:
        return None
    inner = Equation(tuple(tuple(inputs[k]) for k in first), tuple(ext))
    outer = Equation((tuple(ext), tuple(phi[lab] for lab in ext),
                      *(tuple(inputs[k]) for k in rest)), tuple(output))
    return Twins(first, second, rest, inner, outer)
