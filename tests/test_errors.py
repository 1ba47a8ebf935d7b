"""Bad input raises einopt.EinsumError (a ValueError) with a helpful message."""

from __future__ import annotations

import re

import numpy as np
import pytest

import einopt


def ones(*shape):
    return np.ones(shape)


def raises_einsum_error(fn, *args, type_error: bool = False, **kwargs) -> str:
    """Call fn, require an EinsumError (also a ValueError); return the message."""
    with pytest.raises(Exception) as info:
        fn(*args, **kwargs)
    err = info.value
    assert isinstance(err, einopt.EinsumError), f"{type(err).__name__}: {err}"
    assert isinstance(err, ValueError)
    if type_error:
        assert isinstance(err, TypeError), f"{type(err).__name__} is not a TypeError"
    msg = str(err)
    assert msg.strip(), "empty error message"
    return msg


def mentions_operand(msg: str, pos: int) -> bool:
    return re.search(rf"operands?\b[^0-9]*\b{pos}\b", msg, re.IGNORECASE) is not None


def test_error_hierarchy():
    assert issubclass(einopt.EinsumError, ValueError)
    with pytest.raises(ValueError):
        einopt.einsum("ij,jk->ik", ones(2, 3), ones(4, 5))


# ---- sizes ----


def test_size_mismatch_between_operands():
    msg = raises_einsum_error(einopt.einsum, "ij,jk->ik", ones(2, 3), ones(4, 5))
    assert "j" in msg and "3" in msg and "4" in msg
    assert mentions_operand(msg, 1) or mentions_operand(msg, 0)


def test_size_mismatch_names_later_operand():
    msg = raises_einsum_error(einopt.einsum, "ab,bc,cd->ad", ones(2, 3), ones(3, 7), ones(5, 2))
    assert "c" in msg and "7" in msg and "5" in msg
    assert mentions_operand(msg, 2)


def test_size_mismatch_sublist():
    msg = raises_einsum_error(einopt.einsum, ones(2, 3), [0, 1], ones(4, 5), [1, 2])
    assert "3" in msg and "4" in msg


def test_size_mismatch_names_form():
    msg = raises_einsum_error(einopt.einsum, "batch in, batch out -> batch", ones(2, 3), ones(6, 4))
    assert "batch" in msg and "2" in msg and "6" in msg


def test_size_mismatch_in_ellipsis_dims():
    msg = raises_einsum_error(einopt.einsum, "...i,...i->...", ones(2, 3), ones(4, 3))
    assert "2" in msg and "4" in msg


def test_size_mismatch_zero_vs_other():
    msg = raises_einsum_error(einopt.einsum, "i,i->i", ones(0), ones(3))
    assert "i" in msg and "0" in msg and "3" in msg


def test_non_square_diagonal():
    msg = raises_einsum_error(einopt.einsum, "ii", ones(2, 3))
    assert "i" in msg and "2" in msg and "3" in msg
    msg = raises_einsum_error(einopt.einsum, "ii->i", ones(1, 3))
    assert "i" in msg and "1" in msg and "3" in msg


def test_non_square_diagonal_second_operand():
    msg = raises_einsum_error(einopt.einsum, "i,jj->ij", ones(3), ones(4, 5))
    assert "j" in msg and "4" in msg and "5" in msg
    assert mentions_operand(msg, 1)


# ---- ranks ----


def test_more_subscripts_than_dims():
    msg = raises_einsum_error(einopt.einsum, "ijk", ones(2, 3))
    assert mentions_operand(msg, 0)
    assert "3" in msg and "2" in msg


def test_fewer_subscripts_than_dims():
    msg = raises_einsum_error(einopt.einsum, "i,ij->j", ones(3), ones(3, 4, 5))
    assert mentions_operand(msg, 1)
    assert "3" in msg and "2" in msg


def test_rank_mismatch_with_ellipsis():
    # '...' may stand for zero or more dims, but not a negative number of them
    msg = raises_einsum_error(einopt.einsum, "...ijk", ones(2, 3))
    assert mentions_operand(msg, 0)


def test_rank_mismatch_sublist():
    raises_einsum_error(einopt.einsum, ones(2, 3), [0, 1, 2])


def test_rank_mismatch_0d():
    msg = raises_einsum_error(einopt.einsum, "i,->i", ones(3), ones(3))
    assert mentions_operand(msg, 1)


# ---- subscripts text ----


def test_output_index_not_in_inputs():
    msg = raises_einsum_error(einopt.einsum, "ij->k", ones(2, 3))
    assert "k" in msg


def test_output_index_not_in_inputs_names():
    msg = raises_einsum_error(einopt.einsum, "a b -> c", ones(2, 3))
    assert "c" in msg


def test_repeated_output_index():
    msg = raises_einsum_error(einopt.einsum, "ij->jj", ones(2, 3))
    assert "j" in msg


def test_repeated_output_index_sublist():
    msg = raises_einsum_error(einopt.einsum, ones(2, 3), [0, 1], [1, 1])
    assert "1" in msg


@pytest.mark.parametrize(
    "eq, bad", [("i@,@j->ij", "@"), ("i#->i", "#"), ("ij,j$->i", "$"), ("i-j", "-")]
)
def test_invalid_character(eq, bad):
    nops = eq.split("->")[0].count(",") + 1
    ops = [ones(2, 2)] * nops
    if eq == "i#->i":
        ops = [ones(2, 2)]
    msg = raises_einsum_error(einopt.einsum, eq, *ops)
    assert bad in msg


def test_arrow_twice():
    msg = raises_einsum_error(einopt.einsum, "i->i->i", ones(3))
    assert "->" in msg


def test_arrow_twice_names():
    raises_einsum_error(einopt.einsum, "a b -> b -> a", ones(2, 3))


@pytest.mark.parametrize(
    "eq, shape",
    [
        ("i.j", (2, 3)),
        ("..i->i", (3,)),
        (".i", (3,)),
        ("i...i...", (3, 3)),
        ("i....", (3, 2)),
        ("i->.", (3,)),
        ("...i->..i", (2, 3)),
    ],
)
def test_bad_dot_usage(eq, shape):
    msg = raises_einsum_error(einopt.einsum, eq, ones(*shape))
    assert "." in msg


def test_two_ellipses_in_output():
    raises_einsum_error(einopt.einsum, "...i->......", ones(2, 3))


def test_output_ellipsis_missing():
    msg = raises_einsum_error(einopt.einsum, "...i->i", ones(2, 3))
    assert "..." in msg or "ellipsis" in msg.lower()
    raises_einsum_error(einopt.einsum, "...ij,...jk->ik", ones(2, 3, 4), ones(2, 4, 5))


def test_output_ellipsis_missing_is_fine_when_ellipsis_is_empty():
    # numpy accepts this: the ellipsis stands for no dimension at all
    got = einopt.einsum("...i->i", np.arange(3.0))
    np.testing.assert_array_equal(got, np.arange(3.0))


# ---- operand count ----


def test_too_few_operands():
    msg = raises_einsum_error(einopt.einsum, "ij,jk->ik", ones(2, 3))
    assert "2" in msg and "1" in msg


def test_too_many_operands():
    msg = raises_einsum_error(einopt.einsum, "ij->i", ones(2, 3), ones(2, 3))
    assert "1" in msg and "2" in msg


def test_no_operands():
    raises_einsum_error(einopt.einsum, "ij->i")


def test_sublist_odd_arguments():
    # a trailing operand without its sublist
    raises_einsum_error(einopt.einsum, ones(2, 3), [0, 1], ones(3, 4))


# ---- operand types ----


@pytest.mark.parametrize(
    "eq, operands, pos",
    [
        (",->", ("abc", 2.0), 0),
        ("i,i->", (np.ones(3), "abc"), 1),
        ("->", ({"a": 1},), 0),
        ("i,i->", (np.ones(2), {"a": 1}), 1),
        ("->", (None,), 0),
        ("i,i", ([1.0, 2.0], None), 1),
        ("i->", (object(),), 0),
    ],
    ids=["str0", "str1", "dict0", "dict1", "none0", "none1", "object"],
)
def test_non_array_operand(eq, operands, pos):
    msg = raises_einsum_error(einopt.einsum, eq, *operands, type_error=True)
    assert mentions_operand(msg, pos)


def test_subscripts_not_a_string():
    # a non-string first argument selects the sublist form; this one is malformed
    raises_einsum_error(einopt.einsum, 3, ones(2))


def test_unhashable_sublist_label():
    raises_einsum_error(einopt.einsum, ones(2, 3), [[0], 1])


# ---- dtype= and out= ----


@pytest.mark.parametrize(
    "src, dtype",
    [
        (np.float64, np.float32),
        (np.float64, np.int32),
        (np.complex128, np.float64),
        (np.int64, np.int8),
    ],
    ids=lambda d: np.dtype(d).name,
)
def test_dtype_unsafe_cast(src, dtype):
    a = np.ones((2, 3), dtype=src)
    b = np.ones((3, 4), dtype=src)
    msg = raises_einsum_error(einopt.einsum, "ij,jk->ik", a, b, dtype=dtype, type_error=True)
    assert np.dtype(dtype).name in msg or np.dtype(src).name in msg


def test_out_wrong_shape():
    out = np.empty((3, 2))
    msg = raises_einsum_error(einopt.einsum, "ij,jk->ik", ones(2, 3), ones(3, 4), out=out)
    assert "2" in msg and "4" in msg and "3" in msg


def test_out_wrong_rank():
    raises_einsum_error(einopt.einsum, "ij,jk->ik", ones(2, 3), ones(3, 4), out=np.empty(8))
    raises_einsum_error(einopt.einsum, "i,i->", ones(3), ones(3), out=np.empty(1))


def test_out_unsafe_dtype():
    out = np.empty((2, 4), dtype=np.float32)
    raises_einsum_error(einopt.einsum, "ij,jk->ik", ones(2, 3), ones(3, 4), out=out)


def test_out_not_an_array():
    raises_einsum_error(einopt.einsum, "ij,jk->ik", ones(2, 3), ones(3, 4), out=[[0.0] * 4] * 2)


# ---- optimize= ----

THREE = (ones(2, 3), ones(3, 4), ones(4, 5))


@pytest.mark.parametrize(
    "path",
    [
        [(0, 5), (0, 1)],  # position out of range
        [(0, 0), (0, 1)],  # same operand twice
        [(0, 1)],  # leaves two operands
        [(0, 1), (0, 1), (0, 1)],  # one step too many
        [(-1, 0), (0, 1)],  # negative position
        [("a", 1), (0, 1)],  # not an integer
        [(0, 1), (0, 2)],  # second step out of range
    ],
    ids=str,
)
def test_invalid_explicit_path(path):
    msg = raises_einsum_error(einopt.einsum, "ab,bc,cd->ad", *THREE, optimize=path)
    assert msg


def test_invalid_optimize_name():
    raises_einsum_error(einopt.einsum, "ab,bc,cd->ad", *THREE, optimize="not-a-method")


def test_invalid_path_in_plan():
    raises_einsum_error(
        einopt.plan, "ab,bc,cd->ad", (2, 3), (3, 4), (4, 5), optimize=[(0, 7), (0, 1)]
    )


def test_plan_reused_with_wrong_shapes():
    p = einopt.plan("ab,bc->ac", (2, 3), (3, 4))
    raises_einsum_error(p, ones(2, 3), ones(5, 4))


def test_plan_reused_with_wrong_count():
    p = einopt.plan("ab,bc->ac", (2, 3), (3, 4))
    raises_einsum_error(p, ones(2, 3))


# ---- the same checks reach plan() and the opt_einsum-style functions ----


def test_plan_reports_size_mismatch():
    msg = raises_einsum_error(einopt.plan, "ij,jk->ik", (2, 3), (4, 5))
    assert "j" in msg and "3" in msg and "4" in msg


def test_plan_rejects_bad_shape_entry():
    raises_einsum_error(einopt.plan, "ij,jk->ik", (2, 3), "abc", type_error=True)


def test_contract_path_reports_size_mismatch():
    msg = raises_einsum_error(einopt.contract_path, "ij,jk->ik", ones(2, 3), ones(4, 5))
    assert "j" in msg and "3" in msg and "4" in msg


def test_contract_reports_bad_subscripts():
    raises_einsum_error(einopt.contract, "ij->k", ones(2, 3))


def test_contract_expression_wrong_shape_at_call():
    expr = einopt.contract_expression("ij,jk->ik", (2, 3), (3, 4))
    raises_einsum_error(expr, ones(2, 3), ones(5, 4))
