"""Every backend gives numpy.einsum's numbers on the shared corpus, in its own arrays."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from backend_libs import ALL_LIBS, LIBS, available

import einopt
from einopt.backends import backend_for
from einopt.errors import EinsumError

from cases import CASE_IDS, CASES, check_against_numpy, make_operands


@pytest.mark.parametrize("lib", ALL_LIBS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_corpus_matches_numpy(lib, case):
    ops = make_operands(case.shapes, np.float64, seed=len(case.eq))
    got = einopt.einsum(case.eq, *[lib.to_lib(x) for x in ops])
    assert backend_for([got]).name == lib.name, f"result is a {type(got).__name__}"
    check_against_numpy(case.eq, ops, lib.to_numpy(got))


@pytest.mark.parametrize("lib", ALL_LIBS)
@pytest.mark.parametrize("optimize", ["greedy", "optimal", "hyper"])
def test_strategies_and_float32(lib, optimize):
    eq = "ab,bc,cd,de,ea->"
    ops = make_operands([(3, 4), (4, 5), (5, 6), (6, 2), (2, 3)], np.float32, seed=1)
    got = einopt.einsum(eq, *[lib.to_lib(x) for x in ops], optimize=optimize)
    assert str(got.dtype).endswith("float32")
    np.testing.assert_allclose(lib.to_numpy(got), np.einsum(eq, *ops), rtol=1e-4)


@pytest.mark.parametrize("lib", ALL_LIBS)
def test_numpy_constants_mix_with_the_library(lib):
    a, b = make_operands([(3, 4), (4, 5)], np.float64, seed=2)
    got = einopt.einsum("ij,jk->ik", lib.to_lib(a), b)
    assert backend_for([got]).name == lib.name
    np.testing.assert_allclose(lib.to_numpy(got), a @ b)


@pytest.mark.parametrize("lib", ALL_LIBS)
def test_sliced_plan_equals_unsliced(lib):
    eq = "ab,bc,cd->ad"
    ops = make_operands([(6, 7), (7, 8), (8, 5)], np.float64, seed=3)
    arrays = [lib.to_lib(x) for x in ops]
    p = einopt.plan(eq, *arrays, memory_limit=50)
    assert p.sliced
    np.testing.assert_allclose(lib.to_numpy(p(*arrays)), np.einsum(eq, *ops))
    got = einopt.einsum(eq, *arrays, memory_limit=50)
    np.testing.assert_allclose(lib.to_numpy(got), np.einsum(eq, *ops))


def test_two_libraries_in_one_call_is_an_error():
    present = [n for n in ("torch", "jax", "dask") if available(n)]
    if len(present) < 2:
        pytest.skip("needs two of torch, jax, dask")
    a, b = (LIBS[n].to_lib(np.ones((2, 2))) for n in present[:2])
    with pytest.raises(EinsumError, match="operand 1 is a"):
        einopt.einsum("ij,jk->ik", a, b)


def test_dispatch_imports_no_library():
    code = ("import sys, numpy as np, einopt\n"
            "einopt.einsum('ij,jk->ik', np.ones((2, 2)), [[1.0, 2.0], [3.0, 4.0]])\n"
            "print(','.join(m for m in ('torch', 'jax', 'cupy', 'dask') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_unknown_backend_name():
    from einopt.backends import get_backend

    with pytest.raises(EinsumError, match="unknown backend"):
        get_backend("tensorflow")
