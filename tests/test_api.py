"""Public API of einopt checked against numpy.einsum on a hand-picked corpus."""

from __future__ import annotations

import numpy as np
import pytest

import einopt
from einopt.errors import SubscriptTypeError

from api_helpers import (
    MULTI,
    MULTI_IDS,
    OPTIMIZERS,
    OTHER_DTYPES,
    _seed,
    assert_valid_path,
    to_sublist,
)
from cases import (
    CASE_IDS,
    CASES,
    assert_matches,
    check_against_numpy,
    magnitude,
    make_operands,
    numpy_einsum_terms,
    split_text,
)

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


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_warm_sublist_calls_take_the_front_table_and_keep_their_meaning(backend, rng,
                                                                      monkeypatch):
    """A repeated sublist call skips parsing and planning (the front table, as for a
    subscripts string), and calls that differ in output, aliasing or label kind do not
    share an entry."""
    from einopt.api import calls

    a, b = make_operands([(3, 4), (4, 5)], np.float64, rng)
    if backend == "torch":
        torch = pytest.importorskip("torch")
        a, b = torch.from_numpy(a), torch.from_numpy(b)
    einopt.clear_caches()
    slow = []
    checked = calls._einsum
    monkeypatch.setattr(calls, "_einsum", lambda *args, **kw: slow.append(1) or
                        checked(*args, **kw))

    def run(*args):
        got = einopt.einsum(*args)
        return np.asarray(got)

    def n(x):
        return np.asarray(x)

    for _ in range(2):
        assert_matches(run(a, [0, 1], b, [1, 2], [0, 2]), n(a) @ n(b))
    assert len(slow) == 1  # the second call took the front table
    assert_matches(run(a, [0, 1], b, [1, 2], [2, 0]), (n(a) @ n(b)).T)
    assert_matches(run(a, ["i", "j"], b, ("j", "k")), n(a) @ n(b))
    assert_matches(run(a, [1, 0]), n(a).T)  # implicit output: sorted labels
    assert_matches(run(a, [1, 0], [1, 0]), n(a))
    assert_matches(run(a, [0, 1], a, [0, 1], []), (n(a) * n(a)).sum())
    c = a.clone() if backend == "torch" else a.copy()
    c[0, 0] = 0.5
    assert_matches(run(a, [0, 1], c, [0, 1], []), (n(a) * n(c)).sum())
    before = len(slow)
    assert_matches(run(a, [1, 0]), n(a).T)
    assert len(slow) == before
    with pytest.raises(SubscriptTypeError):  # a string is no label list
        einopt.einsum(a, "ij", b, "jk", "ik")


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
