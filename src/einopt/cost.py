"""Cost model: pure functions over index bitmasks.

A pairwise step on tensors with index sets ``a`` and ``b`` costs the product of the sizes
of every index in ``a | b`` (one multiply-add per point of the joint loop nest). Its
result keeps an index while any other remaining tensor, or the output, still holds it;
:class:`HolderCounts` tracks that exactly, hyperedges included.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from .network import FEW_BITS, LONG_MASK, bits

__all__ = ["size_of", "pair_flops", "HolderCounts", "count_text", "ratio", "ratio_text"]


def count_text(x: int | float, digits: int = 3) -> str:
    """``x`` in ``%.{digits}g`` style, also where it is an int beyond any float's range.

    Costs are exact Python ints: a network of a thousand binary indices has a naive cost
    near ``2**1000``, which ``float(x)`` (and so ``f"{x:.3g}"``) cannot convert.
    """
    if isinstance(x, int) and x.bit_length() > 1000:
        e = math.floor(math.log10(x))
        m = round(10 ** (math.log10(x) - e), digits - 1)
        if m >= 10:
            m, e = m / 10, e + 1
        return f"{m:.{digits - 1}f}e+{e}"
    return f"{x:.{digits}g}"


def ratio(a: int | float, b: int | float) -> float:
    """``a / b`` as a float, ``inf`` where the quotient passes the float range (huge ints)."""
    if b == 0:
        return math.inf if a else math.nan
    try:
        return a / b
    except OverflowError:
        return math.inf if (a > 0) == (b > 0) else -math.inf


def ratio_text(a: int, b: int, digits: int = 3) -> str:
    """``a / b`` printed like :func:`count_text`, exact in magnitude at any size."""
    b = max(b, 1)
    try:
        return f"{a / b:.{digits}g}"
    except OverflowError:
        return count_text(a // b, digits)


def size_of(mask: int, sizes: Sequence[int]) -> int:
    """Elements of a tensor whose indices are the set bits of ``mask``."""
    if mask.bit_length() > LONG_MASK and mask.bit_count() > FEW_BITS:
        return math.prod([sizes[i] for i in bits(mask)])
    n = 1
    while mask:
        low = mask & -mask
        n *= sizes[low.bit_length() - 1]
        mask ^= low
    return n


def pair_flops(a: int, b: int, sizes: Sequence[int], size_a: int | None = None,
               size_b: int | None = None) -> int:
    """Flops of merging tensors with index masks ``a`` and ``b``: the size of ``a | b``.

    Given the two tensors' sizes it is their product over the size of the (few) shared
    indices, which avoids walking every index of ``a | b``.
    """
    if size_a is not None and size_b is not None:
        shared = size_of(a & b, sizes)
        if shared:
            return size_a * size_b // shared
    return size_of(a | b, sizes)


class HolderCounts:
    """For each index, how many current tensors hold it; gives exact merge results.

    Start from the leaves' masks; each :meth:`merge` replaces two current tensors by
    their result, whose mask keeps an index iff it is in the output or still held by
    another current tensor.
    """

    __slots__ = ("counts", "output")

    def __init__(self, masks: Iterable[int], output: int, num_indices: int) -> None:
        counts = [0] * num_indices
        for m in masks:
            for i in bits(m):
                counts[i] += 1
        self.counts = counts
        self.output = output

    def result(self, a: int, b: int) -> int:
        """Mask of the result of merging ``a`` and ``b`` (without recording it)."""
        drop = 0
        counts = self.counts
        shared = a & b & ~self.output
        while shared:
            low = shared & -shared
            if counts[low.bit_length() - 1] == 2:
                drop |= low
            shared ^= low
        return (a | b) & ~drop

    def merge(self, a: int, b: int) -> int:
        """Record the merge of current tensors ``a`` and ``b``; return the result mask."""
        counts, output = self.counts, self.output
        drop = 0
        shared = a & b
        while shared:
            low = shared & -shared
            i = low.bit_length() - 1
            counts[i] -= 1  # two holders become one
            if counts[i] == 1 and not output & low:
                drop |= low
                counts[i] = 0  # summed away: no tensor holds it any more
            shared ^= low
        return (a | b) & ~drop
