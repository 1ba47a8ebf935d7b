"""The extra index of the product rule: ``h(..., i) = f' if i == at else f``.

A :class:`Switch` stands for a tensor over its labels and one extra index ``i`` of size
``m``: at ``i == at`` it is the product of its ``derivative`` factors, elsewhere the
product of its ``primal`` factors (each factor an array or structured operand with its
labels among the switch's). Summing ``prod_k h_k(i)`` over ``i`` is the sum, over
``i``, of the einsum with the switches at ``i`` taking their derivative form: the
product rule written as one einsum. Several switches with the same ``at`` change
together (the two copies of a layer in a squared norm).

:func:`expand` turns an einsum holding switches into those ``m`` einsums;
:mod:`einopt.run.schedule` runs them as one schedule that forms each shared product once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..caches import memoize
from ..errors import SubscriptError
from ..parse import Equation, Label
from .operands import Structured
from .rewrite import find_root

__all__ = ["Switch", "switch", "expand", "expansion", "pick", "signature", "signatures"]


@dataclass(frozen=True, eq=False)
class Switch:
    """See the module docstring. ``labels`` name the switch's own axes, in order."""

    labels: tuple[Label, ...]
    primal: tuple[tuple[Any, tuple[Label, ...]], ...]
    derivative: tuple[tuple[Any, tuple[Label, ...]], ...]
    at: int
    size: int

    @property
    def shape(self) -> tuple[int, ...]:
        sizes: dict[Label, int] = {}
        for op, labels in (*self.primal, *self.derivative):
            for lab, d in zip(labels, op.shape, strict=True):
                sizes[lab] = int(d)
        return (*(sizes[lab] for lab in self.labels), self.size)


def switch(labels: Sequence[Label], primal: Sequence[tuple[Any, Sequence[Label]]],
           derivative: Sequence[tuple[Any, Sequence[Label]]], at: int, size: int) -> Switch:
    """A product-rule switch over ``labels`` and an extra index of ``size``: the product
    of ``derivative``'s factors at ``at``, of ``primal``'s elsewhere."""
    own = set(labels)
    for op, labs in (*primal, *derivative):
        if not set(labs) <= own or len(labs) != len(op.shape):
            raise SubscriptError(f"a switch factor's labels {list(labs)} must be among the "
                                 f"switch's {list(labels)}, one per axis")
    if not 0 <= at < size:
        raise SubscriptError(f"switch at {at} outside its index of size {size}")
    return Switch(tuple(labels), tuple((op, tuple(labs)) for op, labs in primal),
                  tuple((op, tuple(labs)) for op, labs in derivative), at, size)


def signature(x: Switch) -> tuple[Any, ...]:
    """What an expansion depends on: labels, factor labels and shapes, deltas, ``at``."""
    def factors(fs: tuple[tuple[Any, tuple[Label, ...]], ...]) -> tuple[Any, ...]:
        return tuple((labs, tuple(int(d) for d in op.shape),
                      op.key if isinstance(op, Structured) else None) for op, labs in fs)

    return (x.labels, factors(x.primal), factors(x.derivative), x.at, x.size)


def signatures(operands: Sequence[Any]) -> tuple[Any, ...]:
    """Per operand, its switch :func:`signature` (None for others)."""
    return tuple(signature(x) if isinstance(x, Switch) else None for x in operands)


def expand(eq: Equation, operands: Sequence[Any]
           ) -> list[tuple[Equation, list[Any], int]]:
    """The einsums whose sum is ``eq`` on ``operands`` (switches among them): one per
    value of the extra index, each with its deltas merged away and the constant factor
    that leaves."""
    sig = signatures(operands)
    out = []
    for term_eq, picks, factor in expansion(eq, sig):
        out.append((term_eq, [pick(operands, p) for p in picks], factor))
    return out


def pick(operands: Sequence[Any], p: tuple[int, str, int]) -> Any:
    """The operand an expansion's pick names: operand ``k`` itself, or factor ``j`` of
    its primal (``"p"``) or derivative (``"d"``) form."""
    k, form, j = p
    if form == "":
        return operands[k]
    sw = operands[k]
    return (sw.primal if form == "p" else sw.derivative)[j][0]


@memoize("switch expansions", 256)
def expansion(eq: Equation, sig: tuple[Any, ...]
              ) -> list[tuple[Equation, list[tuple[int, str, int]], int]]:
    """The expansion's einsums as (equation, operand picks, factor), from structure
    alone (cached)."""
    switches = {k: s for k, s in enumerate(sig) if s is not None}
    extra = {eq.inputs[k][-1] for k in switches}
    sizes = {s[4] for s in switches.values()}
    if len(extra) != 1 or len(sizes) != 1:
        raise SubscriptError("switches must share one extra index (their last label) and "
                             "its size")
    (i,) = extra
    (m,) = sizes
    if i in eq.output or any(i in t for k, t in enumerate(eq.inputs) if k not in switches):
        raise SubscriptError(f"the extra index {i!r} must be summed and held by switches only")
    terms = []
    for value in range(m):
        inputs: list[tuple[Label, ...]] = []
        picks: list[tuple[int, str, int]] = []
        deltas: list[Any] = []
        for k, term in enumerate(eq.inputs):
            if k not in switches:
                inputs.append(tuple(term))
                picks.append((k, "", 0))
                deltas.append(None)
                continue
            labels, primal, derivative, at, _ = switches[k]
            rename = dict(zip(labels, term[:-1], strict=True))
            form, factors = ("d", derivative) if at == value else ("p", primal)
            for j, (labs, shape, key) in enumerate(factors):
                inputs.append(tuple(rename[lab] for lab in labs))
                picks.append((k, form, j))
                deltas.append(shape if key is not None and key[0] == "delta" else None)
        terms.append(_merge_deltas(inputs, picks, deltas, tuple(eq.output)))
    return terms


def _merge_deltas(inputs: list[tuple[Label, ...]], picks: list[tuple[int, str, int]],
                  deltas: list[Any], output: tuple[Label, ...]
                  ) -> tuple[Equation, list[tuple[int, str, int]], int]:
    """Deltas of a term merged into its indices (a plain einsum remains), and the factor
    of the indices only deltas held (their sizes). ``deltas[k]`` is the shape of a delta
    operand, None for others."""
    parent: dict[Label, Label] = {}
    size: dict[Label, int] = {}
    for term, shape in zip(inputs, deltas, strict=True):
        if shape is not None:
            root = find_root(parent, term[0])
            for lab, d in zip(term, shape, strict=True):
                size[lab] = d
                if find_root(parent, lab) != root:
                    parent[find_root(parent, lab)] = root
    merged_out = [find_root(parent, lab) for lab in output]
    if len(set(merged_out)) != len(merged_out):  # a diagonal output: keep the deltas
        raise SubscriptError("a switch's deltas may not tie two output indices")
    kept = [(tuple(find_root(parent, lab) for lab in t), p)
            for t, p, d in zip(inputs, picks, deltas, strict=True) if d is None]
    held = {lab for t, _ in kept for lab in t} | set(merged_out)
    factor = 1
    for root in {find_root(parent, lab) for t, d in zip(inputs, deltas, strict=True)
                 if d is not None for lab in t}:
        if root not in held:
            factor *= size[root]  # summed over an index nothing else holds
    return Equation(tuple(t for t, _ in kept), tuple(merged_out)), [p for _, p in kept], factor


@dataclass(frozen=True, eq=False)
class Memo:
    """A sub-einsum already computed while summing an expansion: ``operands`` (the
    arrays) with ``terms`` contracted to ``output`` gave ``result``."""

    operands: tuple[Any, ...]
    terms: tuple[tuple[Label, ...], ...]
    output: tuple[Label, ...]
    result: Any


def reuse(inputs: Sequence[tuple[Label, ...]], output: tuple[Label, ...],
          operands: Sequence[Any], memo: Sequence[Memo]
          ) -> tuple[list[tuple[Label, ...]], list[Any]]:
    """``inputs``/``operands`` with every group that repeats a memo entry (the same
    arrays, indices renamed consistently, the entry's summed indices held by nothing
    else) replaced by the entry's result: products shared by the expansion's terms
    are formed once (a chain's prefixes, for instance)."""
    terms, ops = list(inputs), list(operands)
    for entry in sorted(memo, key=lambda m: -len(m.operands)):
        while True:
            found = _match(entry, terms, ops, output)
            if found is None:
                break
            chosen, phi = found
            terms = [t for k, t in enumerate(terms) if k not in chosen] + \
                [tuple(phi[lab] for lab in entry.output)]
            ops = [x for k, x in enumerate(ops) if k not in chosen] + [entry.result]
    return terms, ops


def _match(entry: Memo, terms: list[tuple[Label, ...]], ops: list[Any],
           output: tuple[Label, ...]) -> tuple[set[int], dict[Label, Label]] | None:
    """Positions of operands repeating ``entry`` and the renaming, or None."""
    return _extend(entry, terms, ops, output, 0, set(), {})


def _extend(entry: Memo, terms: list[tuple[Label, ...]], ops: list[Any],
            output: tuple[Label, ...], j: int, used: set[int], phi: dict[Label, Label]
            ) -> tuple[set[int], dict[Label, Label]] | None:
    """Match entry operands ``j..`` given the positions ``used`` and renaming ``phi``
    of the earlier ones (a depth-first search; no closures, so no garbage cycles)."""
    if j == len(entry.operands):
        return (used, phi) if _closed(entry, used, phi, terms, output) else None
    for c, x in enumerate(ops):
        if c in used or x is not entry.operands[j] or len(terms[c]) != len(entry.terms[j]):
            continue
        new = dict(phi)
        if all(new.setdefault(a, b) == b for a, b in zip(entry.terms[j], terms[c],
                                                          strict=True)) \
                and len(set(new.values())) == len(new):
            got = _extend(entry, terms, ops, output, j + 1, used | {c}, new)
            if got is not None:
                return got
    return None


def _closed(entry: Memo, chosen: set[int], phi: dict[Label, Label],
            terms: list[tuple[Label, ...]], output: tuple[Label, ...]) -> bool:
    """Whether the entry's summed indices, renamed, occur only in the chosen operands."""
    outside = {lab for k, t in enumerate(terms) if k not in chosen for lab in t} | set(output)
    kept = set(entry.output)
    return all(phi[lab] not in outside for t in entry.terms for lab in t if lab not in kept)
