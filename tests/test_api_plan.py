"""Plans, explicit paths, generated code and caching through the public API."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import einopt
from einopt.run.memory import peak_elements

from api_helpers import (
    MULTI,
    OPTIMIZERS,
    _seed,
    assert_valid_path,
    has_broadcasting,
    index_sizes,
)
from cases import (
    CASE_IDS,
    CASES,
    check_against_numpy,
    make_operands,
    numpy_einsum,
    split_text,
)

# ---- explicit paths ----


@pytest.mark.parametrize(
    "path",
    [[(0, 1), (0, 1)], [(1, 2), (0, 1)], [(0, 2), (0, 1)], [(2, 1), (1, 0)]],
    ids=str,
)
def test_explicit_paths(path, rng):
    eq = "ab,bc,cd->ad"
    ops = make_operands([(2, 3), (3, 4), (4, 5)], np.float64, rng)
    got = einopt.einsum(eq, *ops, optimize=path)
    check_against_numpy(eq, ops, got)


def test_explicit_path_with_tuple_of_three(rng):
    eq = "ab,bc,cd->ad"
    ops = make_operands([(2, 3), (3, 4), (4, 5)], np.float64, rng)
    check_against_numpy(eq, ops, einopt.einsum(eq, *ops, optimize=[(0, 1, 2)]))


def test_explicit_path_matches_opt_einsum(rng):
    oe = pytest.importorskip("opt_einsum")
    eq = "ea,fb,abcd,gc,hd->efgh"
    shapes = [(2, 3), (3, 4), (3, 4, 5, 2), (2, 5), (3, 2)]
    ops = make_operands(shapes, np.float64, rng)
    for optimize in OPTIMIZERS:
        path = list(einopt.plan(eq, *ops, optimize=optimize).path)
        assert_valid_path(path, len(ops), pairwise=True)
        ref = oe.contract(eq, *ops, optimize=path)
        np.testing.assert_allclose(einopt.einsum(eq, *ops, optimize=path), ref, rtol=1e-10)
        oe_path, _ = oe.contract_path(eq, *ops, optimize="greedy")
        np.testing.assert_allclose(einopt.einsum(eq, *ops, optimize=oe_path), ref, rtol=1e-10)


# ---- Plan ----

FLOP_CASES = [
    c for c in MULTI if 0 not in [d for s in c.shapes for d in s] and not has_broadcasting(c)
]


@pytest.mark.parametrize("case", FLOP_CASES, ids=[c.label for c in FLOP_CASES])
def test_plan_attributes(case):
    p = einopt.plan(case.eq, *case.shapes)
    sizes, ell = index_sizes(case)
    total = math.prod(sizes.values()) * math.prod(ell)
    assert p.naive_flops == total * max(1, case.nops - 1)
    assert p.flops > 0
    assert p.speedup == pytest.approx(p.naive_flops / p.flops, rel=1e-9)
    assert p.max_size >= 1
    assert tuple(p.sliced) == ()
    assert_valid_path(p.path, case.nops, pairwise=True)
    if case.nops == 2:
        # a single pairwise step touches every index once
        assert p.flops == total
    # the plan never does worse than the naive count
    assert p.flops <= p.naive_flops


@pytest.mark.parametrize("case", FLOP_CASES, ids=[c.label for c in FLOP_CASES])
def test_optimal_is_no_worse_than_greedy(case):
    if case.nops > 7:
        pytest.skip("too many operands for an exhaustive search in a quick test")
    opt = einopt.plan(case.eq, *case.shapes, optimize="optimal")
    greedy = einopt.plan(case.eq, *case.shapes, optimize="greedy")
    assert opt.flops <= greedy.flops


def test_plan_flops_hyperedge():
    n, i, j = 100, 200, 300
    p = einopt.plan("ni,ni,nj,nj->n", (n, i), (n, i), (n, j), (n, j))
    expected = n * i + n * j + n
    assert p.flops == expected
    for optimize in ("optimal", "greedy"):
        q = einopt.plan("ni,ni,nj,nj->n", (n, i), (n, i), (n, j), (n, j), optimize=optimize)
        assert q.flops == expected


def test_plan_matrix_chain_flops():
    # (ab)(bc) first costs 10*100*5 + 10*5*50 = 7500; the other order 100*5*50 + 10*100*50 = 75000
    p = einopt.plan("ab,bc,cd->ad", (10, 100), (100, 5), (5, 50), optimize="optimal")
    assert p.flops == 7500
    assert [tuple(sorted(s)) for s in p.path] == [(0, 1), (0, 1)]
    assert p.naive_flops == 10 * 100 * 5 * 50 * 2
    assert p.speedup == pytest.approx(p.naive_flops / 7500)
    assert p.max_size == 10 * 50  # (ab)(bc) is 10x5, then the 10x50 result


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_plan_call_and_str(case):
    ops = make_operands(case.shapes, np.float64, _seed(case) + 5)
    p = einopt.plan(case.eq, *ops)
    first = p(*ops)
    second = p(*ops)
    check_against_numpy(case.eq, ops, first)
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))
    # new data with the same shapes
    ops2 = make_operands(case.shapes, np.float64, _seed(case) + 6)
    check_against_numpy(case.eq, ops2, p(*ops2))
    text = str(p)
    assert text.strip()
    inputs, _ = split_text(case.eq)
    for term in inputs:
        for lab in term:
            if lab != "...":
                assert lab in text, f"label {lab!r} not shown in str(plan)"


def test_plan_from_shapes_only(rng):
    eq = "ab,bc,cd->ad"
    shapes = [(2, 3), (3, 4), (4, 5)]
    p = einopt.plan(eq, *shapes)
    ops = make_operands(shapes, np.float64, rng)
    check_against_numpy(eq, ops, p(*ops))
    q = einopt.plan(eq, *ops)
    assert [tuple(s) for s in p.path] == [tuple(s) for s in q.path]
    assert p.flops == q.flops
    # a plan made from shapes serves any dtype
    for dtype in (np.complex128, np.int64, np.float32):
        typed = make_operands(shapes, dtype, rng)
        check_against_numpy(eq, typed, p(*typed))


def test_plan_options(rng):
    eq = "ea,fb,abcd,gc,hd->efgh"
    shapes = [(2, 3), (3, 4), (3, 4, 5, 2), (2, 5), (3, 2)]
    ops = make_operands(shapes, np.float64, rng)
    for kwargs in (
        {"optimize": "optimal"},
        {"optimize": "greedy"},
        {"minimize": "flops"},
        {"max_time": 0.5},
        {"seed": 1},
        {"memory_limit": 10**9},
    ):
        p = einopt.plan(eq, *shapes, **kwargs)
        assert_valid_path(p.path, len(shapes), pairwise=True)
        check_against_numpy(eq, ops, p(*ops))
    assert list(einopt.plan(eq, *shapes, seed=3).path) == list(
        einopt.plan(eq, *shapes, seed=3).path
    )


def test_plan_with_explicit_path():
    path = [(1, 2), (0, 1)]
    p = einopt.plan("ab,bc,cd->ad", (2, 3), (3, 4), (4, 5), optimize=path)
    assert [tuple(s) for s in p.path] == path
    # flops of that order: (bc)(cd) = 3*4*5, then ab,bd = 2*3*5
    assert p.flops == 3 * 4 * 5 + 2 * 3 * 5


@pytest.mark.parametrize("memory_limit", [10**12, 1000, 700, 420])
def test_memory_limit(memory_limit, rng):
    eq = "ab,bc,cd->ad"
    shapes = [(20, 30), (30, 40), (40, 20)]
    ops = make_operands(shapes, np.float64, rng)
    p = einopt.plan(eq, *shapes, memory_limit=memory_limit)
    assert isinstance(p.sliced, tuple)
    assert p.max_size <= memory_limit
    # the peak (the 20x20 result, intermediates and copies alive together) fits too
    assert peak_elements(p) <= memory_limit
    if memory_limit >= 1000:
        assert p.sliced == ()
        assert p.max_size == 30 * 20  # (bc)(cd) first: no slicing needed
    else:
        assert p.sliced != () and p.num_slices > 1
    check_against_numpy(eq, ops, p(*ops))
    check_against_numpy(eq, ops, einopt.einsum(eq, *ops, memory_limit=memory_limit))


@pytest.mark.parametrize("memory_limit", [400, 60])
def test_memory_limit_smaller_than_the_result(memory_limit):
    with pytest.raises(einopt.EinsumError, match=r"memory_limit=\d+ elements.*\(20, 20\)|needs"):
        einopt.plan("ab,bc,cd->ad", (20, 30), (30, 40), (40, 20), memory_limit=memory_limit)


def test_memory_limit_forces_slicing(rng):
    # every route goes through an intermediate of at least 30*30 = 900 elements
    eq = "ab,bc,cd,da->"
    shapes = [(30, 30)] * 4
    p_free = einopt.plan(eq, *shapes)
    p = einopt.plan(eq, *shapes, memory_limit=100)
    assert p_free.sliced == () and p_free.max_size >= 30 * 30
    assert len(p.sliced) >= 1
    assert p.max_size <= 100
    assert peak_elements(p) <= 100
    ops = make_operands(shapes, np.float64, rng)
    check_against_numpy(eq, ops, p(*ops))


# ---- generated code ----

_DEF = re.compile(r"^def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)


def _run_code(p, ops):
    src = p.code(backend="numpy")
    assert isinstance(src, str) and "def " in src
    names = _DEF.findall(src)
    assert names, "no top-level function in generated code"
    namespace: dict = {"__name__": "einopt_generated"}
    exec(compile(src, "<einopt-generated>", "exec"), namespace)
    return namespace[names[-1]](*ops)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_plan_code_roundtrip(case):
    ops = make_operands(case.shapes, np.float64, _seed(case) + 7)
    p = einopt.plan(case.eq, *ops)
    got = _run_code(p, ops)
    check_against_numpy(case.eq, ops, got)


def test_plan_code_default_backend(rng):
    eq = "ij,jk,kl->il"
    ops = make_operands([(3, 4), (4, 5), (5, 2)], np.float64, rng)
    src = einopt.plan(eq, *ops).code()
    assert "def " in src


# ---- caching ----


def test_repeated_calls_and_clear_caches(rng):
    eq = "abhe,hidj,jgba,hiab,gab"
    shapes = [(2, 3, 2, 3), (2, 2, 3, 2), (2, 2, 3, 2), (2, 2, 2, 3), (2, 2, 3)]
    ops = make_operands(shapes, np.float64, rng)
    first = einopt.einsum(eq, *ops)
    second = einopt.einsum(eq, *ops)
    np.testing.assert_array_equal(first, second)
    assert einopt.clear_caches() is None
    third = einopt.einsum(eq, *ops)
    np.testing.assert_allclose(third, first, rtol=1e-12)
    # same equation, different sizes after caching
    ops_big = make_operands(
        [(3, 2, 4, 2), (4, 3, 2, 3), (3, 3, 2, 3), (4, 3, 3, 2), (3, 3, 2)], np.float64, rng
    )
    check_against_numpy(eq, ops_big, einopt.einsum(eq, *ops_big))
    # same shapes, different dtype after caching
    ops_c = [op.astype(np.complex128) * (1 + 1j) for op in ops]
    check_against_numpy(eq, ops_c, einopt.einsum(eq, *ops_c))
    p1 = einopt.plan(eq, *shapes)
    p2 = einopt.plan(eq, *shapes)
    assert [tuple(s) for s in p1.path] == [tuple(s) for s in p2.path]


def test_cache_distinguishes_shapes_and_options(rng):
    eq = "ab,bc,cd->ad"
    s1 = [(10, 100), (100, 5), (5, 50)]  # best: (ab)(bc) first
    s2 = [(50, 5), (5, 100), (100, 10)]  # best: (bc)(cd) first
    ops1 = make_operands(s1, np.float64, rng)
    ops2 = make_operands(s2, np.float64, rng)
    check_against_numpy(eq, ops1, einopt.einsum(eq, *ops1))
    check_against_numpy(eq, ops2, einopt.einsum(eq, *ops2))
    p1 = einopt.plan(eq, *s1)
    p2 = einopt.plan(eq, *s2)
    assert p1.flops == 7500
    assert p2.flops == 7500
    assert [tuple(sorted(s)) for s in p1.path] == [(0, 1), (0, 1)]
    assert [tuple(sorted(s)) for s in p2.path] == [(1, 2), (0, 1)]
    # an explicit (worse) path must not leak into later automatic plans, or vice versa
    worse = einopt.plan(eq, *s1, optimize=[(1, 2), (0, 1)])
    assert worse.flops > p1.flops
    assert einopt.plan(eq, *s1).flops == 7500
    assert einopt.plan(eq, *s1, optimize=[(1, 2), (0, 1)]).flops == worse.flops
    # a memory limit must not leak either
    free = einopt.plan("ab,bc,cd,da->", *[(30, 30)] * 4)
    tight = einopt.plan("ab,bc,cd,da->", *[(30, 30)] * 4, memory_limit=100)
    again = einopt.plan("ab,bc,cd,da->", *[(30, 30)] * 4)
    assert tight.sliced and not free.sliced and not again.sliced


def test_cache_distinguishes_dtypes(rng):
    eq = "ij,jk->ik"
    shapes = [(3, 4), (4, 5)]
    for dtype in (np.float64, np.int8, np.bool_, np.complex64, np.float32, np.int64):
        ops = make_operands(shapes, dtype, rng)
        check_against_numpy(eq, ops, einopt.einsum(eq, *ops))


# ---- module surface ----


def test_public_names():
    for name in (
        "einsum",
        "plan",
        "contract",
        "contract_path",
        "contract_expression",
        "clear_caches",
        "EinsumError",
    ):
        assert hasattr(einopt, name), name
    assert issubclass(einopt.EinsumError, ValueError)


def test_numpy_reference_helper_sanity():
    # the renaming reference keeps numpy's implicit ordering
    a = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(numpy_einsum("Ba", a), np.einsum("Ba", a))
    np.testing.assert_array_equal(numpy_einsum("βα", a), a.T)
