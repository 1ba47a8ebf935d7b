"""numpy-compatible ``einsum_path``: ``(["einsum_path", (i, j), ...], report)``.

For numpy's strategies the path is the one numpy returns: ``"greedy"`` (also ``True``)
and ``"optimal"`` are numpy's own searches, reproduced here on index bitmasks with
numpy's cost (``_flop_count``: the product of the sizes a step touches, times the
number of operands less one, plus one where an index is summed) and numpy's memory
limit: no intermediate may hold more elements than the largest operand or the output,
or than ``limit`` in the form ``(strategy, limit)``; where nothing fits, the rest is one
contraction of every remaining operand. ``False`` is one contraction of all operands,
and an explicit ``["einsum_path", ...]`` is checked and returned. einopt's strategy
names (``"auto"``, ``"hyper"``, ...), a linear path, a Plan or a path optimizer give the
path of einopt's plan. The report is numpy's table, with numpy's letters for the
indices (``ellipsis`` dimensions and labels of other forms get free letters).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..api import Plan, memory_form, plan
from ..backends.numpy import letters_for
from ..cost import count_text
from ..errors import IncompletePathError, PathError, PathTypeError
from ..network import Network, bits, build_network
from ..parse import NO_OPERANDS, Equation, call_equation, sublist_args
from ..tree import read_path

__all__ = ["einsum_path", "numpy_greedy", "numpy_optimal"]

#: numpy's searches by name
NUMPY_STRATEGIES = ("greedy", "optimal")

Path = list[tuple[int, ...]]
Sizer = Callable[[int], int]


def einsum_path(subscripts: Any = NO_OPERANDS, *operands: Any, optimize: Any = "greedy",
                einsum_call: bool = False) -> tuple[list[Any], str]:
    """The contraction order of an einsum, as ``numpy.einsum_path`` gives it.

    Args:
        subscripts: ``"ij,jk,kl->il"``, or the first operand of the sublist form.
        *operands: arrays (only their shapes are read), or anything ``numpy.asarray``
            reads.
        optimize: ``"greedy"`` (default) or ``True``, ``"optimal"``, ``False`` (one
            contraction of all operands), ``(strategy, limit)`` (no intermediate larger
            than ``limit`` elements), an explicit ``["einsum_path", (1, 2), (0, 1)]``; or
            anything :func:`einopt.plan` takes as ``optimize`` (einopt's plan's path).
        einsum_call: numpy's internal option; only ``False`` is accepted.

    Returns:
        ``(path, report)``: ``["einsum_path", (i, j), ...]`` in opt_einsum's linear
        format (each tuple names positions in the current operand list, whose result is
        appended), and numpy's printable table of the steps.

    Raises:
        IncompletePathError: an explicit path leaves more than one operand (also a
            ``RuntimeError``, as numpy raises).

    Example:
        >>> import numpy as np, einopt
        >>> a, b, c = np.ones((2, 2)), np.ones((2, 5)), np.ones((5, 2))
        >>> einopt.einsum_path("ij,jk,kl->il", a, b, c)[0]
        ['einsum_path', (1, 2), (0, 1)]
    """
    if einsum_call:
        raise PathError("einsum_call is numpy's internal option of einsum_path; einopt's "
                        "einsum_path returns (path, report) only")
    how = _strategy(optimize)
    eq, items = call_equation(subscripts, operands)
    arrays = [x if hasattr(x, "shape") else np.asanyarray(x) for x in items]
    shapes = [tuple(int(d) for d in x.shape) for x in arrays]
    net = build_network(eq, shapes)  # checks ranks, sizes and diagonals
    expr = _Expression.of(net)
    n = len(expr.inputs)
    if how.explicit is not None:
        path = how.explicit
    elif how.name is False or (how.name in NUMPY_STRATEGIES and (
            n <= 2 or expr.everything == expr.output)):
        path = [tuple(range(n))]  # nothing to order: one contraction, as numpy
    elif how.name in NUMPY_STRATEGIES:
        limit = how.limit if how.limit is not None else max(
            [expr.term_size(term) for term in net.raw] + [expr.term_size(net.output)])
        search = numpy_greedy if how.name == "greedy" else numpy_optimal
        path = search(list(expr.inputs), expr.output, expr.size, limit)
    else:
        p = plan(*sublist_args(arrays, eq.inputs, eq.output), optimize=how.name)
        path = [tuple(e) for e in p.path] if n > 1 else [(0,)]
        if how.limit is not None and p.max_size > how.limit:
            path = [tuple(range(n))]
    return ["einsum_path", *path], _report(eq, net, expr, path)


@dataclass(frozen=True)
class _How:
    """What ``optimize`` asks for: a strategy (name, False, or einopt's optimize value)
    with numpy's memory limit, or an explicit path."""

    name: Any
    limit: int | None = None
    explicit: Path | None = None


def _strategy(optimize: Any) -> _How:
    if optimize is True:
        return _How("greedy")
    if optimize is None or optimize is False:
        return _How(False)
    if isinstance(optimize, str) or isinstance(optimize, Plan) or callable(optimize):
        return _How(optimize)
    if isinstance(optimize, (list, tuple)) and optimize and isinstance(optimize[0], str) \
            and optimize[0] == "einsum_path":
        return _How(None, explicit=_entries(optimize[1:]))
    limited = memory_form(optimize)
    if limited is not None:
        return _How(limited[0], limited[1])
    if isinstance(optimize, (list, tuple)):
        return _How(_entries(optimize))  # a linear path: einopt's plan takes it
    raise PathTypeError(f"optimize must be a strategy name, a bool, (strategy, memory_limit), "
                        f"['einsum_path', ...], a path or a Plan, got {type(optimize).__name__}")


def _entries(path: Sequence[Any]) -> Path:
    return list(read_path(path))


@dataclass(frozen=True)
class _Expression:
    """An einsum as numpy's path search sees it: per operand the bitmask of its indices
    (repeats merged), the output's, and each index's (broadcast) size."""

    inputs: tuple[int, ...]
    output: int
    sizes: tuple[int, ...]
    cache: dict[int, int]

    @staticmethod
    def of(net: Network) -> _Expression:
        inputs = tuple(_mask(term) for term in net.raw)
        return _Expression(inputs, _mask(net.output), net.sizes, {})

    @property
    def everything(self) -> int:
        out = 0
        for m in self.inputs:
            out |= m
        return out

    def size(self, mask: int) -> int:
        """Elements of a tensor holding the indices of ``mask``."""
        found = self.cache.get(mask)
        if found is None:
            found = 1
            for i in bits(mask):
                found *= self.sizes[i]
            self.cache[mask] = found
        return found

    def term_size(self, term: Sequence[int]) -> int:
        """Elements numpy counts for a term, a repeated index counted each time."""
        out = 1
        for i in term:
            out *= self.sizes[i]
        return out


def _mask(term: Sequence[int]) -> int:
    out = 0
    for i in term:
        out |= 1 << i
    return out


def _contract(positions: Sequence[int], sets: Sequence[int], output: int
              ) -> tuple[int, list[int], int, int]:
    """numpy's ``_find_contraction``: ``(result, remaining sets with the result last,
    removed indices, indices the step touches)``."""
    touched = 0
    keep = output
    rest = []
    for k, m in enumerate(sets):
        if k in positions:
            touched |= m
        else:
            rest.append(m)
            keep |= m
    result = keep & touched
    rest.append(result)
    return result, rest, touched & ~result, touched


def _flops(touched: int, removed: int, terms: int, size: Sizer) -> int:
    """numpy's ``_flop_count``."""
    return size(touched) * (max(1, terms - 1) + (1 if removed else 0))


def numpy_optimal(sets: Sequence[int], output: int, size: Sizer, limit: int) -> Path:
    """numpy's ``"optimal"`` search: every order of pairwise steps whose results hold at
    most ``limit`` elements, the cheapest kept (the first found among equals); where no
    pair fits, the rest is one step. ``sets`` are the operands' index bitmasks."""
    n = len(sets)
    full: list[tuple[int, Path, list[int]]] = [(0, [], list(sets))]
    for it in range(n - 1):
        found = []
        for cost, positions, rest in full:
            for con in itertools.combinations(range(n - it), 2):
                result, remaining, removed, touched = _contract(con, rest, output)
                if size(result) > limit:
                    continue
                found.append((cost + _flops(touched, removed, 2, size), [*positions, con],
                              remaining))
        if not found:
            return [*min(full, key=lambda r: r[0])[1], tuple(range(n - it))]
        full = found
    return min(full, key=lambda r: r[0])[1]


def numpy_greedy(sets: Sequence[int], output: int, size: Sizer, limit: int) -> Path:
    """numpy's ``"greedy"`` search: repeatedly the pair that removes the most elements
    (then the fewest flops), among pairs sharing an index, else among all pairs, whose
    result holds at most ``limit`` elements and keeps the total under the naive cost;
    where none is left, the rest is one step."""
    sets = list(sets)
    n = len(sets)
    if n <= 2:
        return [tuple(range(n))]
    _, _, removed, touched = _contract(range(n), sets, output)
    naive = _flops(touched, removed, n, size)
    cost = 0
    path: Path = []
    known: list[tuple[tuple[int, int], tuple[int, int], list[int]]] = []
    pairs: Any = itertools.combinations(range(n), 2)

    def candidate(pos: tuple[int, int]) -> None:
        result, remaining, removed, touched = _contract(pos, sets, output)
        new = size(result)
        if new > limit:
            return
        flops = _flops(touched, removed, 2, size)
        if cost + flops > naive:
            return
        known.append(((new - size(sets[pos[0]]) - size(sets[pos[1]]), flops), pos, remaining))

    for _ in range(n - 1):
        for pos in pairs:
            if sets[pos[0]] & sets[pos[1]]:  # outer products only if nothing else
                candidate(pos)
        if not known:
            for pos in itertools.combinations(range(len(sets)), 2):
                candidate(pos)
            if not known:
                path.append(tuple(range(len(sets))))
                break
        best = min(known, key=lambda c: c[0])
        known = _others(known, best)
        sets = best[2]
        last = len(sets) - 1
        pairs = ((i, last) for i in range(last))
        path.append(best[1])
        cost += best[0][1]
    return path


def _others(known: list[tuple[tuple[int, int], tuple[int, int], list[int]]],
            best: tuple[tuple[int, int], tuple[int, int], list[int]]
            ) -> list[tuple[tuple[int, int], tuple[int, int], list[int]]]:
    """numpy's ``_update_other_results``: the candidates not involving ``best``'s pair,
    their positions and remaining sets updated for ``best`` being done."""
    bx, by = best[1]
    out = []
    for score, (x, y), rest in known:
        if x in best[1] or y in best[1]:
            continue
        del rest[by - int(by > x) - int(by > y)]
        del rest[bx - int(bx > x) - int(bx > y)]
        rest.insert(-1, best[2][-1])
        out.append((score, (x - int(x > bx) - int(x > by), y - int(y > bx) - int(y > by)),
                    rest))
    return out


def _report(eq: Equation, net: Network, expr: _Expression, path: Path) -> str:
    """numpy's table of ``path``; checks that it names valid positions and ends with one
    operand."""
    spare = "".join(chr(c) for c in range(0xC0, 0xC0 + len(net.labels)))
    letters = letters_for(list(net.labels), spare)
    name = [letters[lab] for lab in net.labels]

    def text(mask: int) -> str:
        return "".join(name[i] for i in sorted(bits(mask), key=lambda i: (net.sizes[i],
                                                                             name[i])))

    inputs = ["".join(name[i] for i in term) for term in net.raw]
    output = "".join(name[i] for i in net.output)
    terms, sets = list(inputs), list(expr.inputs)
    rows = []
    costs, sizes, scales = [], [], []
    for step, entry in enumerate(path):
        if not entry or len(set(entry)) != len(entry) or \
                any(not 0 <= p < len(terms) for p in entry):
            raise PathError(f"path entry {step} {entry!r} must name distinct positions among "
                            f"the {len(terms)} current operands")
        where = tuple(sorted(entry, reverse=True))
        result, sets, removed, touched = _contract(where, sets, expr.output)
        costs.append(_flops(touched, removed, len(where), expr.size))
        scales.append(bin(touched).count("1"))
        sizes.append(expr.size(result))
        taken = [terms.pop(p) for p in where]
        made = output if step == len(path) - 1 else text(result)
        terms.append(made)
        rows.append((scales[-1], ",".join(taken) + "->" + made, ",".join(terms) + "->" + output))
    if len(terms) != 1:
        raise IncompletePathError(
            f"the path leaves {len(terms)} operands ({', '.join(terms)}); a complete path "
            f"contracts {len(terms) - 1} more")
    everything = expr.everything
    inner = sum(bin(m).count("1") for m in expr.inputs) > bin(everything).count("1")
    naive = _flops(everything, inner, len(inputs), expr.size)
    opt = sum(costs) + 1
    lines = [
        f"  Complete contraction:  {','.join(inputs)}->{output}",
        f"         Naive scaling:  {bin(everything).count('1')}",
        f"     Optimized scaling:  {max(scales, default=0)}",
        f"      Naive FLOP count:  {_sci(naive)}",
        f"  Optimized FLOP count:  {_sci(opt)}",
        f"   Theoretical speedup:  {_fixed(naive, opt)}",
        f"  Largest intermediate:  {max(sizes, default=0):.3e} elements",
        "-" * 74,
        f"{'scaling':>6} {'current':>24} {'remaining':>40}",
        "-" * 74,
    ]
    lines += [f"{scale:4d}    {current:>24} {remaining:>40}" for scale, current, remaining in rows]
    return "\n".join(lines)


def _sci(x: int) -> str:
    """numpy's ``%.3e``, also for ints beyond the float range."""
    try:
        return f"{x:.3e}"
    except OverflowError:
        return count_text(x, 4)


def _fixed(a: int, b: int) -> str:
    """numpy's ``%3.3f`` of ``a / b``, also where the quotient passes the float range."""
    try:
        return f"{a / b:3.3f}"
    except OverflowError:
        return count_text(a // b, 4)
