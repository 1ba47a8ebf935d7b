"""Public API of einopt checked against numpy.einsum on a hand-picked corpus."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import einopt

from cases import (
    CASE_IDS,
    CASES,
    Case,
    assert_matches,
    check_against_numpy,
    magnitude,
    make_operands,
    numpy_einsum,
    numpy_einsum_terms,
    split_text,
)

OPTIMIZERS = ("auto", "optimal", "greedy")
OTHER_DTYPES = (np.float32, np.complex128, np.int64, np.int8, np.bool_)

MULTI = [c for c in CASES if c.nops >= 2]
MULTI_IDS = [c.label for c in MULTI]


def _seed(case: Case) -> int:
    return sum(ord(ch) for ch in case.label) % 1000


def _is_ellipsis(lab) -> bool:
    return lab == "..." or lab is Ellipsis


def index_sizes(case: Case) -> tuple[dict, tuple[int, ...]]:
    """Size of every label (size-1 broadcasting applied) and the broadcast ellipsis shape."""
    inputs, _ = split_text(case.eq)
    per_label: dict = {}
    ell_shapes = []
    for term, shape in zip(inputs, case.shapes, strict=False):
        if any(_is_ellipsis(lab) for lab in term):
            k = [i for i, lab in enumerate(term) if _is_ellipsis(lab)][0]
            n_after = len(term) - k - 1
            n_ell = len(shape) - (len(term) - 1)
            ell_shapes.append(tuple(shape[k : k + n_ell]))
            dims = list(zip(term[:k], shape[:k], strict=False)) + list(
                zip(term[k + 1 :], shape[len(shape) - n_after :], strict=False)
            )
        else:
            dims = list(zip(term, shape, strict=False))
        for lab, d in dims:
            per_label.setdefault(lab, []).append(d)
    sizes = {lab: np.broadcast_shapes(*[(d,) for d in ds])[0] for lab, ds in per_label.items()}
    ell = np.broadcast_shapes(*ell_shapes) if ell_shapes else ()
    return sizes, tuple(ell)


def has_broadcasting(case: Case) -> bool:
    """Whether some ordinary label has different sizes across operands."""
    inputs, _ = split_text(case.eq)
    seen: dict = {}
    for term, shape in zip(inputs, case.shapes, strict=False):
        if any(_is_ellipsis(lab) for lab in term):
            continue
        for lab, d in zip(term, shape, strict=False):
            if seen.setdefault(lab, d) != d:
                return True
    return False


def assert_valid_path(path, nops: int, *, pairwise: bool) -> None:
    path = list(path)
    remaining = nops
    for step in path:
        step = tuple(step)
        assert len(step) >= 1
        assert len(set(step)) == len(step), f"repeated position in step {step}"
        assert all(isinstance(i, (int, np.integer)) for i in step)
        assert all(0 <= i < remaining for i in step), f"step {step} out of range ({remaining})"
        if pairwise:
            assert len(step) == 2, f"step {step} is not pairwise"
        remaining = remaining - len(step) + 1
    assert remaining == 1, f"path {path} leaves {remaining} operands"
    if pairwise:
        assert len(path) == nops - 1


def to_sublist(eq: str, operands) -> list:
    """The sublist-form arguments for a text equation (labels renamed to ints in order)."""
    inputs, output = split_text(eq)
    labels = sorted({lab for t in inputs for lab in t if not _is_ellipsis(lab)})
    num = {lab: i for i, lab in enumerate(labels)}

    def conv(term):
        return [Ellipsis if _is_ellipsis(lab) else num[lab] for lab in term]

    args: list = []
    for op, term in zip(operands, inputs, strict=False):
        args += [op, conv(term)]
    if output is not None:
        args.append(conv(output))
    return args


# ---- the corpus ----


@pytest.mark.parametrize("optimize", OPTIMIZERS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_corpus_float64(case, optimize):
    ops = make_operands(case.shapes, np.float64, _seed(case))
    before = [op.copy() for op in ops]
    got = einopt.einsum(case.eq, *ops, optimize=optimize)
    check_against_numpy(case.eq, ops, got)
    for op, old in zip(ops, before, strict=False):
        np.testing.assert_array_equal(op, old, err_msg="einsum modified an operand")


@pytest.mark.parametrize("dtype", OTHER_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_corpus_dtypes(case, dtype):
    ops = make_operands(case.shapes, dtype, _seed(case) + 1)
    got = einopt.einsum(case.eq, *ops)
    check_against_numpy(case.eq, ops, got)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_corpus_sublist_form(case):
    if len({lab for t in split_text(case.eq)[0] for lab in t}) > 52:
        pytest.skip("more labels than numpy can name")
    ops = make_operands(case.shapes, np.float64, _seed(case) + 2)
    got = einopt.einsum(*to_sublist(case.eq, ops))
    check_against_numpy(case.eq, ops, got)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_corpus_plan_path_roundtrip(case):
    ops = make_operands(case.shapes, np.float64, _seed(case) + 3)
    p = einopt.plan(case.eq, *ops)
    assert_valid_path(p.path, case.nops, pairwise=case.nops >= 2)
    got = einopt.einsum(case.eq, *ops, optimize=list(p.path))
    check_against_numpy(case.eq, ops, got)
    got_plan = einopt.einsum(case.eq, *ops, optimize=p)
    check_against_numpy(case.eq, ops, got_plan)
    check_against_numpy(case.eq, ops, p(*ops))


@pytest.mark.parametrize("case", MULTI, ids=MULTI_IDS)
def test_corpus_path_accepted_by_opt_einsum(case):
    oe = pytest.importorskip("opt_einsum")
    if not case.eq.isascii():
        pytest.skip("opt_einsum reference only for ASCII equations")
    ops = make_operands(case.shapes, np.float64, _seed(case) + 4)
    try:
        own = oe.contract(case.eq, *ops)
    except Exception:  # opt_einsum does not support this form (e.g. size-1 broadcasting)
        pytest.skip("opt_einsum cannot evaluate this equation")
    path = [tuple(int(i) for i in step) for step in einopt.plan(case.eq, *ops).path]
    via_oe = oe.contract(case.eq, *ops, optimize=path)
    inputs, output = split_text(case.eq)
    scale = magnitude(inputs, output, ops)
    assert_matches(via_oe, own, scale)
    assert_matches(einopt.einsum(case.eq, *ops, optimize=path), own, scale)


# ---- dtypes ----


@pytest.mark.parametrize(
    "dtypes",
    [
        (np.float32, np.float64),
        (np.int32, np.float32),
        (np.int8, np.uint8),
        (np.bool_, np.int64),
        (np.int64, np.complex128),
        (np.float32, np.complex64),
        (np.int16, np.int8),
        (np.bool_, np.float32),
    ],
    ids=lambda ds: "-".join(np.dtype(d).name for d in ds),
)
@pytest.mark.parametrize("eq", ["ij,jk->ik", "ij,ij->", "i,j->ij", "ij,jk,kl->il"])
def test_mixed_dtypes_promote_like_numpy(eq, dtypes, rng):
    inputs, _ = split_text(eq)
    sizes = {"i": 2, "j": 3, "k": 4, "l": 2}
    shapes = [tuple(sizes[lab] for lab in t) for t in inputs]
    ops = [make_operands([s], dtypes[n % 2], rng)[0] for n, s in enumerate(shapes)]
    got = einopt.einsum(eq, *ops)
    check_against_numpy(eq, ops, got)


def test_int8_wraps_around_like_numpy():
    a = np.full((4, 8), 100, dtype=np.int8)
    b = np.full((8, 3), 3, dtype=np.int8)
    expected = np.einsum("ij,jk->ik", a, b, optimize=False)
    for optimize in OPTIMIZERS:
        got = einopt.einsum("ij,jk->ik", a, b, optimize=optimize)
        assert got.dtype == np.int8
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("optimize", OPTIMIZERS)
def test_int64_exact_beyond_float_precision(optimize, rng):
    # products near 2**62 are exact in int64 but not in float64; overflow wraps like numpy
    for low, high in ((10**8, 10**9), (-(2**62), 2**62)):
        a = rng.integers(low, high, size=(3, 4))
        b = rng.integers(low, high, size=(4, 5))
        c = rng.integers(low, high, size=(5, 2))
        got = einopt.einsum("ij,jk,kl->il", a, b, c, optimize=optimize)
        expected = np.einsum("ij,jk,kl->il", a, b, c, optimize=False)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, expected)


def test_float16_and_byte_swapped_operands(rng):
    x = rng.standard_normal((3, 40)).astype(np.float16)
    y = rng.standard_normal((40, 2)).astype(np.float16)
    got = einopt.einsum("ij,jk->ik", x, y)
    assert got.dtype == np.float16
    np.testing.assert_allclose(
        got.astype(np.float64), x.astype(np.float64) @ y.astype(np.float64), rtol=0.05, atol=0.1
    )
    xs = rng.standard_normal((3, 4)).astype(">f8")
    ys = rng.standard_normal((4, 2)).astype(">f8")
    check_against_numpy("ij,jk->ik", [xs, ys], einopt.einsum("ij,jk->ik", xs, ys))


def test_bool_inputs_give_bool():
    a = np.array([[True, False], [False, False]])
    b = np.array([[True, True], [False, True]])
    got = einopt.einsum("ij,jk->ik", a, b)
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, np.einsum("ij,jk->ik", a, b, optimize=False))


@pytest.mark.parametrize(
    "src, dtype",
    [
        (np.int64, np.float64),
        (np.float32, np.float64),
        (np.float64, np.complex128),
        (np.int8, np.int64),
        (np.float32, np.float32),
    ],
    ids=lambda x: np.dtype(x).name,
)
@pytest.mark.parametrize("eq", ["ij,jk->ik", "ij->i", "ij,jk,kl->il"])
def test_dtype_argument(eq, src, dtype, rng):
    inputs, _ = split_text(eq)
    sizes = {"i": 3, "j": 4, "k": 2, "l": 5}
    ops = [make_operands([tuple(sizes[lab] for lab in t)], src, rng)[0] for t in inputs]
    got = einopt.einsum(eq, *ops, dtype=dtype)
    expected = np.einsum(eq, *ops, dtype=dtype, optimize=False)
    assert np.asarray(got).dtype == np.dtype(dtype)
    assert_matches(got, expected, magnitude(inputs, split_text(eq)[1], ops))


def test_dtype_argument_float64_precision():
    # accumulating in float64 must keep digits float32 accumulation would lose
    a = np.full((1, 10_000), 1.0 + 2**-20, dtype=np.float32)
    b = np.ones((10_000, 1), dtype=np.float32)
    got = einopt.einsum("ij,jk->ik", a, b, dtype=np.float64)
    expected = np.einsum("ij,jk->ik", a, b, dtype=np.float64, optimize=False)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-12)


# ---- out= ----


@pytest.mark.parametrize(
    "eq, shapes",
    [
        ("ij,jk->ik", [(3, 4), (4, 5)]),
        ("ij,jk,kl->il", [(3, 4), (4, 5), (5, 2)]),
        ("ij->i", [(3, 4)]),
        ("i,i->", [(4,), (4,)]),
        ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
        ("ij,jk->ki", [(3, 4), (4, 5)]),
    ],
)
@pytest.mark.parametrize("out_dtype", [np.float64, np.complex128])
def test_out_argument(eq, shapes, out_dtype, rng):
    ops = make_operands(shapes, np.float64, rng)
    expected = np.einsum(eq, *ops, optimize=False)
    out = np.full(expected.shape, np.nan, dtype=out_dtype)
    got = einopt.einsum(eq, *ops, out=out)
    assert got is out
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_out_argument_non_contiguous(rng):
    a, b = make_operands([(3, 4), (4, 5)], np.float64, rng)
    buf = np.zeros((5, 3))
    out = buf.T  # Fortran-ordered view
    got = einopt.einsum("ij,jk->ik", a, b, out=out)
    assert got is out
    np.testing.assert_allclose(buf.T, a @ b, rtol=1e-12)


def test_out_and_dtype_together(rng):
    a, b = make_operands([(3, 4), (4, 5)], np.float32, rng)
    out = np.empty((3, 5), dtype=np.float64)
    got = einopt.einsum("ij,jk->ik", a, b, out=out, dtype=np.float64)
    assert got is out
    expected = np.einsum("ij,jk->ik", a, b, dtype=np.float64, optimize=False)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


# ---- operand kinds ----


def test_python_lists_and_scalars():
    got = einopt.einsum("ij,j->i", [[1, 2], [3, 4]], [1, 1])
    expected = np.einsum("ij,j->i", [[1, 2], [3, 4]], [1, 1])
    assert_matches(got, expected)

    got = einopt.einsum(",->", 2, 3.5)
    assert_matches(got, np.einsum(",->", 2, 3.5))

    got = einopt.einsum("i,->i", [1.0, 2.0], 2)
    assert_matches(got, np.einsum("i,->i", [1.0, 2.0], 2))

    got = einopt.einsum("i", [True, False])
    assert_matches(got, np.einsum("i", [True, False]))

    got = einopt.einsum("i,i", (1, 2, 3), (4, 5, 6))
    assert_matches(got, np.einsum("i,i", (1, 2, 3), (4, 5, 6)))

    got = einopt.einsum("", 3.0)
    assert_matches(got, np.einsum("", 3.0))

    got = einopt.einsum(",ij->ij", 1j, [[1.0, 2.0]])
    assert_matches(got, np.einsum(",ij->ij", 1j, [[1.0, 2.0]]))


def test_zero_dim_arrays_and_numpy_scalars():
    a = np.array(2.5)
    b = np.float32(4.0)
    assert_matches(einopt.einsum(",->", a, b), np.einsum(",->", a, b))
    assert_matches(einopt.einsum("->", a), np.einsum("->", a))
    assert_matches(einopt.einsum("...", a), np.einsum("...", a))


@pytest.mark.parametrize("optimize", OPTIMIZERS)
def test_strided_and_fortran_operands(optimize, rng):
    base_a = rng.standard_normal((6, 8))
    base_b = rng.standard_normal((5, 8, 3))
    a = base_a[::2, ::-2]  # (3, 4), negative stride
    b = np.asfortranarray(base_b[:, ::2, :]).transpose(1, 2, 0)  # (4, 3, 5)
    c = rng.standard_normal((5, 3)).T  # (3, 5), transposed view
    eq = "ij,jkl,kl->il"
    got = einopt.einsum(eq, a, b, c, optimize=optimize)
    check_against_numpy(eq, [a, b, c], got)


def test_read_only_operands(rng):
    a, b = make_operands([(3, 4), (4, 5)], np.float64, rng)
    a.flags.writeable = False
    b.flags.writeable = False
    check_against_numpy("ij,jk->ik", [a, b], einopt.einsum("ij,jk->ik", a, b))


def test_broadcast_to_operands(rng):
    a = np.broadcast_to(rng.standard_normal(4), (3, 4))  # zero strides
    b = rng.standard_normal((4, 2))
    check_against_numpy("ij,jk->ik", [a, b], einopt.einsum("ij,jk->ik", a, b))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_medium_sizes(dtype, rng):
    shapes = [(8, 30, 40), (8, 40, 50), (50, 20)]
    ops = make_operands(shapes, dtype, rng)
    eq = "bij,bjk,kl->bil"
    check_against_numpy(eq, ops, einopt.einsum(eq, *ops))


def test_whitespace_in_single_letter_form(rng):
    a, b = make_operands([(2, 3), (3, 4)], np.float64, rng)
    expected = np.einsum("ij,jk->ik", a, b)
    assert_matches(einopt.einsum(" ij , jk -> ik ", a, b), expected)
    assert_matches(einopt.einsum("ij,jk -> ik", a, b), expected)


# ---- sublist form ----


def test_sublist_basic(rng):
    a, b = make_operands([(2, 3), (3, 4)], np.float64, rng)
    expected = np.einsum(a, [0, 1], b, [1, 2], [0, 2])
    assert_matches(einopt.einsum(a, [0, 1], b, [1, 2], [0, 2]), expected)
    assert_matches(einopt.einsum(a, [0, 1], b, [1, 2]), np.einsum(a, [0, 1], b, [1, 2]))
    assert_matches(einopt.einsum(a, [0, 1], [1, 0]), a.T)
    assert_matches(einopt.einsum(a, (0, 1), b, (1, 2), (2, 0)), (a @ b).T)


def test_sublist_ellipsis(rng):
    a, b = make_operands([(5, 2, 3), (3, 4)], np.float64, rng)
    args = (a, [Ellipsis, 0, 1], b, [1, 2])
    assert_matches(einopt.einsum(*args), np.einsum(*args))
    args_out = (*args, [2, Ellipsis, 0])
    assert_matches(einopt.einsum(*args_out), np.einsum(*args_out))


def test_sublist_repeated_and_implicit_order(rng):
    (a,) = make_operands([(3, 3, 4)], np.float64, rng)
    assert_matches(einopt.einsum(a, [7, 7, 2]), np.einsum(a, [7, 7, 2]))
    assert_matches(einopt.einsum(a, [7, 7, 2], [2, 7]), np.einsum(a, [7, 7, 2], [2, 7]))
    (b,) = make_operands([(3, 4)], np.float64, rng)
    # implicit output sorts the integer labels
    assert_matches(einopt.einsum(b, [5, 1]), np.einsum(b, [5, 1]))


@pytest.mark.parametrize(
    "labels",
    [
        ("x", "y", "z"),
        (100, 200, 300),
        (("a", 1), ("b", 2), ("c", 3)),
        (60, "y", (0, 0)),
        (52, 1000, 10**9),
    ],
    ids=["str", "big-int", "tuple", "mixed", "beyond-52"],
)
def test_sublist_any_hashable_labels(labels, rng):
    i, j, k = labels
    a, b = make_operands([(2, 3), (3, 4)], np.float64, rng)
    got = einopt.einsum(a, [i, j], b, [j, k], [i, k])
    assert_matches(got, a @ b, np.abs(a) @ np.abs(b))
    got_t = einopt.einsum(a, [i, j], b, [j, k], [k, i])
    assert_matches(got_t, (a @ b).T, (np.abs(a) @ np.abs(b)).T)


def test_sublist_string_labels_implicit_output(rng):
    a, b = make_operands([(2, 3), (3, 4)], np.float64, rng)
    got = einopt.einsum(a, ["row", "mid"], b, ["mid", "col"])
    expected = numpy_einsum_terms([["row", "mid"], ["mid", "col"]], None, [a, b])
    assert_matches(got, expected)  # implicit output: labels sorted, 'col' < 'row'


def test_sublist_chain_of_150_matrices(rng):
    n = 150
    mats = [np.eye(2) + 0.3 * rng.standard_normal((2, 2)) for _ in range(n)]
    args: list = []
    for k, m in enumerate(mats):
        args += [m, [k, k + 1]]
    expected = mats[0]
    for m in mats[1:]:
        expected = expected @ m
    scale = np.abs(mats[0])
    for m in mats[1:]:
        scale = scale @ np.abs(m)
    got = einopt.einsum(*args, [0, n])
    assert_matches(got, expected, scale)
    got_implicit = einopt.einsum(*args)
    assert_matches(got_implicit, expected, scale)
    got_t = einopt.einsum(*args, [n, 0])
    assert_matches(got_t, expected.T, scale.T)


def test_sublist_many_indices_hyperedge(rng):
    # 120 vectors each sharing a hyperedge 'h' with its own extra label.
    n = 120
    vecs = [rng.standard_normal((3, 2)) for _ in range(n)]
    args: list = []
    for k, v in enumerate(vecs):
        args += [v, ["h", k]]
    got = einopt.einsum(*args, ["h"])
    expected = np.prod([v.sum(axis=1) for v in vecs], axis=0)
    scale = np.prod([np.abs(v).sum(axis=1) for v in vecs], axis=0)
    assert_matches(got, expected, scale)


def test_unicode_chain_with_more_than_52_letters(rng):
    n = 90
    letters = [chr(0x4E00 + k) for k in range(n + 1)]  # CJK ideographs are letters
    assert all(ch.isalpha() for ch in letters)
    eq = ",".join(letters[k] + letters[k + 1] for k in range(n)) + "->" + letters[0] + letters[n]
    mats = [np.eye(3) + 0.2 * rng.standard_normal((3, 3)) for _ in range(n)]
    expected = mats[0]
    scale = np.abs(mats[0])
    for m in mats[1:]:
        expected = expected @ m
        scale = scale @ np.abs(m)
    assert_matches(einopt.einsum(eq, *mats), expected, scale)
    implicit = eq.split("->")[0]
    assert_matches(einopt.einsum(implicit, *mats), expected, scale)


def _grid_network(rows: int, cols: int, rng):
    """A rows x cols lattice of tensors with bond dimension 2, as sublist arguments."""
    bonds = {}

    def bond(a, b):
        key = (min(a, b), max(a, b))
        return bonds.setdefault(key, len(bonds))

    args: list = []
    for r in range(rows):
        for c in range(cols):
            labels = [
                bond((r, c), (rr, cc))
                for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1))
                if 0 <= rr < rows and 0 <= cc < cols
            ]
            args += [rng.uniform(0.5, 1.5, size=(2,) * len(labels)), labels]
    return args, len(bonds)


def test_large_lattice_network(rng):
    oe = pytest.importorskip("opt_einsum")
    args, nbonds = _grid_network(10, 10, rng)
    assert nbonds == 180
    expected = oe.contract(*args, [], optimize="greedy")
    got = einopt.einsum(*args, [])
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    p_args = args[1::2]
    shapes = [a.shape for a in args[0::2]]
    interleaved: list = []
    for sh, lab in zip(shapes, p_args, strict=False):
        interleaved += [np.zeros(sh), lab]
    p = einopt.plan(*interleaved, [])
    assert len(p.path) == 99
    assert p.flops < 1e9


# ---- multi-character names ----


def test_names_form_documented_example(rng):
    a, b = make_operands([(2, 3), (2, 4)], np.float64, rng)
    got = einopt.einsum("batch in, batch out -> batch", a, b)
    assert_matches(got, a.sum(1) * b.sum(1), np.abs(a).sum(1) * np.abs(b).sum(1))


@pytest.mark.parametrize(
    "eq, numpy_eq",
    [
        ("batch i j, batch j k -> batch i k", "bij,bjk->bik"),
        ("batch in, in -> batch", "bi,i->b"),
        ("row col -> col row", "rc->cr"),
        ("x y, y z, z w -> x w", "xy,yz,zw->xw"),
        ("left mid, mid right", "lm,mr->lr"),  # implicit: sorted names 'left' < 'right'
        ("node node -> node", "nn->n"),
        ("head query dim, head key dim -> head query key", "hqd,hkd->hqk"),
        ("i  j ,  j k->i k", "ij,jk->ik"),
        ("a1 a2, a2 a3 -> a3 a1", "ab,bc->ca"),
    ],
)
def test_names_form(eq, numpy_eq, rng):
    inputs, _ = split_text(numpy_eq)
    sizes = {}
    shapes = []
    for t in inputs:
        shapes.append(tuple(sizes.setdefault(lab, 2 + len(sizes)) for lab in t))
    ops = make_operands(shapes, np.float64, rng)
    got = einopt.einsum(eq, *ops)
    expected = np.einsum(numpy_eq, *ops, optimize=False)
    assert_matches(got, expected, magnitude(inputs, split_text(numpy_eq)[1], ops))


def test_names_form_implicit_output_sorted(rng):
    a, b = make_operands([(2, 3), (3, 4)], np.float64, rng)
    # 'zeta' and 'alpha' each appear once: implicit output is ('alpha', 'zeta')
    got = einopt.einsum("zeta mid, mid alpha", a, b)
    assert_matches(got, (a @ b).T, (np.abs(a) @ np.abs(b)).T)


def test_names_form_many_names(rng):
    n = 60
    names = [f"bond{k}" for k in range(n + 1)]
    eq = ", ".join(f"{names[k]} {names[k + 1]}" for k in range(n)) + f" -> {names[0]} {names[n]}"
    mats = [np.eye(2) + 0.3 * rng.standard_normal((2, 2)) for _ in range(n)]
    expected = mats[0]
    scale = np.abs(mats[0])
    for m in mats[1:]:
        expected = expected @ m
        scale = scale @ np.abs(m)
    assert_matches(einopt.einsum(eq, *mats), expected, scale)


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
    assert p.naive_flops == pytest.approx(total * max(1, case.nops - 1), rel=1e-9)
    assert p.flops > 0
    assert p.speedup == pytest.approx(p.naive_flops / p.flops, rel=1e-9)
    assert p.max_size >= 1
    assert tuple(p.sliced) == ()
    assert_valid_path(p.path, case.nops, pairwise=True)
    if case.nops == 2:
        # a single pairwise step touches every index once
        assert p.flops == pytest.approx(total, rel=1e-9)
    # the plan never does worse than the naive count
    assert p.flops <= p.naive_flops * (1 + 1e-9)


@pytest.mark.parametrize("case", FLOP_CASES, ids=[c.label for c in FLOP_CASES])
def test_optimal_is_no_worse_than_greedy(case):
    if case.nops > 7:
        pytest.skip("too many operands for an exhaustive search in a quick test")
    opt = einopt.plan(case.eq, *case.shapes, optimize="optimal")
    greedy = einopt.plan(case.eq, *case.shapes, optimize="greedy")
    assert opt.flops <= greedy.flops * (1 + 1e-9)


def test_plan_flops_hyperedge():
    n, i, j = 100, 200, 300
    p = einopt.plan("ni,ni,nj,nj->n", (n, i), (n, i), (n, j), (n, j))
    expected = n * i + n * j + n
    assert p.flops == pytest.approx(expected, rel=0.01)
    for optimize in ("optimal", "greedy"):
        q = einopt.plan("ni,ni,nj,nj->n", (n, i), (n, i), (n, j), (n, j), optimize=optimize)
        assert q.flops == pytest.approx(expected, rel=0.01)


def test_plan_matrix_chain_flops():
    # (ab)(bc) first costs 10*100*5 + 10*5*50 = 7500; the other order 100*5*50 + 10*100*50 = 75000
    p = einopt.plan("ab,bc,cd->ad", (10, 100), (100, 5), (5, 50), optimize="optimal")
    assert p.flops == pytest.approx(7500)
    assert [tuple(sorted(s)) for s in p.path] == [(0, 1), (0, 1)]
    assert p.naive_flops == pytest.approx(10 * 100 * 5 * 50 * 2)
    assert p.speedup == pytest.approx(p.naive_flops / 7500)
    assert p.max_size >= 10 * 5


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
    assert p.flops == pytest.approx(3 * 4 * 5 + 2 * 3 * 5)


@pytest.mark.parametrize("memory_limit", [10**12, 400, 60])
def test_memory_limit(memory_limit, rng):
    eq = "ab,bc,cd->ad"
    shapes = [(20, 30), (30, 40), (40, 20)]
    ops = make_operands(shapes, np.float64, rng)
    p = einopt.plan(eq, *shapes, memory_limit=memory_limit)
    assert isinstance(p.sliced, tuple)
    if memory_limit >= 10**12:
        assert p.sliced == ()
    check_against_numpy(eq, ops, p(*ops))
    check_against_numpy(eq, ops, einopt.einsum(eq, *ops, memory_limit=memory_limit))


def test_memory_limit_forces_slicing(rng):
    # every route goes through an intermediate of at least 30*30 = 900 elements
    eq = "ab,bc,cd,da->"
    shapes = [(30, 30)] * 4
    p_free = einopt.plan(eq, *shapes)
    p = einopt.plan(eq, *shapes, memory_limit=100)
    assert p_free.sliced == ()
    assert len(p.sliced) >= 1
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
    assert p1.flops == pytest.approx(7500)
    assert p2.flops == pytest.approx(7500)
    assert [tuple(sorted(s)) for s in p1.path] == [(0, 1), (0, 1)]
    assert [tuple(sorted(s)) for s in p2.path] == [(1, 2), (0, 1)]
    # an explicit (worse) path must not leak into later automatic plans, or vice versa
    worse = einopt.plan(eq, *s1, optimize=[(1, 2), (0, 1)])
    assert worse.flops > p1.flops
    assert einopt.plan(eq, *s1).flops == pytest.approx(7500)
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
