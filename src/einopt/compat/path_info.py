"""opt_einsum's report of a path: ``PathInfo`` and the contraction list behind it.

``contract_path`` returns ``(path, info)``; ``info`` carries what opt_einsum's carries
(``contraction_list``, ``scale_list``, ``size_list``, ``size_dict``, ``naive_cost``,
``opt_cost``, ``speedup``, ``largest_intermediate``, ``eq``, ``shapes``, ...) computed
as opt_einsum computes them (its flop convention: a step over ``k`` operands costs the
product of its index sizes times ``k - 1``, plus one when it sums an index), and prints
as opt_einsum's table. ``info.plan`` is einopt's plan of the same path.

Indices are written as opt_einsum writes them: single letters as they are, other labels
(names, sublist labels, the dimensions ``...`` stands for) as opt_einsum's generated
symbols.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from ..network import EllipsisDim, Network
from ..optimize.external import symbol
from ..parse import Label

__all__ = ["PathInfo", "can_blas", "contraction_list", "network_symbols"]

Contraction = tuple[tuple[int, ...], frozenset[str], str, tuple[str, ...] | None, Any]


def network_symbols(network: Network, sublist: bool = False
                    ) -> tuple[list[str], str, dict[str, int]]:
    """Each operand's indices and the output's as strings of one symbol per index
    (repeats kept), and each symbol's size, named as opt_einsum names them: in the text
    form single letters stay themselves; in the sublist form (``sublist``) the labels,
    sorted, are ``get_symbol(0), get_symbol(1), ...``; the dimensions ``...`` stands for
    are the last of the first unused symbols, as many as the most dimensions of an
    operand."""
    labels = network.labels
    plain = [lab for lab in labels if not isinstance(lab, EllipsisDim)]
    names: dict[Label, str] = {}
    if sublist:
        try:
            order = sorted(set(plain))  # type: ignore[type-var]
        except TypeError:  # labels of mixed types: first appearance
            order = plain
        names = {lab: symbol(k) for k, lab in enumerate(order)}
    else:
        names = {lab: lab for lab in plain if isinstance(lab, str) and len(lab) == 1}
    used = set(names.values())

    def fresh() -> Iterator[str]:
        for k in itertools.count():
            s = symbol(k)
            if s not in used:
                yield s

    spare = fresh()
    for lab in plain:
        if lab not in names:
            names[lab] = next(spare)
            used.add(names[lab])
    dims = [lab.k for lab in labels if isinstance(lab, EllipsisDim)]
    if dims:
        ell = max(dims) + 1
        most = max(len(raw) for raw in network.raw)
        spare = fresh()
        unused = [next(spare) for _ in range(max(most, ell))]
        for lab in labels:
            if isinstance(lab, EllipsisDim):
                names[lab] = unused[len(unused) - ell + lab.k]
    terms = ["".join(names[labels[i]] for i in raw) for raw in network.raw]
    output = "".join(names[labels[i]] for i in network.output)
    return terms, output, {names[lab]: d for lab, d in zip(labels, network.sizes, strict=True)}


def _size(term: Any, size_dict: dict[str, int]) -> int:
    return math.prod(size_dict[c] for c in term)


def flop_count(indices: Any, inner: bool, num_terms: int, size_dict: dict[str, int]) -> int:
    """opt_einsum's cost of one step over ``num_terms`` operands."""
    return _size(indices, size_dict) * (max(1, num_terms - 1) + (1 if inner else 0))


def can_blas(inputs: Sequence[str], result: str, removed: frozenset[str],
             shapes: Sequence[tuple[int, ...]] | None = None) -> str | bool:
    """opt_einsum's classification of a step as a BLAS call (``"GEMM"``, ``"DOT"``, ...)
    or ``False``."""
    if len(inputs) != 2:
        return False
    left, right = inputs
    for c in set(left + right):
        nl, nr = left.count(c), right.count(c)
        if nl > 1 or nr > 1 or nl + nr > 2:
            return False
        if nl + nr - 1 == int(c in result):
            return False
    if shapes is not None:
        for c in removed:
            if shapes[0][left.find(c)] != shapes[1][right.find(c)]:
                return False
    if not removed:
        return "OUTER/EINSUM"
    sets = [set(left), set(right)]
    keep_left, keep_right = sets[0] - removed, sets[1] - removed
    rs = len(removed)
    if left == right:
        return "DOT"
    if sets[0] == sets[1]:
        return "DOT/EINSUM"
    if left[-rs:] == right[:rs] or left[:rs] == right[-rs:] or left[-rs:] == right[-rs:] \
            or left[:rs] == right[:rs]:
        return "GEMM"
    if not keep_left or not keep_right:
        return "GEMV/EINSUM"
    return "TDOT"


def contraction_list(terms: Sequence[str], output: str, shapes: Sequence[tuple[int, ...]],
                     path: Sequence[Sequence[int]], size_dict: dict[str, int],
                     use_blas: bool = True
                     ) -> tuple[list[Contraction], list[int], list[int], list[int]]:
    """opt_einsum's contraction list of ``path`` with each step's cost, scale and result
    size: per step ``(positions, removed indices, einsum string, remaining terms, blas)``,
    each intermediate's indices in the order ``tensordot`` leaves them."""
    input_list = list(terms)
    input_sets = [frozenset(t) for t in terms]
    input_shapes = [tuple(s) for s in shapes]
    output_set = frozenset(output)
    contractions: list[Contraction] = []
    costs, scales, sizes = [], [], []
    for cnum, entry in enumerate(path):
        inds = tuple(sorted((int(p) for p in entry), reverse=True))
        remaining = list(input_sets)
        taken = [remaining.pop(i) for i in inds]
        idx_contract = frozenset().union(*taken)
        new_result = output_set.union(*remaining) & idx_contract
        removed = idx_contract - new_result
        remaining.append(new_result)
        input_sets = remaining
        costs.append(flop_count(idx_contract, bool(removed), len(inds), size_dict))
        scales.append(len(idx_contract))
        sizes.append(_size(new_result, size_dict))
        tmp_inputs = [input_list.pop(x) for x in inds]
        tmp_shapes = [input_shapes.pop(x) for x in inds]
        blas = can_blas(tmp_inputs, "".join(new_result), removed, tmp_shapes) \
            if use_blas else False
        if cnum == len(path) - 1:
            idx_result = output
        else:
            together = "".join(tmp_inputs)
            idx_result = "".join(sorted(new_result, key=together.find))
        shape = tuple(max(s[t.find(c)] for s, t in zip(tmp_shapes, tmp_inputs, strict=True)
                          if t.find(c) >= 0) for c in idx_result)
        input_list.append(idx_result)
        input_shapes.append(shape)
        einsum_str = ",".join(tmp_inputs) + "->" + idx_result
        rest = tuple(input_list) if len(input_list) <= 20 else None
        contractions.append((inds, removed, einsum_str, rest, blas))
    return contractions, costs, scales, sizes


class PathInfo:
    """What ``contract_path`` reports, as opt_einsum's ``PathInfo``; ``str(info)`` is its
    table. ``plan`` is einopt's plan of the path (a final step over several operands, in
    a path bounded by ``memory_limit``, is there a chain of pairwise steps)."""

    def __init__(self, network: Network, shapes: Sequence[tuple[int, ...]],
                 path: Sequence[Sequence[int]], plan: Any = None, use_blas: bool = True,
                 sublist: bool = False) -> None:
        terms, output, size_dict = network_symbols(network, sublist)
        self.input_subscripts = ",".join(terms)
        self.output_subscript = output
        self.indices = frozenset("".join(terms))
        self.path = [tuple(int(p) for p in entry) for entry in path]
        self.size_dict = size_dict
        self.plan = plan
        self.contraction_list, costs, self.scale_list, self.size_list = contraction_list(
            terms, output, shapes, self.path, size_dict, use_blas)
        inner = sum(len(set(t)) for t in terms) - len(self.indices) > 0
        self.naive_cost = Decimal(flop_count(self.indices, inner, len(terms), size_dict))
        self.opt_cost = Decimal(sum(costs))
        self.speedup = self.naive_cost / max(self.opt_cost, Decimal(1))
        self.shapes = [tuple(size_dict[k] for k in t) for t in terms]
        self.eq = f"{self.input_subscripts}->{output}"
        self.largest_intermediate = Decimal(max(self.size_list, default=1))

    def __repr__(self) -> str:
        header = ("scaling", "BLAS", "current", "remaining")
        lines = [
            f"  Complete contraction:  {self.eq}\n",
            f"         Naive scaling:  {len(self.indices)}\n",
            f"     Optimized scaling:  {max(self.scale_list, default=0)}\n",
            f"      Naive FLOP count:  {self.naive_cost:.3e}\n",
            f"  Optimized FLOP count:  {self.opt_cost:.3e}\n",
            f"   Theoretical speedup:  {self.speedup:.3e}\n",
            f"  Largest intermediate:  {self.largest_intermediate:.3e} elements\n",
            "-" * 80 + "\n",
            "{:>6} {:>11} {:>22} {:>37}\n".format(*header),
            "-" * 80,
        ]
        for n, (_, _, einsum_str, remaining, blas) in enumerate(self.contraction_list):
            rest = ",".join(remaining) + "->" + self.output_subscript \
                if remaining is not None else "..."
            width = max(0, 56 - max(22, len(einsum_str)))
            lines.append("\n{:>4} {:>14} {:>22}    {:>{}}".format(
                self.scale_list[n], blas, einsum_str, rest, width))
        return "".join(lines)

    __str__ = __repr__
