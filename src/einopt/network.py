"""Stage 2: :class:`Equation` + shapes -> :class:`Network`, the einsum as a hypergraph.

Tensors are nodes and indices are (hyper)edges. Indices are renumbered to small ints,
each tensor's index set is an int bitmask and sizes live in one tuple. Ellipsis
dimensions become ordinary indices and size-1 broadcasting is resolved here. The
simplifications that are always right are applied to each operand before any pairwise
step: a repeated index is a diagonal, a size-1 axis drops out, and an index held by one
tensor only and absent from the output is summed first (the distributive law).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import OperandTypeError, ShapeError, SubscriptError
from .parse import Equation, Label

__all__ = ["EllipsisDim", "Network", "assemble", "build_network", "bits", "components",
           "label_text", "expand_labels", "shape_of"]


@dataclass(frozen=True, slots=True)
class EllipsisDim:
    """The label of the ``k``-th broadcast dimension that an ellipsis stands for."""

    k: int

    def __repr__(self) -> str:
        return f"…{self.k}"


def label_text(label: Label) -> str:
    """How a label is printed in reports and generated code comments."""
    return repr(label) if isinstance(label, EllipsisDim) else str(label)


#: Long masks with many set bits are read 64 bits at a time: on a network of thousands
#: of indices, bit tricks on the whole integer cost time proportional to its length per
#: set bit.
LONG_MASK = 256
FEW_BITS = 16


def bits(mask: int) -> list[int]:
    """Positions of the set bits of ``mask``, lowest first."""
    out = []
    if mask.bit_length() > LONG_MASK and mask.bit_count() > FEW_BITS:
        words = memoryview(mask.to_bytes((mask.bit_length() + 63) // 64 * 8, "little"))
        for k, w in enumerate(words.cast("Q")):
            if w:
                base = 64 * k
                while w:
                    low = w & -w
                    out.append(base + low.bit_length() - 1)
                    w ^= low
        return out
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


@dataclass(frozen=True, slots=True)
class Network:
    """An einsum as a hypergraph over int-numbered indices.

    Attributes:
        labels: the user's label of each index id (``EllipsisDim`` for ``...`` dims).
        sizes: the (broadcast) size of each index id.
        raw: per operand, the index id of each of its axes, before simplification.
        terms: per tensor, its index ids after simplification (diagonals taken, size-1
            axes dropped, indices only it holds and not in the output summed).
        output: the output's index ids in order (size-1 ones included).
        masks: per tensor, the bitmask of ``terms``.
        output_mask: bitmask of the output indices that some tensor still holds.
    """

    labels: tuple[Label, ...]
    sizes: tuple[int, ...]
    raw: tuple[tuple[int, ...], ...]
    terms: tuple[tuple[int, ...], ...]
    output: tuple[int, ...]
    masks: tuple[int, ...]
    output_mask: int

    @property
    def num_tensors(self) -> int:
        """Number of tensors (one per operand)."""
        return len(self.terms)

    @property
    def num_indices(self) -> int:
        """Number of distinct indices."""
        return len(self.sizes)

    def naive_flops(self) -> int:
        """Product of all index sizes times max(1, number of operands - 1)."""
        return math.prod(self.sizes) * max(1, len(self.raw) - 1)


def _name(label: Label) -> str:
    return "'...'" if isinstance(label, EllipsisDim) else repr(label)


def _expand(eq: Equation, shapes: Sequence[tuple[int, ...]]) -> tuple[list[list[Label]], int]:
    """Replace each operand's ellipsis by its broadcast dims, checking ranks."""
    counts = []
    for k, (term, shape) in enumerate(zip(eq.inputs, shapes, strict=True)):
        named = len(term) - (1 if ... in term else 0)
        nd = len(shape)
        if ... in term:
            if nd < named:
                raise ShapeError(
                    f"operand {k} has {named} subscripts besides '...' but only {nd} "
                    f"dimensions (shape {tuple(shape)})"
                )
            counts.append(nd - named)
        else:
            if nd != named:
                raise ShapeError(
                    f"operand {k} has {named} subscripts {_term_text(term)} but {nd} "
                    f"dimensions (shape {tuple(shape)})"
                )
            counts.append(0)
    ell = max(counts, default=0)
    expanded = []
    for term, e in zip(eq.inputs, counts, strict=True):
        labs: list[Label] = []
        for lab in term:
            if lab is ...:
                labs.extend(EllipsisDim(ell - e + j) for j in range(e))
            else:
                labs.append(lab)
        expanded.append(labs)
    return expanded, ell


def expand_labels(eq: Equation, shapes: Sequence[tuple[int, ...]]
                  ) -> tuple[list[list[Label]], list[Label]]:
    """Per operand and for the output, the labels with each ``...`` replaced by its
    broadcast dims (``EllipsisDim``), checking ranks."""
    expanded, ell = _expand(eq, shapes)
    return expanded, _expand_output(eq, ell)


def _expand_output(eq: Equation, ell: int) -> list[Label]:
    out: list[Label] = []
    for lab in eq.output:
        out.extend(EllipsisDim(j) for j in range(ell)) if lab is ... else out.append(lab)
    return out


def _term_text(term: Sequence[Label]) -> str:
    return repr("".join("..." if t is ... else str(t) for t in term))


def build_network(eq: Equation, shapes: Sequence[Sequence[int]]) -> Network:
    """Build the hypergraph of ``eq`` for operands of the given ``shapes``.

    Raises:
        SubscriptError: operand count differs from the subscripts, or the output lacks
            an ellipsis the inputs need.
        ShapeError: rank mismatch, non-square diagonal, or sizes that do not broadcast.
    """
    dims = [tuple(int(d) for d in s) for s in shapes]
    if len(shapes) != eq.nops:
        raise SubscriptError(
            f"the subscripts name {eq.nops} operand{'s' if eq.nops != 1 else ''} "
            f"but {len(shapes)} {'were' if len(shapes) != 1 else 'was'} given"
        )
    expanded, ell = _expand(eq, dims)

    ids: dict[Label, int] = {}
    labels: list[Label] = []
    sizes: list[int] = []
    first: list[int] = []  # operand that fixed each size (for messages)
    raw: list[tuple[int, ...]] = []
    for k, (labs, shape) in enumerate(zip(expanded, dims, strict=True)):
        local: dict[int, int] = {}
        axes = []
        for lab, d in zip(labs, shape, strict=True):
            i = ids.get(lab)
            if i is None:
                i = ids[lab] = len(labels)
                labels.append(lab)
                sizes.append(d)
                first.append(k)
            if i in local:
                if local[i] != d:
                    raise ShapeError(
                        f"operand {k} repeats index {_name(lab)} with sizes {local[i]} and {d}; "
                        "a repeated index takes a diagonal, which needs equal sizes"
                    )
            else:
                local[i] = d
                cur = sizes[i]
                if cur != d:
                    if cur == 1:
                        sizes[i], first[i] = d, k
                    elif d != 1:
                        raise ShapeError(
                            f"index {_name(lab)} has size {cur} in operand {first[i]} but size "
                            f"{d} in operand {k} (sizes must match or one must be 1)"
                        )
            axes.append(i)
        raw.append(tuple(axes))

    out_labels = _expand_output(eq, ell)
    if ell and ... not in eq.output:
        raise SubscriptError(
            f"the inputs' '...' stands for {ell} dimension(s) but the output has no '...'"
        )
    output = tuple(ids[lab] for lab in out_labels)
    return assemble(tuple(labels), tuple(sizes), tuple(raw), dims, output)


def assemble(labels: tuple[Label, ...], sizes: tuple[int, ...],
             raw: tuple[tuple[int, ...], ...], shapes: Sequence[Sequence[int]],
             output: tuple[int, ...]) -> Network:
    """The network of operands of ``shapes`` whose axes carry index ids ``raw``
    (numbered ``0..`` by first appearance, ``labels`` naming them), their sizes checked
    and broadcast (``sizes``), and ``output`` ids: size-1 axes dropped (broadcast or
    trivially summed), repeats merged (diagonals), and indices one operand alone holds
    and the output drops left out of its term (summed inside it first)."""
    out_set = set(output)
    kept = [tuple(dict.fromkeys(i for i, d in zip(axes, shape, strict=True) if d != 1))
            for axes, shape in zip(raw, shapes, strict=True)]
    holders = [0] * len(sizes)
    for term in kept:
        for i in term:
            holders[i] += 1
    terms = tuple(tuple(i for i in term if holders[i] > 1 or i in out_set) for term in kept)

    masks = []
    held = 0
    for term in terms:
        m = 0
        for i in term:
            m |= 1 << i
        masks.append(m)
        held |= m
    out_mask = 0
    for i in output:
        out_mask |= 1 << i
    return Network(
        labels=labels,
        sizes=sizes,
        raw=raw,
        terms=terms,
        output=output,
        masks=tuple(masks),
        output_mask=out_mask & held,
    )


def components(terms: Sequence[Iterable[Hashable]]) -> list[list[int]]:
    """Tensor positions grouped by connection through shared indices (each group in
    order, groups by their first tensor): the factors of a disconnected einsum."""
    parent = list(range(len(terms)))

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    owner: dict[Hashable, int] = {}
    for k, term in enumerate(terms):
        for lab in term:
            parent[find(k)] = find(owner.setdefault(lab, k))
    groups: dict[int, list[int]] = {}
    for k in range(len(terms)):
        groups.setdefault(find(k), []).append(k)
    return list(groups.values())


def shape_of(x: Any, k: int) -> tuple[int, ...]:
    """The shape of operand ``k``: an array's, or a shape tuple of non-negative ints."""
    if hasattr(x, "shape"):
        return tuple(int(d) for d in x.shape)
    if isinstance(x, (tuple, list)) and all(isinstance(d, (int, np.integer)) for d in x):
        if any(d < 0 for d in x):
            raise ShapeError(f"operand {k}: shape {tuple(x)} has a negative size")
        return tuple(int(d) for d in x)
    raise OperandTypeError(
        f"operand {k} is a {type(x).__name__}; give an array or a shape tuple of ints"
    )
