"""einopt.einsum behaves as numpy.einsum where numpy's own suite looks: object arrays,
``order``, ``casting``, numpy's ``optimize`` forms, views, and the errors of bad calls.
numpy (``optimize=False``) is the oracle throughout."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import einopt
from einopt.errors import (
    IncompletePathError,
    OptionError,
    OptionTypeError,
    SubscriptTypeError,
)

# ---- object arrays: numpy's own loop, Python's * and + ----


def objects(*shape, start=1):
    return np.array([Fraction(k, 3) for k in range(start, start + int(np.prod(shape)))],
                    dtype=object).reshape(shape)


@pytest.mark.parametrize("eq, shapes", [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("i,i", [(4,), (4,)]),
    ("i,j", [(2,), (3,)]),
    ("ij->", [(3, 3)]),
    ("ii->i", [(3, 3)]),
    ("ij,jk,kl->il", [(2, 3), (3, 2), (2, 2)]),
    ("...i,...i", [(2, 3), (3,)]),
])
def test_object_arrays_as_numpy(eq, shapes):
    ops = [objects(*s, start=k + 1) for k, s in enumerate(shapes)]
    want = np.einsum(eq, *ops, optimize=False)
    for optimize in ("auto", "greedy", True):
        got = einopt.einsum(eq, *ops, optimize=optimize)
        assert type(got) is type(want)
        if isinstance(want, np.ndarray):
            assert got.dtype == object and got.shape == want.shape
            assert all(isinstance(x, Fraction) for x in got.flat)
        assert np.all(got == want)


def test_object_lists_and_scalars():
    a = np.arange(9, dtype=object).reshape(3, 3)
    assert einopt.einsum(",ij->ij", 2, a).tolist() == np.einsum(",ij->ij", 2, a).tolist()
    assert einopt.einsum("i,i", [Fraction(1, 2)], [Fraction(1, 3)]) == Fraction(1, 6)


def test_object_cast_to_a_number_type_is_planned():
    a = np.arange(9, dtype=object)
    for dtype in ("i1", "u2", "f4", "c16", "?"):
        got = einopt.einsum("i->", a, dtype=dtype, casting="unsafe")
        want = np.einsum("i->", a, dtype=dtype, casting="unsafe", optimize=False)
        assert got == want and got.dtype == want.dtype
    got = einopt.einsum("ij,j->i", a.reshape(3, 3), np.ones(3), dtype="f8", casting="unsafe")
    assert got.dtype == np.float64
    assert np.array_equal(got, np.arange(9.0).reshape(3, 3).sum(1))
    with pytest.raises(TypeError):
        np.einsum("i->", a, dtype="f8", optimize=False)
    with pytest.raises(TypeError) as info:
        einopt.einsum("i->", a, dtype="f8")
    assert isinstance(info.value, einopt.OperandTypeError)


def test_number_arrays_computed_as_objects():
    a = np.arange(5)
    got = einopt.einsum("i,i", a, a, dtype=object)
    want = np.einsum("i,i", a, a, dtype=object, optimize=False)
    assert got == want and type(got) is type(want)


def test_object_out():
    a = objects(2, 3)
    out = np.empty(2, dtype=object)
    assert einopt.einsum("ij->i", a, out=out) is out
    assert out.tolist() == np.einsum("ij->i", a, optimize=False).tolist()


class Boom(Exception):
    pass


class Bomb:
    def __mul__(self, other):
        raise Boom

    def __add__(self, other):
        raise Boom


def test_object_exceptions_propagate():
    a = np.array([Bomb(), Bomb()], dtype=object)
    with pytest.raises(Boom):
        einopt.einsum("i,i", a, a)
    empty = np.ndarray(buffer=b"\0" * np.intp(0).itemsize, shape=1, dtype=object)
    with pytest.raises(TypeError):
        np.einsum("i,j", [1], empty, optimize=False)
    with pytest.raises(TypeError):
        einopt.einsum("i,j", [1], empty)


def test_object_shape_errors_name_the_operand():
    with pytest.raises(einopt.ShapeError, match="operand 1"):
        einopt.einsum("ij,jk->ik", objects(2, 3), objects(4, 2))


# ---- order ----


@pytest.mark.parametrize("order", ["C", "F", "A", "K", "c", "f", "a", "k", None, b"F"])
@pytest.mark.parametrize("layout", ["C", "F", "mixed"])
def test_order_flags_as_numpy(order, layout):
    a = np.ones((2, 3, 5), order="C" if layout == "C" else "F")
    b = np.ones((4, 3), order="F" if layout == "F" else "C")
    want = np.einsum("...ft,mf->...mt", a, b, order=order, optimize=False)
    got = einopt.einsum("...ft,mf->...mt", a, b, order=order)
    assert np.array_equal(got, want)
    if order not in ("K", "k", None):  # numpy's "K" layout is its iterator's
        assert got.flags.c_contiguous == want.flags.c_contiguous
        assert got.flags.f_contiguous == want.flags.f_contiguous


@pytest.mark.parametrize("eq", ["ij,jk->ki", "ij,jk->ik", "ijk,kl->lij", "i,j->ji", "ij->ji",
                                "ij,ij->", "ijk->ik"])
def test_order_on_results(eq):
    rng = np.random.default_rng(1)
    sizes = {"i": 3, "j": 4, "k": 5, "l": 2}
    ops = [rng.random([sizes[c] for c in t]) for t in eq.split("->")[0].split(",")]
    for order in "CFA":
        want = np.einsum(eq, *ops, order=order, optimize=False)
        got = einopt.einsum(eq, *ops, order=order)
        assert np.allclose(got, want)
        if isinstance(want, np.ndarray) and not any(np.shares_memory(got, x) for x in ops):
            assert got.flags.c_contiguous == want.flags.c_contiguous
            assert got.flags.f_contiguous == want.flags.f_contiguous


def test_order_keeps_views_as_numpy():
    a = np.arange(6.0).reshape(2, 3)
    for order in "CFAK":
        want = np.einsum("ij->ji", a, order=order, optimize=False)
        got = einopt.einsum("ij->ji", a, order=order)
        assert got.base is a.base and want.base is a.base
        assert got.flags.f_contiguous == want.flags.f_contiguous


def test_order_with_out_writes_out():
    a = np.ones((3, 4))
    out = np.zeros((4, 3), order="C")
    assert einopt.einsum("ij->ji", a, out=out, order="F") is out
    assert np.array_equal(out, np.ones((4, 3)))


def test_order_k_copies_nothing():
    a = np.ones((3, 4))
    default = einopt.einsum("ij,jk->ik", a, a.T)
    assert default.flags.c_contiguous
    assert einopt.einsum("ij,jk->ik", a, a.T, order="K").flags.c_contiguous


# ---- casting ----


@pytest.mark.parametrize("casting", ["no", "equiv", "safe", "same_kind", "unsafe"])
def test_casting_of_operands_as_numpy(casting):
    x, y = np.ones(3), np.ones(3, dtype=int)
    try:
        want = np.einsum("i,i", x, y, casting=casting, optimize=False)
    except TypeError:
        with pytest.raises(TypeError) as info:
            einopt.einsum("i,i", x, y, casting=casting)
        assert isinstance(info.value, einopt.EinsumError)
    else:
        assert einopt.einsum("i,i", x, y, casting=casting) == want
    assert einopt.einsum("i,i", x, x, casting=casting) == 3.0


@pytest.mark.parametrize("option, value, error", [
    ("order", "W", OptionError), ("order", "d", OptionError), ("order", "", OptionError),
    ("order", 1, OptionTypeError), ("casting", "blah", OptionError),
    ("casting", "same_value", OptionError), ("casting", "SAFE", OptionError),
    ("casting", None, OptionTypeError), ("dtype", "bad_data_type", OptionTypeError),
])
def test_invalid_options_raise_numpys_types(option, value, error):
    a = np.ones((2, 2))
    builtin = TypeError if issubclass(error, TypeError) else ValueError
    with pytest.raises(builtin):
        np.einsum("ij->j", a, optimize=False, **{option: value})
    einopt.einsum("ij->j", a)  # warm: the front cache must not skip the check
    with pytest.raises(error):
        einopt.einsum("ij->j", a, **{option: value})


# ---- numpy's optimize forms ----


def test_numpy_path_lists():
    rng = np.random.default_rng(2)
    ops = [rng.random(s) for s in [(4, 3, 3), (2, 3, 5), (5, 2), (4, 6, 2)]]
    want = np.einsum("dcc,fce,ea,dbf->ab", *ops, optimize=False)
    for path in (["einsum_path", (0, 2), (0, 2), (0, 1)], ["einsum_path", (1, 2), (0, 1), (0, 1)],
                 ["einsum_path", (0,), (0, 1, 2, 3)], ("einsum_path", [0, 1, 2, 3])):
        assert np.allclose(einopt.einsum("dcc,fce,ea,dbf->ab", *ops, optimize=path), want)
    ops = [rng.random(s) for s in [(3, 4, 5), (3, 6, 6)]]
    assert np.allclose(einopt.einsum("cab,cdd->ab", *ops, optimize=["einsum_path", (1,), (0, 1)]),
                       np.einsum("cab,cdd->ab", *ops, optimize=False))


@pytest.mark.parametrize("eq, path", [("ab,bc,cd,de->ae", ["einsum_path", (2, 3), (0, 1)]),
                                      ("a,a,a->a", ["einsum_path", (1,), (0, 1)])])
def test_incomplete_numpy_path_is_a_runtime_error(eq, path):
    ops = [np.ones([2] * len(t)) for t in eq.split("->")[0].split(",")]
    with pytest.raises(RuntimeError):
        np.einsum(eq, *ops, optimize=path)
    with pytest.raises(IncompletePathError):
        einopt.einsum(eq, *ops, optimize=path)


@pytest.mark.parametrize("limit", [0, 10, 40, 10**6, 1e6])
@pytest.mark.parametrize("strategy", ["greedy", "optimal", "auto"])
def test_memory_limit_form(strategy, limit):
    rng = np.random.default_rng(3)
    ops = [rng.random(s) for s in [(4, 5), (5, 6), (6, 3), (3, 2)]]
    want = np.einsum("ab,bc,cd,de->ae", *ops, optimize=False)
    got = einopt.einsum("ab,bc,cd,de->ae", *ops, optimize=(strategy, limit))
    assert np.allclose(got, want)
    got = einopt.einsum("ab,bc,cd,de->ae", *ops, optimize=[strategy, limit])
    assert np.allclose(got, want)


def test_memory_limit_form_in_plan_asks_for_memory_limit():
    with pytest.raises(einopt.PathError, match="memory_limit"):
        einopt.plan("ab,bc->ac", (2, 3), (3, 4), optimize=("greedy", 10))


def test_numpy_path_list_in_plan():
    p = einopt.plan("ab,bc,cd->ad", (2, 3), (3, 4), (4, 5),
                    optimize=["einsum_path", (1, 2), (0, 1)])
    assert p.path == [(1, 2), (0, 1)]


# ---- views ----


@pytest.mark.parametrize("eq, shape", [
    ("...", (2, 3)), ("ij", (2, 3)), ("ji", (2, 3)), ("ii->i", (3, 3)),
    ("...ii->...i", (3, 3, 3)), ("ii...->...i", (3, 3, 3)), ("...ii->i...", (3, 3, 3)),
    ("jii->ij", (3, 3, 3)), ("ii...->i...", (3, 3, 3)), ("i...i->i...", (3, 3, 3)),
    ("i...i->...i", (3, 3, 3)), ("iii->i", (3, 3, 3)), ("ijk->jik", (2, 3, 4)),
])
def test_views_share_numpys_base(eq, shape):
    a = np.arange(int(np.prod(shape))).reshape(shape)
    got = einopt.einsum(eq, a)
    assert got.base is a.base
    assert np.array_equal(got, np.einsum(eq, a, optimize=False))
    assert got.flags.writeable
    a.flags.writeable = False
    assert not einopt.einsum(eq, a).flags.writeable


def test_sublist_views():
    a = np.arange(27).reshape(3, 3, 3)
    got = einopt.einsum(a, [Ellipsis, 0, 0], [0, Ellipsis])
    assert got.base is a.base
    assert np.array_equal(got, np.einsum(a, [Ellipsis, 0, 0], [0, Ellipsis], optimize=False))


# ---- bad calls ----


def test_no_operands():
    with pytest.raises(ValueError):
        np.einsum()
    with pytest.raises(einopt.SubscriptError, match="No input operands"):
        einopt.einsum()
    with pytest.raises(einopt.SubscriptError):
        einopt.einsum(optimize=True)


@pytest.mark.parametrize("args", [(0, 0), (None,) * 63, (np.ones(2), 1),
                                  (np.ones(2), [0], np.ones(2), "a")])
def test_sublist_subscripts_must_be_lists(args):
    with pytest.raises(TypeError):
        np.einsum(*args, optimize=False)
    with pytest.raises(SubscriptTypeError):
        einopt.einsum(*args)


def test_out_must_be_an_array():
    with pytest.raises(TypeError):
        np.einsum("", 0, out="test", optimize=False)
    with pytest.raises(einopt.OperandTypeError):
        einopt.einsum("", 0, out="test")
