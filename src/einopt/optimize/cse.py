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

#: at most this many operand pairs are oriented exhaustively (2**(pairs-1) splits)
MAX_PAIRS = 10


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
    same array as operand ``k``) into twin groups, smallest rest first."""
    classes: dict[int, list[int]] = {}
    for k, a in enumerate(aliases):
        classes.setdefault(a, []).append(k)
    pairs = [tuple(v) for v in classes.values() if len(v) == 2]
    if not pairs or len(pairs) > MAX_PAIRS:
        return []
    rest = tuple(sorted(k for v in classes.values() if len(v) != 2 for k in v))
    found = []
    for flips in itertools.product((False, True), repeat=len(pairs) - 1):
        oriented = [pairs[0]] + [(b, a) if f else (a, b)
                                 for (a, b), f in zip(pairs[1:], flips, strict=True)]
        first = tuple(a for a, _ in oriented)
        second = tuple(b for _, b in oriented)
        phi = _rename([inputs[k] for k in first], [inputs[k] for k in second])
        if phi is None:
            continue
        in_first = {lab for k in first for lab in inputs[k]}
        in_second = {lab for k in second for lab in inputs[k]}
        outside = {lab for k in rest for lab in inputs[k]} | set(output)
        ext = [lab for lab in dict.fromkeys(lab for k in first for lab in inputs[k])
               if lab in in_second or lab in outside]
        # R's twin must sum exactly the renamed internal indices.
        ext2 = {lab for lab in in_second if lab in in_first or lab in outside}
        if {phi[lab] for lab in ext} != ext2:
            continue
        inner = Equation(tuple(tuple(inputs[k]) for k in first), tuple(ext))
        outer = Equation((tuple(ext), tuple(phi[lab] for lab in ext),
                          *(tuple(inputs[k]) for k in rest)), tuple(output))
        found.append(Twins(first, second, rest, inner, outer))
    return found
