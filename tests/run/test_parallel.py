"""Sliced plans on every executor give the serial result."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import einopt
from einopt.errors import EinsumError

from cases import make_operands

EQ = "ab,bc,cd->ad"
SHAPES = [(6, 7), (7, 8), (8, 5)]


@pytest.mark.parametrize("executor", ["serial", "threads", "processes", "pool"])
def test_executors_equal_serial(executor):
    ops = make_operands(SHAPES, np.float64, seed=0)
    p = einopt.plan(EQ, *SHAPES, memory_limit=20)
    assert p.num_slices > 1
    if executor == "pool":
        with ThreadPoolExecutor(3) as pool:
            got = p(*ops, executor=pool)
    else:
        got = p(*ops, executor=executor)
    np.testing.assert_allclose(got, np.einsum(EQ, *ops), rtol=1e-12)
    np.testing.assert_allclose(got, p(*ops, executor="serial"), rtol=1e-13)


def test_sliced_output_indices_and_scalars():
    ops = make_operands([(5, 6), (6, 4)], np.float64, seed=1)
    p = einopt.plan("ij,jk->ik", *[x.shape for x in ops], memory_limit=6)
    assert set(p.sliced) & {"i", "k"}
    np.testing.assert_allclose(p(*ops, executor="threads"), ops[0] @ ops[1])
    s = einopt.einsum("ij,jk->", *ops, memory_limit=2)
    assert np.ndim(s) == 0
    np.testing.assert_allclose(s, (ops[0] @ ops[1]).sum())


def test_bad_executor():
    ops = make_operands(SHAPES, np.float64, seed=0)
    with pytest.raises(EinsumError, match="executor must be"):
        einopt.einsum(EQ, *ops, memory_limit=20, executor="gpu-cluster")
