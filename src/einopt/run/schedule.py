"""Sums of einsums that share their products: how an einsum with switches runs.

An einsum with product-rule switches is the sum of its expansion's einsums, one per
value of the extra index (:mod:`einopt.structured.switch`). Evaluated one by one they
repeat work: every term of a chain's Hessian trace forms most of the chain again. Here
the terms become one :class:`Schedule` of pairwise products over the arrays:

- each term is split into its connected parts (a switched layer cuts a chain in two),
  and each part is planned, a repeated half (the two copies of a squared norm) computed
  once;
- every product a plan forms is remembered with its operands and kept indices, and a
  later part holding the same operands takes it instead of forming it again;
- parts are formed smallest first, so a part takes the products of the smaller parts
  it contains: a chain's prefixes grow from each other, and so do its suffixes, as in
  the closed forms; a chain of ``m`` layers costs O(m) products, not O(m^2). Parts of
  one size go first to last and last to first, and the cheaper schedule is kept.

The schedule is built from shapes alone (computed values are :class:`Value`
placeholders), priced, and then run on the arrays; it can be run again on new arrays
of the same shapes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backends import backend_for
from ..network import components
from ..parse import Equation, Label, sublist_args
from ..plan import Plan
from ..structured.operands import Structured
from ..structured.switch import Memo, expansion, pick, reuse
from .execute import program_for

__all__ = ["Schedule", "Step", "Value", "build_schedule"]

Planner = Callable[..., Plan]


class Value:
    """A computed array while scheduling: only its shape (and its identity) count."""

    __slots__ = ("shape",)

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape


@dataclass(frozen=True, slots=True)
class Step:
    """Values ``sources`` contracted by ``plan`` (or, for ``general``, by a full
    einsum of those labels, for operands a plan cannot take alone) into a new value."""

    plan: Plan
    sources: tuple[int, ...]
    general: tuple[tuple[tuple[Label, ...], ...], tuple[Label, ...]] | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    """Steps over values numbered leaves first, then one per step; the result is the
    sum of ``factor * value`` over ``terms`` (value -1: the factor alone). ``flops``
    sums the steps' flops. Each step's program is compiled once per array library."""

    num_leaves: int
    steps: tuple[Step, ...]
    terms: tuple[tuple[int, int], ...]
    flops: int

    _compiled: dict[Any, tuple[list[Callable[..., Any]], bool]] = field(
        default_factory=dict, repr=False, compare=False)

    def run(self, leaves: Sequence[Any], einsum: Callable[..., Any]) -> Any:
        """The sum on ``leaves`` (the arrays the schedule was built for, or alike)."""
        values = list(leaves)
        plain = [k for k, x in enumerate(values) if not isinstance(x, Structured)]
        kinds = tuple((values[k].__class__, getattr(values[k], "dtype", None)) for k in plain)
        found = self._compiled.get(kinds)
        if found is None or not found[1]:  # convert, unless that changed nothing before
            be = backend_for([values[k] for k in plain])
            arrays = be.prepare([values[k] for k in plain])
            same = all(a is values[k] for k, a in zip(plain, arrays, strict=True))
            for k, a in zip(plain, arrays, strict=True):
                values[k] = a
            if found is None:
                fns = [self._compile(st, be, einsum) for st in self.steps]
                found = self._compiled[kinds] = (fns, same)
        for st, fn in zip(self.steps, found[0], strict=True):
            values.append(fn(*[values[k] for k in st.sources]))
        total = None
        for k, factor in self.terms:
            part = factor if k < 0 else values[k] if factor == 1 else values[k] * factor
            total = part if total is None else total + part
        return total

    @staticmethod
    def _compile(st: Step, be: Any, einsum: Callable[..., Any]) -> Callable[..., Any]:
        if st.general is None:
            return program_for(st.plan, be)
        inputs, output = st.general
        return lambda *args: einsum(*sublist_args(args, inputs, output))


def build_schedule(eq: Equation, items: Sequence[Any], sig: tuple[Any, ...],
                   leaves: Sequence[Any], planner: Planner) -> Schedule:
    """The schedule of the expansion of ``eq`` on ``items`` (switches among them), the
    cheaper of its terms taken first to last and last to first; ``leaves`` are the
    arrays it reads and ``planner`` plans an einsum in the sublist form
    (:func:`einopt.plan`)."""
    terms = expansion(eq, sig)
    forward = _Builder(items, leaves, planner).add_all(terms)
    if len(terms) < 3:
        return forward
    backward = _Builder(items, leaves, planner).add_all(terms[::-1])
    return backward if backward.flops < forward.flops else forward


class _Builder:
    """Accumulates a schedule: values, steps, and the products formed so far."""

    def __init__(self, items: Sequence[Any], leaves: Sequence[Any], planner: Planner
                 ) -> None:
        self.items = items
        self.planner = planner
        self.values: list[Any] = list(leaves)
        self.num_leaves = len(leaves)
        self.where = {id(x): k for k, x in reversed(list(enumerate(leaves)))}
        self.steps: list[Step] = []
        self.memo: list[Memo] = []
        self.flops = 0

    def add_all(self, terms: Sequence[tuple[Equation, list[tuple[int, str, int]], int]]
                ) -> Schedule:
        """Every term's connected parts, smallest first (a part that contains a smaller
        one takes its product), then each term as the product of its parts."""
        parts: list[tuple[int, list[tuple[Label, ...]], tuple[Label, ...], list[Any]]] = []
        for t, (term_eq, picks, _) in enumerate(terms):
            ops = [pick(self.items, p) for p in picks]
            for comp in components(term_eq.inputs):
                held = {lab for k in comp for lab in term_eq.inputs[k]}
                parts.append((t, [term_eq.inputs[k] for k in comp],
                              tuple(lab for lab in term_eq.output if lab in held),
                              [ops[k] for k in comp]))
        done: dict[int, Any] = {}
        for c in sorted(range(len(parts)), key=lambda c: len(parts[c][1])):
            _, inputs, output, ops = parts[c]
            inputs, ops = reuse(inputs, output, ops, self.memo)
            done[c] = self.part(inputs, output, ops)
        out = []
        for t, (term_eq, _, factor) in enumerate(terms):
            mine = [(done[c], parts[c][2]) for c in range(len(parts)) if parts[c][0] == t]
            if not mine:  # a term of deltas alone: its factor
                out.append((-1, factor))
                continue
            out.append((self.where[id(self.product(mine, term_eq.output))], factor))
        return Schedule(self.num_leaves, tuple(self.steps), tuple(out), self.flops)

    def emit(self, plan: Plan, sources: Sequence[Any], general: Any = None) -> Value:
        v = Value(plan.output_shape)
        self.where[id(v)] = len(self.values)
        self.values.append(v)
        self.steps.append(Step(plan, tuple(self.where[id(x)] for x in sources), general))
        self.flops += plan.flops
        return v

    def product(self, parts: Sequence[tuple[Any, tuple[Label, ...]]],
                output: tuple[Label, ...]) -> Any:
        """A term from its connected parts' values (and their labels)."""
        value, labels = parts[0]
        for other, other_labels in parts[1:]:
            both = set(labels) | set(other_labels)
            joint = tuple(lab for lab in output if lab in both)
            value = self.run([value, other], [labels, other_labels], joint)
            labels = joint
        if labels != tuple(output):
            value = self.run([value], [labels], tuple(output))
        return value

    def part(self, inputs: Sequence[tuple[Label, ...]], output: tuple[Label, ...],
             ops: Sequence[Any]) -> Any:
        """A connected einsum, planned, its products remembered."""
        p = self.planner(*sublist_args(ops, inputs, output))
        if p.structure is not None:  # structured operands: one general step
            return self.emit(p, ops, (tuple(inputs), output))
        sh = p.shared
        if sh is None:
            return self.tree(p, ops)
        r = self.tree(sh.inner, [ops[k] for k in sh.first])
        return self.tree(p, [r, r, *(ops[k] for k in sh.rest)])

    def tree(self, p: Plan, ops: Sequence[Any]) -> Any:
        """The plan's tree run merge by merge, each merge a pairwise step remembered."""
        net, merges = p.network, p.tree.merges
        labels = [tuple(net.labels[i] for i in raw) for raw in net.raw]
        output = tuple(net.labels[i] for i in net.output)
        if not merges:
            return self.run(list(ops), labels, output)
        total = Counter(lab for t in labels for lab in set(t))
        keep = set(output)
        vals: list[Any] = list(ops)
        labs: list[tuple[Label, ...]] = list(labels)
        under: list[tuple[int, ...]] = [(k,) for k in range(len(ops))]
        for z, (x, y) in enumerate(merges, start=len(ops)):
            leaves = tuple(sorted(under[x] + under[y]))
            inside = Counter(lab for k in leaves for lab in set(labels[k]))
            if z == len(ops) + len(merges) - 1:
                kept = output
            else:
                kept = tuple(lab for lab in inside if lab in keep or inside[lab] < total[lab])
            vals.append(self.run([vals[x], vals[y]], [labs[x], labs[y]], kept))
            labs.append(kept)
            under.append(leaves)
            self.memo.append(Memo(tuple(ops[k] for k in leaves),
                                  tuple(labels[k] for k in leaves), kept, vals[-1]))
        return vals[-1]

    def run(self, ops: Sequence[Any], labels: Sequence[tuple[Label, ...]],
            out: tuple[Label, ...]) -> Any:
        """``ops`` contracted to ``out`` as one step (none if that is ``ops[0]`` itself)."""
        if len(ops) == 1 and labels[0] == out and len(set(out)) == len(out):
            return ops[0]
        return self.emit(self.planner(*sublist_args(ops, labels, out)), ops)
