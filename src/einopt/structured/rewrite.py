"""Structured operands out of an einsum, by index substitution (rules that are always
right, applied before planning).

- A delta merges its indices into one label: free. Two equal patterns that share two
  indices are one pattern and a delta (the shared two fix the third).
- A convolution pattern ``P[k, o, i]`` (``i == d*k + s*o - p``) first has the indices
  only it holds summed (its multiplicities: ``sum_{k,o} P[k, o, i]`` is how many taps
  read input ``i``). Then one of its indices that the output lacks is solved for from
  the other two -- ``i`` (a sliding-window view), else ``o`` (``(i + p - d*k) / s``,
  the transposed convolution's zero-stuffed view), else ``k`` -- and substituted into
  every operand holding it. Two patterns never meet densely: each substitutes its own
  index, so ``sum_o P[k,o,i] P[k',o,i']`` against operands becomes a contraction of two
  windowed views.
- A selector ``S[..., c]`` gathers: ``c`` is replaced by ``indices[...]`` in every
  operand holding it.

What remains is an ordinary einsum over views of the operands, whose cost the
optimizer counts exactly (a windowed view has the size of the im2col matrix, and its
contraction with a kernel costs the direct multiply-add count). An operand the rules
cannot remove is materialized (small: a 1-d pattern is ``K*O*I`` entries).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from ..caches import memoize
from ..errors import ShapeError, SubscriptError
from ..network import expand_labels
from ..parse import Equation, Label
from .operands import ConvPattern, Delta, Selector, Structured

__all__ = ["Affine", "Gather", "Source", "Rewrite", "rewrite", "spec_of", "kind_of"]


@dataclass(frozen=True, slots=True)
class Affine:
    """Replace axis ``axis`` (length ``length``) by two axes of ``sizes``:
    ``V[u1, u2] = X[(a1*u1 + a2*u2 + offset) / divisor]`` where that is an integer in
    ``[0, length)``, else 0."""

    axis: int
    sizes: tuple[int, int]
    coef: tuple[int, int]
    offset: int
    divisor: int
    length: int

    def index(self) -> tuple[np.ndarray, np.ndarray]:
        """The source position of each ``(u1, u2)``, and whether it is valid."""
        u1 = np.arange(self.sizes[0])[:, None]
        u2 = np.arange(self.sizes[1])[None, :]
        num = self.coef[0] * u1 + self.coef[1] * u2 + self.offset
        pos = num // self.divisor
        ok = (num % self.divisor == 0) & (pos >= 0) & (pos < self.length)
        return np.where(ok, pos, self.length), ok


@dataclass(frozen=True, slots=True)
class Gather:
    """Replace axis ``axis`` by the axes of operand ``operand``'s selector indices."""

    axis: int
    operand: int


@dataclass(frozen=True, slots=True)
class Source:
    """Where one operand of the rewritten einsum comes from.

    Either call operand ``operand`` (its dense form when ``dense``) with ``views``
    applied in order, or the small constant ``const``.
    """

    operand: int = -1
    views: tuple[Affine | Gather, ...] = ()
    dense: bool = False
    const: np.ndarray | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Rewrite:
    """An einsum with structured operands as an ordinary einsum over views.

    Attributes:
        equation: the einsum over the rewritten operands (no structured ones left).
        shapes: their shapes.
        sources: how each rewritten operand is made from the call's operands.
        output: the output labels of the original einsum (after delta merging, a label
            may repeat: that output is the result embedded on its diagonal).
        nops: number of operands of the original call.
        specs: per call operand, its shape or structured key (what the rewrite is for).
        substituted: whether patterns were substituted (else kept dense).
    """

    equation: Equation
    shapes: tuple[tuple[int, ...], ...]
    sources: tuple[Source, ...]
    output: tuple[Label, ...]
    nops: int
    specs: tuple[Any, ...] = ()
    substituted: bool = True

    @property
    def embeds(self) -> bool:
        """Whether the result is embedded on a diagonal of the output."""
        return len(set(self.output)) != len(self.output)


def spec_of(x: Any) -> Any:
    """What a rewrite depends on, per operand: a structured key, or the shape."""
    if isinstance(x, Structured):
        return x.key
    return tuple(int(d) for d in x.shape) if hasattr(x, "shape") else tuple(x)


def kind_of(x: Any) -> Any:
    """The ``kinds`` entry of operand ``x`` for :func:`rewrite`."""
    if isinstance(x, Selector):
        return "select"
    return x if isinstance(x, Structured) else None


class _Term:
    """A working operand: its labels and sizes, and where it comes from."""

    def __init__(self, labels: list[Label], sizes: list[int], source: Source,
                 kind: Any = None) -> None:
        self.labels, self.sizes, self.source, self.kind = labels, sizes, source, kind

    def view(self, v: Affine | Gather, labels: Sequence[Label], sizes: Sequence[int]) -> None:
        a = v.axis
        self.labels[a:a + 1] = list(labels)
        self.sizes[a:a + 1] = list(sizes)
        s = self.source
        self.source = Source(s.operand, (*s.views, v), s.dense, s.const)


def find_root(parent: dict[Label, Label], x: Label) -> Label:
    while parent.get(x, x) != x:
        x = parent[x]
    return x


def _merge_deltas(terms: list[_Term], output: list[Label]) -> list[_Term]:
    parent: dict[Label, Label] = {}
    for t in terms:
        if isinstance(t.kind, Delta):
            root = find_root(parent, t.labels[0])
            for lab in t.labels[1:]:
                r = find_root(parent, lab)
                if r != root:
                    parent[r] = root
    if not any(isinstance(t.kind, Delta) for t in terms):
        return terms
    for t in terms:
        t.labels = [find_root(parent, lab) for lab in t.labels]
    output[:] = [find_root(parent, lab) for lab in output]
    kept = [t for t in terms if not isinstance(t.kind, Delta)]
    gone = {find_root(parent, lab) for t in terms if isinstance(t.kind, Delta) for lab in t.labels}
    full: dict[Label, int] = {}
    held: dict[Label, int] = {}
    for t in terms:
        for lab, d in zip(t.labels, t.sizes, strict=True):
            full[lab] = max(full.get(lab, 0), d)
            if t in kept:
                held[lab] = max(held.get(lab, 0), d)
    for lab in sorted(gone, key=repr):
        if held.get(lab, 0) < full[lab]:  # only deltas (or broadcast axes) hold it
            kept.append(_Term([lab], [full[lab]], Source(const=np.ones(full[lab]))))
    return kept


def _pattern_pairs(terms: list[_Term]) -> list[_Term]:
    """Two equal patterns sharing two of their indices: the shared two fix the third, so
    the second pattern is a delta between the third indices (``P[k,o,i] P[k,o,j] =
    P[k,o,i] delta(i, j)``), or drops out when all three are shared (``P*P = P``)."""
    out: list[_Term] = []
    for t in terms:
        if isinstance(t.kind, ConvPattern) and len(set(t.labels)) == 3:
            for u in out:
                if u.kind != t.kind:
                    continue
                same = [a for a in range(3) if u.labels[a] == t.labels[a]]
                if len(same) == 3:
                    break
                if len(same) == 2:
                    (a,) = {0, 1, 2} - set(same)
                    d = t.sizes[a]
                    out.append(_Term([u.labels[a], t.labels[a]], [d, d], t.source,
                                     Delta(d, 2)))
                    break
            else:
                out.append(t)
            continue
        out.append(t)
    return out


def _holders(terms: list[_Term], me: _Term, label: Label) -> list[_Term] | None:
    """Operands other than ``me`` holding ``label`` once at full size (None: some
    holder repeats it or broadcasts it)."""
    out = []
    for t in terms:
        if t is me or label not in t.labels:
            continue
        if t.labels.count(label) != 1:
            return None
        out.append(t)
    return out


def _materialize(t: _Term) -> None:
    """Use the dense form of a structured operand (it stays an operand)."""
    s = t.source
    t.source = Source(s.operand, s.views, True, s.const)
    t.kind = None


def _reduce_own(t: _Term, terms: list[_Term], output: list[Label]) -> bool:
    """Sum a pattern's indices that nothing else holds; True when it did."""
    others = {lab for u in terms if u is not t for lab in u.labels} | set(output)
    own = [a for a, lab in enumerate(t.labels) if lab not in others]
    if not own or len(set(t.labels)) != len(t.labels):
        return False
    dense = t.kind.dense().sum(axis=tuple(own))
    t.labels = [lab for a, lab in enumerate(t.labels) if a not in own]
    t.sizes = [d for a, d in enumerate(t.sizes) if a not in own]
    t.source, t.kind = Source(const=dense), None
    return True


def _substitute_pattern(t: _Term, terms: list[_Term], output: list[Label]) -> bool:
    """Solve the pattern for one index and substitute it; True when it did."""
    p: ConvPattern = t.kind
    if len(set(t.labels)) != 3:
        return False
    lk, lo, li = t.labels
    a_k, a_o, c = p.relation()
    # i = a_k k + a_o o + c, solved for each index in turn: (eliminated, (u1, u2),
    # coefficients, offset, divisor).
    options = [
        (li, (lk, lo), (a_k, a_o), c, 1),
        (lo, (lk, li), (-a_k, 1), -c, a_o),
        (lk, (lo, li), (-a_o, 1), -c, a_k),
    ]
    size = dict(zip(t.labels, t.sizes, strict=True))
    for gone, (u1, u2), coef, off, div in options:
        new = (size[u1], size[u2])
        if gone not in output and _substitute(
                t, terms, gone, size[gone], (u1, u2), new,
                partial(Affine, sizes=new, coef=coef, offset=off, divisor=div,
                        length=size[gone])):
            return True
    return False


def _substitute_selector(t: _Term, k: int, terms: list[_Term], output: list[Label]) -> bool:
    *batch, lc = t.labels
    if lc in output or lc in batch or len(set(batch)) != len(batch):
        return False
    return _substitute(t, terms, lc, t.sizes[-1], batch, t.sizes[:-1],
                       partial(Gather, operand=k))


def _substitute(t: _Term, terms: list[_Term], gone: Label, size: int,
                labels: Sequence[Label], sizes: Sequence[int],
                view: Callable[[int], Affine | Gather]) -> bool:
    """Replace index ``gone`` (of ``size``) by ``labels`` in every operand holding it,
    through ``view(axis)``, and drop ``t``; False (nothing changed) when no operand
    holds it once at full size."""
    holders = _holders(terms, t, gone)
    if not holders or any(h.sizes[h.labels.index(gone)] != size for h in holders):
        return False
    for h in holders:
        if h.kind is not None:
            _materialize(h)
        h.view(view(h.labels.index(gone)), labels, sizes)
    terms.remove(t)
    return True


def _check_sizes(terms: list[_Term]) -> None:
    """A structured operand's sizes agree with every operand sharing its indices (an
    array's size-1 axis broadcasts; arrays among themselves are checked later)."""
    fixed: dict[Label, tuple[int, int]] = {}
    for t in terms:
        if t.kind is not None:
            for lab, d in zip(t.labels, t.sizes, strict=True):
                fixed.setdefault(lab, (d, t.source.operand))
    for t in terms:
        for lab, d in zip(t.labels, t.sizes, strict=True):
            size, j = fixed.get(lab, (d, -1))
            if d != size and (d != 1 or t.kind is not None):
                raise ShapeError(f"index {lab!r} has size {d} in operand {t.source.operand} "
                                 f"but size {size} in structured operand {j}")


@memoize("rewrites", 1024)
def rewrite(eq: Equation, specs: tuple[Any, ...], kinds: tuple[Any, ...],
            substitute: bool = True) -> Rewrite:
    """Rewrite ``eq`` so that no structured operand is left.

    With ``substitute=False`` convolution patterns are kept as small dense operands
    instead (deltas still merge, a pattern's own indices are still summed): the
    planner prices both forms and keeps the cheaper, since on small grids contracting
    the data first and the dense pattern after can win (Gram matrices of inputs).

    Args:
        eq: the parsed einsum.
        specs: per operand, its shape (tuple of ints) or structured key.
        kinds: per operand, the structured operand (a :class:`Delta` or
            :class:`ConvPattern`), ``"select"`` for a :class:`Selector` (whose indices the
            rewrite never reads), or ``None`` for an array.
    """
    if len(specs) != eq.nops:
        raise SubscriptError(f"the subscripts name {eq.nops} operands but {len(specs)} "
                             "were given")
    shapes = [s[1] if k == "select" else (s if k is None else tuple(k.shape))
              for s, k in zip(specs, kinds, strict=True)]
    for k, (term, kind) in enumerate(zip(eq.inputs, kinds, strict=True)):
        if kind is not None and ... in term:
            raise SubscriptError(f"operand {k} is structured; name its indices, not '...'")
    expanded, output = expand_labels(eq, shapes)
    terms = [_Term(list(labs), list(shape), Source(operand=k), kind)
             for k, (labs, shape, kind) in enumerate(zip(expanded, shapes, kinds, strict=True))]
    _check_sizes(terms)
    for t in terms:
        if isinstance(t.kind, Delta) and len(set(t.sizes)) > 1:
            raise ShapeError(f"delta operand {t.source.operand} has unequal sizes {t.sizes}")
    final_output = list(output)
    terms = _merge_deltas(_pattern_pairs(terms), final_output)
    output = list(dict.fromkeys(final_output))
    for t in list(terms):
        if isinstance(t.kind, ConvPattern):
            if _reduce_own(t, terms, output):
                continue
            if not substitute or not _substitute_pattern(t, terms, output):
                _materialize(t)
        elif t.kind is not None:  # a selector
            if not _substitute_selector(t, t.source.operand, terms, output):
                _materialize(t)
    return Rewrite(
        equation=Equation(tuple(tuple(t.labels) for t in terms), tuple(output)),
        shapes=tuple(tuple(t.sizes) for t in terms),
        sources=tuple(t.source for t in terms),
        output=tuple(final_output),
        nops=eq.nops,
        specs=tuple(specs),
        substituted=substitute,
    )


def output_mask(rw: Rewrite, sizes: dict[Label, int]) -> tuple[tuple[int, ...], np.ndarray]:
    """For an embedding output: per output axis, the result axis it reads (``-1`` for a
    repeat), and the 0/1 mask of equal repeated indices (shaped for broadcasting)."""
    first: dict[Label, int] = {}
    src = []
    for lab in rw.output:
        src.append(-1 if lab in first else len(first))
        first.setdefault(lab, len(first))
    shape = [sizes[lab] for lab in rw.output]
    grids = np.indices(shape, sparse=True)
    mask = np.ones([1] * len(shape), dtype=bool)
    for a, lab in enumerate(rw.output):
        b = rw.output.index(lab)
        if b != a:
            mask = mask & (grids[a] == grids[b])
    return tuple(src), mask.astype(np.float64)
