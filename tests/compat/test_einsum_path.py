"""einopt.einsum_path against numpy.einsum_path: the same paths, reports and errors."""

from __future__ import annotations

import random

import numpy as np
import pytest

import einopt
from einopt.compat.numpy_path import numpy_greedy, numpy_optimal
from einopt.errors import IncompletePathError, SubscriptTypeError

SIZES = dict(zip("abcdefghij", [2, 3, 4, 5, 4, 3, 2, 6, 5, 4], strict=True))


def operands(eq: str, sizes: dict[str, int] = SIZES) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random([sizes[c] for c in term]) for term in eq.split("->")[0].split(",")]


EQUATIONS = [
    "acdf,jbje,gihb,hfac,gfac,gifabc,hfac",
    "chd,bde,agbc,hiad,bdi,cgh,agdb",
    "eb,cb,fb->cef",
    "dd,fb,be,cdb->cef",
    "bca,cdb,dbf,afc->",
    "dcc,fce,ea,dbf->ab",
    "ea,fb,abcd,gc,hd->efgh",
    "a,b,c->abc",
    "ab,ab,c->c",
    "abc,abc",
    "ij->ji",
    "ii->i",
    ",i->i",
]


@pytest.mark.parametrize("eq", EQUATIONS)
@pytest.mark.parametrize("optimize", ["greedy", "optimal", True, False, ("greedy", 0),
                                      ("optimal", 0), ("greedy", 50), ("optimal", 50)])
def test_same_path_and_report_as_numpy(eq, optimize):
    ops = operands(eq)
    if optimize in ("optimal", ("optimal", 50)) and len(ops) > 6:
        pytest.skip("numpy's optimal search is factorial")
    want = np.einsum_path(eq, *ops, optimize=optimize)
    got = einopt.einsum_path(eq, *ops, optimize=optimize)
    assert got[0] == want[0]
    assert all(isinstance(entry, tuple) for entry in got[0][1:])
    assert got[1] == want[1]


def test_memory_limit_of_largest_operand():
    # numpy's default limit is the largest operand or output: here only (0, 1) fits
    ops = operands("a,ac,ab,ad,cd,bd,bc->", dict.fromkeys("abcd", 20))
    for optimize in ("greedy", "optimal"):
        path, _ = einopt.einsum_path("a,ac,ab,ad,cd,bd,bc->", *ops, optimize=optimize)
        assert path == ["einsum_path", (0, 1), (0, 1, 2, 3, 4, 5)]


def test_random_equations_match_numpy():
    rng = random.Random(7)
    for _ in range(150):
        terms = ["".join(rng.choice("abcdef") for _ in range(rng.randint(0, 3)))
                 for _ in range(rng.randint(1, 5))]
        used = sorted(set("".join(terms)))
        eq = ",".join(terms) + "->" + "".join(c for c in used if rng.random() < 0.4)
        ops = [np.ones([SIZES[c] for c in t]) for t in terms]
        for optimize in ("greedy", "optimal", ("greedy", rng.choice([0, 8, 60]))):
            want = np.einsum_path(eq, *ops, optimize=optimize)
            got = einopt.einsum_path(eq, *ops, optimize=optimize)
            assert got == want, (eq, optimize)
            # the path it reports is one einsum runs
            assert np.allclose(einopt.einsum(eq, *ops, optimize=got[0]),
                               np.einsum(eq, *ops, optimize=False))


def test_explicit_path_is_returned():
    eq = "dcc,fce,ea,dbf->ab"
    ops = operands(eq)
    for path in (["einsum_path", (0, 2), (0, 2), (0, 1)], ["einsum_path", (1,), (0, 1, 2, 3)]):
        assert einopt.einsum_path(eq, *ops, optimize=path) == \
            np.einsum_path(eq, *ops, optimize=path)


@pytest.mark.parametrize("eq, path", [("ab,bc,cd,de->ae", ["einsum_path", (2, 3), (0, 1)]),
                                      ("a,a,a->a", ["einsum_path", (1,), (0, 1)])])
def test_incomplete_path_raises_runtime_error(eq, path):
    ops = operands(eq)
    with pytest.raises(RuntimeError):
        np.einsum_path(eq, *ops, optimize=path)
    with pytest.raises(IncompletePathError) as info:
        einopt.einsum_path(eq, *ops, optimize=path)
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, einopt.PathError)
    assert "leaves 2 operands" in str(info.value)


def test_bad_path_entries():
    ops = operands("ab,bc->ac")
    for path in (["einsum_path", (0, 5)], ["einsum_path", (0, 0), (0,)]):
        with pytest.raises(einopt.PathError):
            einopt.einsum_path("ab,bc->ac", *ops, optimize=path)
    with pytest.raises(einopt.PathError):
        einopt.einsum_path("ab,bc->ac", *ops, optimize=3.5)
    with pytest.raises(einopt.PathError):
        einopt.einsum_path("ab,bc->ac", *ops, einsum_call=True)


def test_sublist_form_uses_numpy_letters():
    # numpy numbers sublist labels A..Z then a..z
    for n in (26, 27):
        x = np.ones((1,) * n)
        got = einopt.einsum_path(x, range(n))
        assert got == np.einsum_path(x, range(n))
        out = got[1].split("->")[-1].strip()
        assert out == "ABCDEFGHIJKLMNOPQRSTUVWXYZa"[:n]
    a, b = np.ones((2, 3)), np.ones((3, 4))
    assert einopt.einsum_path(a, [0, 1], b, [1, 2], [0, 2]) == \
        np.einsum_path(a, [0, 1], b, [1, 2], [0, 2])


def test_ellipsis_and_broadcasting_paths():
    a, b, c = np.ones((1, 5, 3)), np.ones((4, 3, 2)), np.ones((2, 6))
    for optimize in ("greedy", "optimal"):
        want = np.einsum_path("...ij,...jk,kl->...il", a, b, c, optimize=optimize)
        got = einopt.einsum_path("...ij,...jk,kl->...il", a, b, c, optimize=optimize)
        assert got[0] == want[0]  # numpy's ellipsis letters are arbitrary: paths only
        assert "->" in got[1]


def test_einopt_strategies_give_the_plan_path():
    eq = "ab,bc,cd,de->ae"
    ops = operands(eq)
    p = einopt.plan(eq, *ops, optimize="auto")
    path, report = einopt.einsum_path(eq, *ops, optimize="auto")
    assert path == ["einsum_path", *p.path]
    assert "Complete contraction:  ab,bc,cd,de->ae" in report
    assert einopt.einsum_path(eq, *ops, optimize=p)[0] == path
    assert einopt.einsum_path(eq, *ops, optimize=p.path)[0] == path


def test_lists_and_scalars_are_read_as_arrays():
    assert einopt.einsum_path("i,i", [1, 2], [3, 4]) == np.einsum_path("i,i", [1, 2], [3, 4])
    assert einopt.einsum_path(",", 2, 3)[0] == ["einsum_path", (0, 1)]


@pytest.mark.parametrize("args, error", [
    ((), ValueError),
    (("",), ValueError),
    ((0, 0), TypeError),
    ((None,) * 63, TypeError),
    (("", 0, 0), ValueError),
    (("i", 0), ValueError),
    (("i..", [0, 0]), ValueError),
    (("i->ij", [0, 0]), ValueError),
    (("ii", np.arange(6).reshape(2, 3)), ValueError),
])
def test_errors_as_numpy(args, error):
    with pytest.raises(error):
        np.einsum_path(*args)
    with pytest.raises(error) as info:
        einopt.einsum_path(*args)
    assert isinstance(info.value, einopt.EinsumError)


def test_sublist_type_error_names_operand():
    with pytest.raises(SubscriptTypeError, match="operand 0"):
        einopt.einsum_path(np.ones(2), 0)


def test_size_error_names_index():
    with pytest.raises(ValueError, match="'b'"):
        einopt.einsum_path("aabcb,abc", np.ones((3, 3, 4, 5, 6)), np.ones((3, 4, 5)))


def test_searches_on_masks():
    # isets abd, ac, bdc with output {} (numpy's own docstring example)
    a, b, c, d = 1, 2, 4, 8
    sizes = {a: 1, b: 2, c: 3, d: 4}

    def size(mask):
        out = 1
        for bit, s in sizes.items():
            if mask & bit:
                out *= s
        return out

    sets = [a | b | d, a | c, b | d | c]
    assert numpy_greedy(sets, 0, size, 5000) == [(0, 2), (0, 1)]
    assert numpy_optimal(sets, 0, size, 5000) == [(0, 2), (0, 1)]
    assert numpy_greedy(sets, 0, size, 0) == [(0, 1, 2)]
    assert numpy_optimal(sets, 0, size, 0) == [(0, 1, 2)]
