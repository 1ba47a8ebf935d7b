"""einopt.contract / contract_path / contract_expression behave like opt_einsum's."""

from __future__ import annotations

import numpy as np
import pytest

import einopt

from cases import CASES, Case, assert_matches, magnitude, make_operands, split_text

oe = pytest.importorskip("opt_einsum")


def _oe_supported(case: Case) -> bool:
    if not case.eq.isascii():
        return False
    try:
        oe.contract(case.eq, *make_operands(case.shapes, np.float64, 0))
    except Exception:
        return False
    return True


OE_CASES = [c for c in CASES if _oe_supported(c)]
OE_IDS = [c.label for c in OE_CASES]
OE_MULTI = [c for c in OE_CASES if c.nops >= 2]
OE_MULTI_IDS = [c.label for c in OE_MULTI]


def _seed(case: Case) -> int:
    return sum(ord(ch) for ch in case.label) % 997


def _scale(case: Case, ops):
    inputs, output = split_text(case.eq)
    return magnitude(inputs, output, ops)


def _check_path(path, nops: int) -> list[tuple[int, ...]]:
    path = [tuple(int(i) for i in step) for step in path]
    remaining = nops
    for step in path:
        assert len(set(step)) == len(step)
        assert all(0 <= i < remaining for i in step)
        remaining -= len(step) - 1
    assert remaining == 1
    return path


# ---- contract ----


@pytest.mark.parametrize("case", OE_CASES, ids=OE_IDS)
def test_contract_matches_opt_einsum(case):
    ops = make_operands(case.shapes, np.float64, _seed(case))
    expected = oe.contract(case.eq, *ops)
    got = einopt.contract(case.eq, *ops)
    assert_matches(got, expected, _scale(case, ops))


@pytest.mark.parametrize("optimize", ["greedy", "optimal", "auto", True])
@pytest.mark.parametrize("case", OE_MULTI, ids=OE_MULTI_IDS)
def test_contract_optimize_options(case, optimize):
    ops = make_operands(case.shapes, np.float64, _seed(case) + 1)
    expected = oe.contract(case.eq, *ops, optimize=optimize)
    got = einopt.contract(case.eq, *ops, optimize=optimize)
    assert_matches(got, expected, _scale(case, ops))


@pytest.mark.parametrize("case", OE_MULTI, ids=OE_MULTI_IDS)
def test_contract_with_opt_einsum_path(case):
    ops = make_operands(case.shapes, np.float64, _seed(case) + 2)
    path, _ = oe.contract_path(case.eq, *ops, optimize="greedy")
    expected = oe.contract(case.eq, *ops, optimize=path)
    got = einopt.contract(case.eq, *ops, optimize=path)
    assert_matches(got, expected, _scale(case, ops))


@pytest.mark.parametrize("dtype", [np.float32, np.complex128, np.int64])
def test_contract_dtypes(dtype):
    eq = "ea,fb,abcd,gc,hd->efgh"
    shapes = [(2, 3), (3, 4), (3, 4, 5, 2), (2, 5), (3, 2)]
    ops = make_operands(shapes, dtype, 5)
    expected = oe.contract(eq, *ops)
    got = einopt.contract(eq, *ops)
    assert np.asarray(got).dtype == np.asarray(expected).dtype
    assert_matches(got, expected, magnitude(*split_text(eq), ops))


def test_contract_out():
    eq = "ab,bc,cd->ad"
    ops = make_operands([(2, 3), (3, 4), (4, 5)], np.float64, 6)
    out = np.empty((2, 5))
    got = einopt.contract(eq, *ops, out=out)
    assert got is out
    np.testing.assert_allclose(out, oe.contract(eq, *ops), rtol=1e-12)


def test_contract_interleaved_form():
    a, b, c = make_operands([(2, 3), (3, 4), (4, 5)], np.float64, 7)
    args = (a, [0, 1], b, [1, 2], c, [2, 3], [0, 3])
    np.testing.assert_allclose(einopt.contract(*args), oe.contract(*args), rtol=1e-12)
    args_implicit = (a, [0, 1], b, [1, 2])
    np.testing.assert_allclose(
        einopt.contract(*args_implicit), oe.contract(*args_implicit), rtol=1e-12
    )


def test_contract_accepts_opt_einsum_keywords():
    eq = "ab,bc,cd->ad"
    ops = make_operands([(2, 3), (3, 4), (4, 5)], np.float64, 8)
    expected = oe.contract(eq, *ops)
    for kwargs in ({"use_blas": True}, {"use_blas": False}, {"memory_limit": None}):
        np.testing.assert_allclose(einopt.contract(eq, *ops, **kwargs), expected, rtol=1e-12)


# ---- contract_path ----


@pytest.mark.parametrize("case", OE_MULTI, ids=OE_MULTI_IDS)
def test_contract_path_format_and_result(case):
    ops = make_operands(case.shapes, np.float64, _seed(case) + 3)
    path, info = einopt.contract_path(case.eq, *ops)
    path = _check_path(path, case.nops)
    assert len(path) == case.nops - 1 and all(len(s) == 2 for s in path)
    report = str(info)
    assert report.strip()
    # the path works in opt_einsum itself
    expected = oe.contract(case.eq, *ops)
    assert_matches(oe.contract(case.eq, *ops, optimize=path), expected, _scale(case, ops))
    assert_matches(einopt.contract(case.eq, *ops, optimize=path), expected, _scale(case, ops))


def test_contract_path_report_is_readable():
    eq = "ab,bc,cd->ad"
    shapes = [(10, 100), (100, 5), (5, 50)]
    ops = make_operands(shapes, np.float64, 9)
    path, info = einopt.contract_path(eq, *ops)
    text = str(info)
    assert len(text.splitlines()) >= 3
    for term in ("ab", "bc", "cd", "ad"):
        assert term in text.replace(" ", "") or all(ch in text for ch in term)
    assert [tuple(sorted(s)) for s in path] == [(0, 1), (0, 1)]


def test_contract_path_with_shapes_keyword():
    eq = "ab,bc,cd->ad"
    shapes = [(10, 100), (100, 5), (5, 50)]
    path, _ = einopt.contract_path(eq, *shapes, shapes=True)
    oe_path, _ = oe.contract_path(eq, *shapes, shapes=True)
    assert [tuple(sorted(s)) for s in path] == [tuple(sorted(s)) for s in oe_path]


@pytest.mark.parametrize("optimize", ["greedy", "optimal"])
def test_contract_path_explicit_roundtrip(optimize):
    eq = "abhe,hidj,jgba,hiab,gab"
    shapes = [(2, 3, 2, 3), (2, 2, 3, 2), (2, 2, 3, 2), (2, 2, 2, 3), (2, 2, 3)]
    ops = make_operands(shapes, np.float64, 10)
    path, _ = einopt.contract_path(eq, *ops, optimize=optimize)
    path = _check_path(path, len(ops))
    again, _ = einopt.contract_path(eq, *ops, optimize=path)
    assert _check_path(again, len(ops)) == path


OPT_CASES = [
    c
    for c in OE_MULTI
    if 3 <= c.nops <= 6
    and "." not in c.eq
    and 0 not in [d for s in c.shapes for d in s]
    and all(
        len(
            {
                d
                for t, s in zip(split_text(c.eq)[0], c.shapes, strict=False)
                for lab2, d in zip(t, s, strict=False)
                if lab2 == lab
            }
        )
        == 1
        for lab in {lab for t in split_text(c.eq)[0] for lab in t}
    )
]


@pytest.mark.parametrize("case", OPT_CASES, ids=[c.label for c in OPT_CASES])
def test_optimal_path_no_worse_than_opt_einsum_optimal(case):
    ours, _ = einopt.contract_path(case.eq, *case.shapes, shapes=True, optimize="optimal")
    theirs, _ = oe.contract_path(case.eq, *case.shapes, shapes=True, optimize="optimal")
    # both paths costed by einopt's own flop count
    ours_cost = einopt.plan(case.eq, *case.shapes, optimize=_check_path(ours, case.nops)).flops
    theirs_cost = einopt.plan(case.eq, *case.shapes, optimize=_check_path(theirs, case.nops)).flops
    assert ours_cost <= theirs_cost * (1 + 1e-9)


# ---- contract_expression ----


@pytest.mark.parametrize("case", OE_MULTI, ids=OE_MULTI_IDS)
def test_contract_expression(case):
    expr = einopt.contract_expression(case.eq, *case.shapes)
    for k in range(2):
        ops = make_operands(case.shapes, np.float64, _seed(case) + 10 + k)
        assert_matches(expr(*ops), oe.contract(case.eq, *ops), _scale(case, ops))


@pytest.mark.parametrize(
    "eq, shapes, constants",
    [
        ("ab,bc,cd->ad", [(2, 3), (3, 4), (4, 5)], [0]),
        ("ab,bc,cd->ad", [(2, 3), (3, 4), (4, 5)], [1]),
        ("ab,bc,cd->ad", [(2, 3), (3, 4), (4, 5)], [0, 2]),
        ("ea,fb,abcd,gc,hd->efgh", [(2, 3), (3, 4), (3, 4, 5, 2), (2, 5), (3, 2)], [2]),
        ("ea,fb,abcd,gc,hd->efgh", [(2, 3), (3, 4), (3, 4, 5, 2), (2, 5), (3, 2)], [0, 1, 3]),
        ("ij,jk->ik", [(3, 4), (4, 2)], [0, 1]),
        ("ni,ni,nj,nj->n", [(4, 3), (4, 3), (4, 5), (4, 5)], [1, 3]),
    ],
)
def test_contract_expression_constants(eq, shapes, constants):
    rng = np.random.default_rng(11)
    fixed = {i: rng.standard_normal(shapes[i]) for i in constants}
    spec = [fixed[i] if i in fixed else shapes[i] for i in range(len(shapes))]
    ours = einopt.contract_expression(eq, *spec, constants=constants)
    theirs = oe.contract_expression(eq, *spec, constants=constants)
    variable = [i for i in range(len(shapes)) if i not in fixed]
    for _ in range(2):
        args = [rng.standard_normal(shapes[i]) for i in variable]
        if args:  # opt_einsum cannot pick a backend when every operand is constant
            np.testing.assert_allclose(ours(*args), theirs(*args), rtol=1e-10, atol=1e-12)
        full = [fixed[i] if i in fixed else args[variable.index(i)] for i in range(len(shapes))]
        np.testing.assert_allclose(ours(*args), np.einsum(eq, *full), rtol=1e-10, atol=1e-12)


def test_contract_expression_out():
    eq = "ab,bc->ac"
    expr = einopt.contract_expression(eq, (2, 3), (3, 4))
    a, b = make_operands([(2, 3), (3, 4)], np.float64, 12)
    out = np.empty((2, 4))
    got = expr(a, b, out=out)
    assert got is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-12)


def test_contract_expression_wrong_operand_count():
    expr = einopt.contract_expression("ab,bc,cd->ad", (2, 3), (3, 4), (4, 5))
    with pytest.raises(ValueError):
        expr(np.ones((2, 3)), np.ones((3, 4)))
    const = einopt.contract_expression(
        "ab,bc,cd->ad", np.ones((2, 3)), (3, 4), (4, 5), constants=[0]
    )
    with pytest.raises(ValueError):
        const(np.ones((2, 3)), np.ones((3, 4)), np.ones((4, 5)))
