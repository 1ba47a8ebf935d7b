"""Differential tests: einopt against numpy.einsum, on problems drawn to reach every
kernel branch at the thresholds the planner really uses (the DOT einsum-loop rule, the
outer-product rule, GEMM and its in-place form), in every memory layout, dtype and
spelling, with ``out=`` (aliasing an operand too) and the same array passed several
times, on numpy, torch and jax.

numpy.einsum with ``optimize=False`` on numpy copies of the operands is the oracle:
integer and bool results must match it exactly (int8 wraps around as it does), floating
results within a tolerance per dtype relative to the einsum of absolute values.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from backend_libs import available
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import einopt
from einopt.plan import Plan, Step, StepKind
from einopt.plan.kernels import DOT_EINSUM_BATCH as DOT_BATCH
from einopt.plan.kernels import DOT_EINSUM_CONTRACT as DOT_CONTRACT
from einopt.plan.kernels import OUTER_EINSUM_INNER as OUTER_INNER

from cases import assert_matches, magnitude, make_array, numpy_einsum_terms

EXAMPLES = int(os.environ.get("EINOPT_DIFFERENTIAL_EXAMPLES", 300))

#: examples per library: jax compiles each new shape, torch and numpy run at once
LIB_EXAMPLES = {"numpy": EXAMPLES, "torch": EXAMPLES // 2, "jax": max(EXAMPLES // 6, 10)}


def lib_settings(lib: str) -> settings:
    """Derandomized settings (the same examples on every run) for library ``lib``."""
    return settings(max_examples=LIB_EXAMPLES[lib], deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---- the kernel branches, as the plan records them ----

#: Every branch a pairwise step or an operand's own work can take.
BRANCHES = frozenset({
    "prep",  # one operand: diagonal, early sum, cast, size-1 squeeze
    "gemm",  # permute + reshape + (batched) matmul
    "gemm-wide",  # a matrix times each leading slice of a 3-d operand, read in place
    "dot",  # one inner product, no batch
    "dot-loop",  # batched inner product in numpy's einsum loop: batch >= B, length <= C
    "dot-matmul-long",  # batched inner product as a matmul: length > C
    "dot-matmul-few",  # batched inner product as a matmul: length <= C but batch < B
    "elementwise",  # broadcast product, one side's indices within the other's
    "outer-loop",  # outer product in numpy's einsum loop: inner factor <= O elements
    "outer-broadcast",  # outer product as a broadcast multiply: inner factor > O
})


def branch(step: Step, sizes: Sequence[int]) -> str:
    """Which branch of the kernel rules ``step`` took (``sizes``: the network's)."""
    if step.kind is StepKind.PREP:
        return "prep"
    if step.kind is StepKind.GEMM:
        return "gemm-wide" if step.wide else "gemm"
    if step.kind is StepKind.DOT:
        if step.out_shape is None:
            return "dot"
        assert step.shapes is not None and step.shapes[0] is not None
        batch, _, length = step.shapes[0]
        assert step.loop == (batch >= DOT_BATCH and length <= DOT_CONTRACT)
        if step.loop:
            return "dot-loop"
        return "dot-matmul-long" if length > DOT_CONTRACT else "dot-matmul-few"
    assert step.subscripts is not None
    lhs, out = step.subscripts.split("->")
    a, b = lhs.split(",")
    left, right = [c for c in a if c not in b], [c for c in b if c not in a]
    if not (left and right):
        return "elementwise"
    inner = math.prod(sizes[step.indices[out.index(c)]] for c in right)
    assert step.loop == (inner <= OUTER_INNER)
    return "outer-loop" if step.loop else "outer-broadcast"


def branches(plan: Plan) -> set[str]:
    """The branches of every step of ``plan``."""
    return {branch(s, plan.network.sizes) for s in plan.steps}


# ---- problems: two operands whose index groups straddle the thresholds ----

#: Per focus, the candidate element counts of each index group (batch, contracted,
#: left-only, right-only): each rule's threshold, one below and one above, and sizes
#: far from it. A count of 1 means the group is absent.
GROUPS: dict[str, dict[str, tuple[int, ...]]] = {
    "dot": {"batch": (1, 7, DOT_BATCH - 1, DOT_BATCH, DOT_BATCH + 1),
            "contracted": (2, DOT_CONTRACT - 1, DOT_CONTRACT, DOT_CONTRACT + 1, 40),
            "left": (1,), "right": (1,)},
    "outer": {"batch": (1, 1, 2, 3), "contracted": (1,), "left": (2, 3, 4),
              "right": (5, OUTER_INNER - 1, OUTER_INNER, OUTER_INNER + 1)},
    "gemm": {"batch": (1, 1, 2, 3), "contracted": (2, 3, 12, 40),
             "left": (1, 2, 5, 12), "right": (1, 3, 7, 20)},
    "elementwise": {"batch": (2, 3, 12, 50), "contracted": (1,), "left": (1, 1, 3),
                    "right": (1,)},
}

#: The rule each problem straddles, the two threshold rules drawn twice as often.
FOCUS = ("dot", "dot", "outer", "outer", "gemm", "elementwise")
ROLES = ("batch", "contracted", "left", "right")
DTYPES = ("float64", "float32", "float16", "complex64", "complex128", "int8", "int64",
          "bool", "mixed")
LAYOUTS = ("C", "strided", "reversed", "F")
FORMS = ("text", "text", "sublist", "unicode", "names")


@dataclass(frozen=True)
class Problem:
    """A drawn einsum over single-letter labels, and how to call it.

    Attributes:
        inputs: per operand, its labels.
        output: the output labels (None: implicit output).
        sizes: size of every label.
        twins: per operand, the earlier operand it is the same object as (or itself).
        dtype: a name of :data:`DTYPES`.
        layouts: per operand, a name of :data:`LAYOUTS`.
        form: how the subscripts are spelled (a name of :data:`FORMS`).
        optimize: the ``optimize=`` option.
        out: ``None``, ``"fresh"`` (a new array) or ``"alias"`` (an operand as ``out``).
        seed: seed of the operands' values.
    """

    inputs: tuple[tuple[str, ...], ...]
    output: tuple[str, ...] | None
    sizes: dict[str, int]
    twins: tuple[int, ...]
    dtype: str
    layouts: tuple[str, ...]
    form: str
    optimize: Any
    out: str | None
    seed: int

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [tuple(self.sizes[c] for c in term) for term in self.inputs]

    def text(self) -> str:
        """The equation in numpy's letters."""
        lhs = ",".join("".join(t) for t in self.inputs)
        return lhs if self.output is None else lhs + "->" + "".join(self.output)


def _split(total: int, parts: int, pick: int) -> list[int]:
    """``total`` as ``parts`` sizes whose product it is (``pick`` chooses a divisor)."""
    divisors = [d for d in range(2, total) if total % d == 0]
    if parts == 1 or not divisors:
        return [total] if total > 1 else []
    d = divisors[pick % len(divisors)]
    return [d, total // d]


@st.composite
def problems(draw: st.DrawFn, dtypes: Sequence[str] = DTYPES,
             layouts: Sequence[str] = LAYOUTS, outs: Sequence[str | None] = (None,)
             ) -> Problem:
    """A mostly two-operand einsum whose index groups straddle one kernel rule's
    threshold; now and then a third operand, a diagonal or an index summed first."""
    focus = draw(st.sampled_from(FOCUS))
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    groups: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    for role in ROLES:
        total = draw(st.sampled_from(GROUPS[focus][role]))
        split = _split(total, draw(st.integers(1, 2)), draw(st.integers(0, 7)))
        groups[role] = [next(letters) for _ in split]
        sizes.update(zip(groups[role], split, strict=True))
    # every focus leaves both operands some index (see GROUPS)
    a = groups["batch"] + groups["contracted"] + groups["left"]
    b = groups["batch"] + groups["contracted"] + groups["right"]
    a = list(draw(st.permutations(a)))
    same_order = sorted(a) == sorted(b) and draw(st.booleans())
    b = list(a) if same_order else list(draw(st.permutations(b)))
    small = [c for c in a if sizes[c] <= 64]
    if small and draw(st.integers(0, 4)) == 0:  # a diagonal of operand 0
        c = draw(st.sampled_from(small))
        a.insert(draw(st.integers(0, len(a))), c)
    if draw(st.integers(0, 4)) == 0:  # an index only operand 0 holds: summed first
        z = next(letters)
        sizes[z] = draw(st.integers(2, 3))
        a.insert(draw(st.integers(0, len(a))), z)
    inputs = [tuple(a), tuple(b)]
    if draw(st.integers(0, 3)) == 0:  # a third operand, a vector over one index
        inputs.append((draw(st.sampled_from(sorted(set(a) | set(b)))),))
    kept = groups["batch"] + groups["left"] + groups["right"]
    out = draw(st.sampled_from(outs))
    if draw(st.integers(0, 5)) == 0:
        output = None
    elif out == "alias" and sorted(kept) == sorted(a):
        output = tuple(a)  # operand 0 has the result's shape: it can be out
    else:
        output = tuple(draw(st.permutations(kept)))
    twins = [0]
    for k in range(1, len(inputs)):
        same = [j for j in range(k) if inputs[j] == inputs[k]]
        twins.append(same[0] if same and draw(st.booleans()) else k)
    return Problem(
        inputs=tuple(inputs), output=output, sizes=sizes, twins=tuple(twins),
        dtype=draw(st.sampled_from(dtypes)),
        layouts=tuple(draw(st.sampled_from(layouts)) for _ in inputs),
        form=draw(st.sampled_from(FORMS)),
        optimize=draw(st.sampled_from(["auto", "greedy", "optimal", False])),
        out=out, seed=draw(st.integers(0, 2**16)))


# ---- operands ----


def values(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Random values: int8 over its whole range (products and sums wrap), the rest as
    :func:`cases.make_array` draws them."""
    if dtype == "int8":
        return rng.integers(-128, 128, size=shape).astype(np.int8)
    return make_array(rng, shape, np.dtype(dtype))


def lay_out(x: np.ndarray, layout: str) -> np.ndarray:
    """``x``'s values in another memory layout: ``"strided"`` (a view taking every other
    element), ``"reversed"`` (negative strides on every axis), ``"F"`` (Fortran order)."""
    if layout == "F":
        return np.asfortranarray(x)
    if layout == "reversed":
        flip = (slice(None, None, -1),) * x.ndim
        return np.ascontiguousarray(x[flip])[flip]
    if layout == "strided":
        big = np.zeros(tuple(2 * d for d in x.shape), x.dtype)
        every = (slice(None, None, 2),) * x.ndim
        big[every] = x
        return big[every]
    return x


def numpy_operands(p: Problem) -> list[np.ndarray]:
    """The problem's operands in numpy, twins the same object."""
    rng = np.random.default_rng(p.seed)
    kinds = ("int8", "float32", "complex64") if p.dtype == "mixed" else (p.dtype,)
    ops: list[np.ndarray] = []
    for k, shape in enumerate(p.shapes):
        if p.twins[k] != k:
            ops.append(ops[p.twins[k]])
            continue
        ops.append(lay_out(values(rng, shape, kinds[k % len(kinds)]), p.layouts[k]))
    return ops


def to_torch(x: np.ndarray) -> Any:
    """A torch tensor of ``x``'s values, strided as ``x`` where torch allows it (torch
    has no negative strides: a reversed layout arrives contiguous)."""
    import torch

    if any(s < 0 for s in x.strides):
        x = np.ascontiguousarray(x)
    return torch.from_numpy(x)


def to_jax(x: np.ndarray) -> Any:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    return jnp.asarray(x)


CONVERT: dict[str, Callable[[np.ndarray], Any]] = {
    "numpy": lambda x: x, "torch": to_torch, "jax": to_jax}


def convert(lib: str, ops: Sequence[np.ndarray]) -> list[Any]:
    """``ops`` in library ``lib``: each object once, so twins stay the same object."""
    done: dict[int, Any] = {}
    return [done.setdefault(id(x), CONVERT[lib](x)) for x in ops]


def runs(lib: str) -> bool:
    """Whether library ``lib`` is installed here."""
    return lib == "numpy" or available(lib)


def lib_params(*names: str) -> list[Any]:
    """pytest parameters for libraries ``names``, each skipped where not installed."""
    return [pytest.param(n, marks=pytest.mark.skipif(not runs(n), reason=f"no {n} here"))
            for n in names]


def back(x: Any) -> np.ndarray:
    """A result as numpy."""
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


# ---- spelling: text, sublist, Unicode letters, names ----

#: Order-preserving renamings (an implicit output is sorted: the order must agree).
UNICODE = "ñπστφχψωЖЯ中文字\u2000\u3042\u3044"
RENAME: dict[str, Callable[[list[str]], dict[str, Any]]] = {
    "text": lambda labels: {c: c for c in labels},
    "sublist": lambda labels: {c: k for k, c in enumerate(labels)},
    "unicode": lambda labels: dict(zip(labels, sorted(UNICODE), strict=False)),
    "names": lambda labels: {c: c + c + "x" for c in labels},
}


def call_args(p: Problem, ops: Sequence[Any]) -> list[Any]:
    """The positional arguments of the einsum call in the problem's spelling."""
    labels = sorted({c for t in p.inputs for c in t})
    name = RENAME[p.form](labels)
    if p.form == "sublist":
        args: list[Any] = []
        for op, term in zip(ops, p.inputs, strict=True):
            args += [op, [name[c] for c in term]]
        return args if p.output is None else [*args, [name[c] for c in p.output]]
    if p.form == "names" and not any(len(t) > 1 for t in [*p.inputs, p.output or ()]):
        return call_args(replace(p, form="text"), ops)  # one label a term: no names mode
    sep, comma, arrow = (" ", ", ", " -> ") if p.form == "names" else ("", ",", "->")
    text = comma.join(sep.join(name[c] for c in t) for t in p.inputs)
    if p.output is not None:
        text += arrow + sep.join(name[c] for c in p.output)
    return [text, *ops]


# ---- the check ----


def reference(p: Problem, ops: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """numpy's result on copies of the operands, and the scale of its rounding errors."""
    copies = [np.array(x) for x in ops]
    expected = np.asarray(numpy_einsum_terms(p.inputs, p.output, copies))
    return expected, magnitude(p.inputs, p.output, copies)


def out_array(p: Problem, ops: list[Any], expected: np.ndarray, lib: str) -> Any:
    """The ``out=`` array of the problem: a fresh one (Fortran order where it has two
    axes or more), or an operand of the result's shape and dtype (None when none is)."""
    if p.out == "alias":
        return next((x for x in ops if tuple(x.shape) == expected.shape
                     and back(x).dtype == expected.dtype), None)
    fresh = np.zeros(expected.shape, expected.dtype, order="F")
    return CONVERT[lib](fresh)


def check(p: Problem, lib: str) -> None:
    """einopt's result on ``lib``'s arrays equals numpy.einsum's, ``out=`` honoured."""
    ops_np = numpy_operands(p)
    expected, scale = reference(p, ops_np)
    ops = convert(lib, ops_np)
    args = call_args(p, ops)
    if lib == "torch" and expected.dtype == np.bool_:
        with pytest.raises(einopt.OperandTypeError, match="bool"):
            einopt.einsum(*args, optimize=p.optimize)
        return
    out = None if p.out is None else out_array(p, ops, expected, lib)
    if out is None:
        got = einopt.einsum(*args, optimize=p.optimize)
    else:
        got = einopt.einsum(*args, optimize=p.optimize, out=out)
        assert got is out, "einsum with out= returns out"
    # numpy promotes mixed dtypes its own way; torch and jax by their own rules
    assert_matches(back(got), expected, scale,
                   check_dtype=lib == "numpy" or p.dtype != "mixed")


@pytest.mark.parametrize("lib", lib_params("numpy", "torch", "jax"))
def test_matches_numpy(lib: str) -> None:
    """Drawn problems agree with numpy.einsum on each library, in every dtype; numpy
    and torch also in every layout, and with ``out=`` fresh or aliasing an operand."""
    outs: tuple[str | None, ...] = (None,) if lib == "jax" else (None, None, "fresh", "alias")

    @lib_settings(lib)
    @given(problems(outs=outs))
    def run(p: Problem) -> None:
        check(p, lib)

    run()


def test_strategy_reaches_every_branch() -> None:
    """Over a fixed set of drawn problems (derandomized), every kernel branch is taken,
    on both sides of each threshold."""
    seen: set[str] = set()

    @settings(max_examples=4 * EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(problems())
    def collect(p: Problem) -> None:
        seen.update(branches(einopt.plan(p.text(), *p.shapes, optimize=p.optimize)))

    collect()
    assert seen == BRANCHES, f"never reached: {sorted(BRANCHES - seen)}"


# ---- each rule at its threshold exactly ----

#: (equation, sizes, branch taken): each rule one below, at and one above its threshold.
THRESHOLDS = [
    ("bc,bc->b", {"b": DOT_BATCH, "c": DOT_CONTRACT}, "dot-loop"),
    ("bc,bc->b", {"b": DOT_BATCH - 1, "c": DOT_CONTRACT}, "dot-matmul-few"),
    ("bc,bc->b", {"b": DOT_BATCH, "c": DOT_CONTRACT + 1}, "dot-matmul-long"),
    ("bc,cb->b", {"b": DOT_BATCH + 1, "c": DOT_CONTRACT - 1}, "dot-loop"),
    ("c,c->", {"c": DOT_CONTRACT + 1}, "dot"),
    ("i,j->ij", {"i": 3, "j": OUTER_INNER}, "outer-loop"),
    ("i,j->ij", {"i": 3, "j": OUTER_INNER + 1}, "outer-broadcast"),
    ("bi,bj->bij", {"b": 2, "i": 2, "j": OUTER_INNER - 1}, "outer-loop"),
    ("ij,ij->ij", {"i": 3, "j": OUTER_INNER + 1}, "elementwise"),
    ("ij,jk->ik", {"i": 5, "j": 6, "k": 7}, "gemm"),
    ("kc,ncl->nkl", {"k": 4, "c": 6, "n": 3, "l": 5}, "gemm-wide"),
    ("ii,ij->j", {"i": 4, "j": 3}, "prep"),
]


@pytest.mark.parametrize("eq, sizes, expected", THRESHOLDS,
                         ids=[f"{t[2]}-{t[0]}-{'x'.join(map(str, t[1].values()))}"
                              for t in THRESHOLDS])
@pytest.mark.parametrize("dtype", ["float64", "float16", "int8", "bool", "complex64"])
@pytest.mark.parametrize("lib", lib_params("numpy", "torch", "jax"))
def test_rule_at_threshold(eq: str, sizes: dict[str, int], expected: str, dtype: str,
                           lib: str) -> None:
    """The branch flips exactly at the planner's threshold, and both sides agree with
    numpy (int8 wrapping around, bool as logical or of ands) on every library."""
    inputs = tuple(tuple(t) for t in eq.split("->")[0].split(","))
    output = tuple(eq.split("->")[1])
    p = Problem(inputs, output, sizes, tuple(range(len(inputs))), dtype,
                ("C",) * len(inputs), "text", "auto", None, seed=len(eq))
    assert expected in branches(einopt.plan(p.text(), *p.shapes))
    check(p, lib)


# ---- out= aliasing an operand, the same object several times ----

ALIASED = ["ij->ij", "ij->ji", "ij,jk->ik", "ij,jk->ki", "ij,ij->ij", "ij,ji->ij",
           "ij,jk,kl->il", "ii,ij->ij"]


@pytest.mark.parametrize("lib", lib_params("numpy", "torch"))
@pytest.mark.parametrize("eq", ALIASED)
def test_out_aliasing_an_operand(eq: str, lib: str) -> None:
    """``out`` that is an operand (here every operand is the same square array) gets
    numpy's result on the untouched operands, as numpy.einsum gives it."""
    x_np = np.arange(16.0).reshape(4, 4) - 5.0
    nops = eq.count(",") + 1
    expected = np.einsum(eq, *[x_np.copy() for _ in range(nops)])
    x = CONVERT[lib](x_np)
    got = einopt.einsum(eq, *[x] * nops, out=x)
    assert got is x
    np.testing.assert_allclose(back(x), expected, rtol=1e-12)


@pytest.mark.parametrize("eq, shapes", [
    ("ij,ij->i", [(6, 5)] * 2),
    ("ij,ij,ij->", [(6, 5)] * 3),
    ("ij,jk,ki->", [(5, 5)] * 3),
    ("bc,bc->b", [(DOT_BATCH, DOT_CONTRACT)] * 2),
    ("ab,cd,ab,cd->", [(4, 3), (3, 4), (4, 3), (3, 4)]),
])
@pytest.mark.parametrize("dtype", ["float64", "int8", "complex128"])
def test_same_object_several_times(eq: str, shapes: list[tuple[int, ...]],
                                   dtype: str) -> None:
    """The same array object in several places (planned once as a shared
    subexpression where that is cheaper) gives numpy's result, on every library."""
    inputs = tuple(tuple(t) for t in eq.split("->")[0].split(","))
    sizes = {c: d for t, s in zip(inputs, shapes, strict=True) for c, d in zip(t, s,
                                                                              strict=True)}
    first: dict[tuple[int, ...], int] = {}
    twins = tuple(first.setdefault(s, k) for k, s in enumerate(shapes))
    p = Problem(inputs, tuple(eq.split("->")[1]), sizes, twins, dtype,
                ("C",) * len(inputs), "text", "auto", None, seed=3)
    for lib in ("numpy", "torch", "jax"):
        if runs(lib):
            check(p, lib)
