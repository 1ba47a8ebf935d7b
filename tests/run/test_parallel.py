"""Sliced plans on every executor give the serial result."""

from __future__ import annotations

from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
import pytest

import einopt
from einopt.errors import EinsumError, ExecutorError

from cases import make_operands

EQ = "ab,bc,cd->ad"
SHAPES = [(6, 7), (7, 8), (8, 5)]


@pytest.mark.parametrize("executor", ["serial", "threads", "processes", "pool"])
def test_executors_equal_serial(executor):
    ops = make_operands(SHAPES, np.float64, seed=0)
    p = einopt.plan(EQ, *SHAPES, memory_limit=50)
    assert p.num_slices > 1
    if executor == "pool":
        with ThreadPoolExecutor(3) as pool:
            got = p(*ops, executor=pool)
    else:
        got = p(*ops, executor=executor)
    np.testing.assert_allclose(got, np.einsum(EQ, *ops), rtol=1e-12)
    np.testing.assert_allclose(got, p(*ops, executor="serial"), rtol=1e-13)


def test_sliced_output_indices_and_scalars():
    ops = make_operands([(8, 8)] * 3, np.float64, seed=1)
    p = einopt.plan("ij,jk,kl->il", *[x.shape for x in ops], memory_limit=100)
    assert set(p.sliced) & {"i", "l"}
    np.testing.assert_allclose(p(*ops, executor="threads"), ops[0] @ ops[1] @ ops[2])
    ops = ops[:2]
    s = einopt.einsum("ij,jk->", *ops, memory_limit=3)
    assert np.ndim(s) == 0
    np.testing.assert_allclose(s, (ops[0] @ ops[1]).sum())


def test_bad_executor():
    ops = make_operands(SHAPES, np.float64, seed=0)
    with pytest.raises(EinsumError, match="executor must be"):
        einopt.einsum(EQ, *ops, memory_limit=50, executor="gpu-cluster")


class _FailingExecutor(Executor):
    """An executor each of whose tasks fails with ``error``, as a broken pool's do."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_exception(self.error)
        return future


def test_a_failed_executor_raises_executor_error():
    """A pool that lost a process: an ``ExecutorError`` naming the executor and the
    reason, from the pool's own error, and no partial sum."""
    ops = make_operands(SHAPES, np.float64, seed=0)
    broken = BrokenProcessPool("a process in the pool terminated abruptly")
    executor = _FailingExecutor(broken)
    with pytest.raises(ExecutorError, match="a worker process of the pool died") as info:
        einopt.einsum(EQ, *ops, memory_limit=50, executor=executor)
    assert info.value.__cause__ is broken
    assert repr(executor) in str(info.value)
    assert isinstance(info.value, EinsumError) and isinstance(info.value, RuntimeError)


def test_a_tasks_own_error_is_raised_unchanged():
    """An error of the slices' arithmetic is no executor failure: it is raised as is."""
    ops = make_operands(SHAPES, np.float64, seed=0)
    error = FloatingPointError("overflow in a slice")
    with pytest.raises(FloatingPointError) as info:
        einopt.einsum(EQ, *ops, memory_limit=50, executor=_FailingExecutor(error))
    assert info.value is error
