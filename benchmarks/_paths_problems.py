"""Problems of the path-search benchmark and the one cost function every path is priced by.

A problem comes from a corpus file (``dev.json``: a list of ``{name, eq, shapes}``;
``realistic.json``: ``{note, problems: [{name, family, source, eq, shapes, n_tensors,
best_known_log10_flops, ...}]}``) or from the ``einsum_benchmark`` package's generators
at fixed seeds. :func:`path_cost` is written here, independently of every tool, so
that all paths are priced by the same rule.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Problem", "DEFAULT_CORPUS", "relabel", "load_corpus", "generated_problems", "path_cost",
           "without_lone_indices", "log10_int", "log2_int"]

#: The two corpus files of the project's shared folder beside the checkout.
DEFAULT_CORPUS = [Path(__file__).resolve().parents[2] / "shared" / "corpus" / name
                  for name in ("dev.json", "realistic.json")]

Label = Hashable


@dataclass
class Problem:
    """One contraction: the equation every tool gets, and what the corpus says of it."""

    name: str
    eq: str  # explicit ("->" always present), after relabelling if any
    shapes: list[tuple[int, ...]]
    original_eq: str
    origin: str  # corpus file name, or "generated"
    family: str = ""
    source: str = ""
    best_known_log10: float | None = None
    best_known_by: str = ""
    relabelled: dict[str, str] = field(default_factory=dict)  # corpus label -> new label
    inputs: list[tuple[str, ...]] = field(init=False)
    output: tuple[str, ...] = field(init=False)
    sizes: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        lhs, out = self.eq.split("->")
        self.inputs = [tuple(term) for term in lhs.split(",")] if lhs or self.shapes else []
        self.output = tuple(out)
        if len(self.inputs) != len(self.shapes):
            raise ValueError(f"{self.name}: {len(self.inputs)} terms but "
                             f"{len(self.shapes)} shapes")
        self.sizes = {}
        for term, shape in zip(self.inputs, self.shapes, strict=True):
            if len(term) != len(shape):
                raise ValueError(f"{self.name}: term {''.join(term)!r} has {len(term)} "
                                 f"labels but shape {shape}")
            for label, dim in zip(term, shape, strict=True):
                old = self.sizes.get(label)
                if old is not None and old != dim and 1 not in (old, dim):
                    raise ValueError(f"{self.name}: label {label!r} has sizes {old} and {dim}")
                self.sizes[label] = dim if old is None else max(old, dim)

    @property
    def n_tensors(self) -> int:
        return len(self.shapes)


def explicit(eq: str) -> str:
    """``eq`` with its output written out (numpy's implicit rule: labels seen once, sorted)."""
    if "->" in eq:
        return eq
    counts: dict[str, int] = {}
    for ch in eq.replace(",", ""):
        counts[ch] = counts.get(ch, 0) + 1
    return eq + "->" + "".join(sorted(c for c, k in counts.items() if k == 1))


def relabel(eq: str) -> tuple[str, dict[str, str]]:
    """Map every label that is not a letter (``str.isalpha``) to an unused letter.

    Corpus equations use opt_einsum's symbols past 52 labels: ``×``, ``÷``, digits and, on
    the largest networks, Unicode spaces such as U+2028. Renaming them changes neither
    the network nor any cost, and every tool then reads the same plain-letter text.
    """
    used = {c for c in eq if c not in ",->"}
    mapping: dict[str, str] = {}
    code = 0x100
    for ch in dict.fromkeys(eq):  # first-appearance order
        if ch in ",->" or ch.isalpha():
            continue
        while not chr(code).isalpha() or chr(code) in used:
            code += 1
        mapping[ch] = chr(code)
        used.add(chr(code))
    if not mapping:
        return eq, mapping
    return "".join(mapping.get(c, c) for c in eq), mapping


def make_problem(name: str, eq: str, shapes: Iterable[Sequence[int]], origin: str,
                 do_relabel: bool, **info: Any) -> Problem:
    """A :class:`Problem` from corpus text (ASCII spaces dropped, output made explicit)."""
    original = explicit(eq.replace(" ", ""))
    new_eq, mapping = relabel(original) if do_relabel else (original, {})
    return Problem(name, new_eq, [tuple(int(d) for d in s) for s in shapes], original, origin,
                   relabelled=mapping, **info)


def load_corpus(path: Path, do_relabel: bool) -> tuple[list[Problem], list[str]]:
    """Problems of one corpus file, in either of its two layouts, and one line per item
    that could not be read."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    items = raw["problems"] if isinstance(raw, dict) else raw
    problems, failed = [], []
    for item in items:
        best = item.get("best_known_log10_flops")
        try:
            problems.append(make_problem(
                item["name"], item["eq"], item["shapes"], path.name, do_relabel,
                family=item.get("family", ""), source=item.get("source", ""),
                best_known_log10=None if best is None else float(best),
                best_known_by=item.get("best_known_by", "") or ""))
        except (KeyError, ValueError, TypeError) as exc:
            failed.append(f"{path.name} / {item.get('name', '?')}: {type(exc).__name__}: {exc}")
    return problems, failed


# --------------------------------------------------------------------------- generators


def _generators() -> list[tuple[str, str, Callable[[], tuple[str, Any]]]]:
    """(name, family, maker) of the generated instances: fixed seeds, 50 to 1,000 tensors."""
    from einsum_benchmark.generators import language_model as lm
    from einsum_benchmark.generators import quantum_computing as qc
    from einsum_benchmark.generators import random as rnd
    from einsum_benchmark.generators import structured as st

    seed = 0
    gens: list[tuple[str, str, Callable[[], tuple[str, Any]]]] = []

    def add(name: str, family: str, maker: Callable[[], Any]) -> None:
        gens.append((name, family, maker))

    for n in (50, 300, 1000):  # hyperedges of order 3, traces, lone summed indices, outputs
        add(f"gen_rnd_hyper_{n}_s{seed}", "rnd", lambda n=n: rnd.connected_hypernetwork(
            n, 3.0, max_edge_order=3, number_of_output_indices=2, number_of_self_edges=n // 25,
            number_of_single_summation_indices=n // 50, min_axis_size=2, max_axis_size=4,
            seed=seed))
    for n in (100, 500):
        add(f"gen_rnd_net_{n}_s{seed}", "rnd", lambda n=n: rnd.connected_network(
            n, 3.0, min_axis_size=2, max_axis_size=4, seed=seed))
    for n in (100, 500, 1000):
        add(f"gen_randreg_{n}_s{seed}", "rnd",
            lambda n=n: rnd.regular(n, 3, d_min=2, d_max=3, seed=seed))
    for dims in ((8, 8), (16, 16), (30, 30), (6, 6, 6)):
        add(f"gen_lattice_{'x'.join(map(str, dims))}_s{seed}", "str",
            lambda dims=dims: st.lattice(dims, d_min=2, d_max=3, seed=seed))
    for n in (100, 1000):
        add(f"gen_matrix_chain_{n}_s{seed}", "str", lambda n=n: st.matrix_chain(
            n, min_dim=10, max_dim=1000, is_shuffle=True, seed=seed))
    for n in (300, 1000):
        add(f"gen_tree_{n}_s{seed}", "str", lambda n=n: st.tree(n, seed=seed))
    for n in (200, 1000):  # n tensors: n / 2 sites, two tensors each
        add(f"gen_mps_{n}_s{seed}", "qc",
            lambda n=n: qc.matrix_product_state(n // 2, seed=seed))
    for n, p in ((24, 3), (50, 5)):
        add(f"gen_maxcut_n{n}_r3_p{p}_s{seed}", "qc", lambda n=n, p=p: qc.maxcut(n, 3, p, seed))
    add("gen_lm_first_last_d5", "lm", lambda: lm.p_first_and_last(5, 4, 10))
    add("gen_lm_sliding_d5_b64", "lm", lambda: lm.sliding_likelihood(5, 4, 10, 64))
    return gens


def generated_problems(do_relabel: bool, wanted: Callable[[str], bool]
                       ) -> tuple[list[Problem], list[str]]:
    """The generated instances whose name ``wanted`` accepts, and one line per failure."""
    try:
        gens = _generators()
    except ImportError as exc:
        return [], [f"einsum_benchmark generators: {type(exc).__name__}: {exc}"]
    problems, failed = [], []
    for name, family, maker in gens:
        if not wanted(name):
            continue
        try:
            eq, shapes = maker()[:2]
            shapes = [tuple(getattr(s, "shape", s)) for s in shapes]  # maxcut gives arrays
            problems.append(make_problem(name, eq, shapes, "generated", do_relabel,
                                         family=family, source="einsum_benchmark generator"))
        except Exception as exc:  # noqa: BLE001 - reported, the run goes on without it
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    return problems, failed


# --------------------------------------------------------------------------- cost


def path_cost(inputs: Sequence[Iterable[Label]], output: Iterable[Label],
              sizes: dict[Label, int], path: Iterable[Sequence[int]], ssa: bool = False
              ) -> tuple[int, int]:
    """(flops, largest intermediate) of ``path``, exact Python ints.

    A step that contracts two or more tensors costs the product of the sizes of all the
    distinct indices of its operands; its result keeps an index when the output has it or
    a tensor outside the step still holds it (hyperedges), so an index shared by three
    tensors survives the first merge. A repeated index within one input (a trace) counts
    once; one-operand steps cost nothing. ``path`` is opt_einsum's linear format
    (positions in the current list, results appended) or, with ``ssa``, static single
    assignment ids (inputs ``0..n-1``, then one new id per step). Holder counts keep each
    step proportional to its operands' sizes, so 30,000-tensor networks take well under a
    second (the linear format's list deletions aside).
    """
    keep_always = set(output)
    tensors: list[frozenset[Label] | None] = [frozenset(t) for t in inputs]
    holders: dict[Label, int] = {}
    for t in tensors:
        for label in t:  # type: ignore[union-attr]
            holders[label] = holders.get(label, 0) + 1
    alive = list(range(len(tensors)))
    flops = largest = 0
    for step in path:
        step = tuple(int(i) for i in step)
        if len(set(step)) != len(step) or not step:
            raise ValueError(f"path step {step} repeats an operand or is empty")
        if ssa:
            ids = list(step)
            if any(not 0 <= i < len(tensors) or tensors[i] is None for i in ids):
                raise ValueError(f"path step {step} names a tensor that does not exist")
        else:
            if any(not 0 <= i < len(alive) for i in step):
                raise ValueError(f"path step {step} is out of range ({len(alive)} tensors left)")
            ids = [alive.pop(i) for i in sorted(step, reverse=True)]
        sets = [tensors[i] for i in ids]
        for i in ids:
            tensors[i] = None
        union: set[Label] = set().union(*sets)  # type: ignore[arg-type]
        if len(sets) >= 2:
            flops += math.prod(sizes[label] for label in union)
        for s in sets:
            for label in s:  # type: ignore[union-attr]
                holders[label] -= 1
        kept = frozenset(x for x in union if x in keep_always or holders[x] > 0)
        for label in kept:
            holders[label] += 1
        largest = max(largest, math.prod(sizes[label] for label in kept))
        if not ssa:
            alive.append(len(tensors))
        tensors.append(kept)
    left = len(alive) if not ssa else sum(t is not None for t in tensors)
    if left > 1:
        raise ValueError(f"the path leaves {left} tensors uncontracted")
    return flops, largest


def without_lone_indices(inputs: Sequence[Sequence[Label]], output: Iterable[Label]
                         ) -> list[tuple[Label, ...]]:
    """``inputs`` less the indices that one input alone holds and the output lacks.

    einopt sums such an index inside its tensor before any merge, so its flops leave it
    out of the merge that tensor takes part in; pricing these inputs gives that figure.
    """
    out = set(output)
    holders: dict[Label, int] = {}
    for term in inputs:
        for label in set(term):
            holders[label] = holders.get(label, 0) + 1
    return [tuple(x for x in term if holders[x] > 1 or x in out) for term in inputs]


def log10_int(value: int | float | None) -> float | None:
    """log10 of a cost (Python ints of any size; math.log10 takes them without overflow)."""
    if value is None:
        return None
    return math.log10(value) if value > 1 else 0.0


def log2_int(value: int | float | None) -> float | None:
    """log2 of a size, as :func:`log10_int`."""
    if value is None:
        return None
    return math.log2(value) if value > 1 else 0.0
