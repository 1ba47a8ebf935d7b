"""einopt.backends.module: every step through a module's einsum (opt_einsum's
``backend="module.name"``), checked on semirings against opt_einsum with the same module."""

from __future__ import annotations

import numpy as np
import pytest
import semirings

import einopt
from einopt.backends import NumpyBackend, get_backend, named_backend
from einopt.backends.module import ModuleBackend
from einopt.errors import BackendError

oe = pytest.importorskip("opt_einsum")

CASES = [
    ("a,b->", [(3,), (4,)]),
    ("ab,bc->ac", [(3, 4), (4, 5)]),
    ("ab,bc,cd->ad", [(3, 4), (4, 5), (5, 2)]),
    ("abc,bcd,de,ea->", [(2, 3, 4), (3, 4, 5), (5, 2), (2, 2)]),
    ("aab,bc->ac", [(3, 3, 4), (4, 5)]),  # a diagonal first
    ("ab,ab->a", [(3, 4), (3, 4)]),  # a batched inner product
    ("ab,cb,bd->acd", [(2, 3), (4, 3), (3, 5)]),  # a hyperedge
    ("abc,cd->dba", [(2, 3, 4), (4, 5)]),  # the output transposed
    ("ab,c->", [(2, 3), (4,)]),  # sums of one operand each, then an outer product
]


@pytest.fixture(params=["logsumexp", "maxproduct"])
def semiring(request):
    return getattr(semirings, f"{request.param}_module")()


@pytest.mark.parametrize("eq, shapes", CASES, ids=[c[0] for c in CASES])
def test_semiring_results_match_opt_einsum(semiring, eq, shapes):
    rng = np.random.default_rng(len(eq))
    ops = [rng.random(s) + 0.5 for s in shapes]
    name = semiring.__name__
    expected = oe.contract(eq, *ops, backend=name)
    for optimize in ("greedy", "optimal", "auto"):
        got = einopt.contract(eq, *ops, backend=name, optimize=optimize)
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_the_same_array_twice(semiring):
    x = np.random.default_rng(0).random((3, 4)) + 0.5
    name = semiring.__name__
    np.testing.assert_allclose(einopt.contract("ab,ab,bc->a", x, x, x.T.copy(), backend=name),
                               oe.contract("ab,ab,bc->a", x, x, x.T.copy(), backend=name))


def test_every_primitive_is_an_einsum_call():
    mod = semirings.counting_module("einopt_test_counting_primitives")
    be = ModuleBackend(mod.__name__)
    x = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(be.transpose(x, (2, 0, 1)), x.transpose(2, 0, 1))
    np.testing.assert_array_equal(be.sum(x, (0, 2)), x.sum(axis=(0, 2)))
    sq = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(be.diagonal(sq, ((0, 1),)), np.diag(sq))
    np.testing.assert_array_equal(be.swap_last(x), x.swapaxes(-1, -2))
    assert mod.calls == 4


def test_a_step_with_too_many_axes_is_a_clear_error():
    class Wide:
        shape = (1,) * 53

    be = ModuleBackend("numpy")
    with pytest.raises(BackendError, match="52"):
        be.transpose(Wide(), tuple(range(53)))
    with pytest.raises(BackendError, match="52 indices"):
        be.matmul(np.ones((2, 2)), np.ones((2, 2)))


def test_named_backends():
    assert named_backend("auto") is None and named_backend(None) is None
    assert isinstance(named_backend("numpy"), NumpyBackend)
    mod = semirings.counting_module("einopt_test_counting_named")
    be = named_backend(mod.__name__)
    assert isinstance(be, ModuleBackend) and be is named_backend(mod.__name__)
    assert be is get_backend(f"module:{mod.__name__}")
    with pytest.raises(BackendError) as info:
        named_backend("no_such_module_for_einopt")
    assert isinstance(info.value, ImportError)
    with pytest.raises(BackendError, match="no einsum"):
        named_backend("math")


def test_library_names_are_case_insensitive():
    torch = pytest.importorskip("torch")
    assert named_backend("Torch") is get_backend("torch")
    got = einopt.contract("ab,bc->ac", np.ones((2, 3)), np.ones((3, 4)), backend="TORCH")
    assert isinstance(got, torch.Tensor)


def test_lists_are_read_as_arrays():
    mod = semirings.counting_module("einopt_test_counting_lists")
    got = einopt.contract("ab,b->a", [[1.0, 2.0], [3.0, 4.0]], [1.0, 1.0], backend=mod.__name__)
    np.testing.assert_allclose(got, [3.0, 7.0])
