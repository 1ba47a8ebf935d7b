"""jax: jit, grad and vmap trace through a plan; gradients equal jax.numpy.einsum's."""

from __future__ import annotations

import numpy as np
import pytest

import einopt

from cases import CASES, ascii_equation, make_operands

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
jax.config.update("jax_enable_x64", True)

GRAD_CASES = [c for c in CASES if c.nops >= 1 and all(0 not in s for s in c.shapes)]


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c.label for c in GRAD_CASES])
def test_grad_equals_jax_einsums(case):
    eq = ascii_equation(case.eq)
    ops = [jnp.asarray(x) for x in make_operands(case.shapes, np.float64, seed=len(case.eq))]

    def loss(fn):
        def f(*xs):
            out = fn(*xs)
            w = jnp.linspace(-1.0, 1.0, out.size).reshape(out.shape)
            return jnp.sum(out * w)
        return f

    argnums = tuple(range(len(ops)))
    got = jax.grad(loss(lambda *xs: einopt.einsum(case.eq, *xs)), argnums)(*ops)
    want = jax.grad(loss(lambda *xs: jnp.einsum(eq, *xs)), argnums)(*ops)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-9)


JIT_CASES = GRAD_CASES[::5]  # compiling every case is slow and adds little


@pytest.mark.parametrize("case", JIT_CASES, ids=[c.label for c in JIT_CASES])
def test_jit_equals_jax_einsum(case):
    ops = [jnp.asarray(x) for x in make_operands(case.shapes, np.float64, seed=len(case.eq))]
    ours = jax.jit(lambda *xs: einopt.einsum(case.eq, *xs))(*ops)
    np.testing.assert_allclose(ours, jnp.einsum(ascii_equation(case.eq), *ops),
                               rtol=1e-6, atol=1e-9)


MULTI_CASES = [c for c in GRAD_CASES if c.nops >= 3]


@pytest.mark.parametrize("case", MULTI_CASES, ids=[c.label for c in MULTI_CASES])
def test_jit_runs_the_whole_einsum_along_the_plan(case):
    """Traced, a plain plan of 3+ operands runs as one jax.numpy.einsum along einopt's
    path (the ellipses, diagonals and size-1 axes of the corpus included): equal to
    numpy, in value and shape."""
    arrays = make_operands(case.shapes, np.float64, seed=len(case.eq))
    ops = [jnp.asarray(x) for x in arrays]
    f = jax.jit(lambda *xs: einopt.einsum(case.eq, *xs))
    want = np.einsum(ascii_equation(case.eq), *arrays)
    np.testing.assert_allclose(f(*ops), want, rtol=1e-6, atol=1e-9)
    assert f(*ops).shape == want.shape


def test_vmap_and_float64():
    w = jnp.asarray(np.random.default_rng(0).standard_normal((5, 3)))
    x = jnp.asarray(np.random.default_rng(1).standard_normal((7, 5)))
    got = jax.vmap(lambda xi: einopt.einsum("i,ij->j", xi, w))(x)
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(got, x @ w, rtol=1e-12)


def test_plan_is_static_under_jit():
    p = einopt.plan("ij,jk,kl->il", (4, 5), (5, 6), (6, 3))
    f = jax.jit(lambda *xs: p(*xs))
    ops = [jnp.ones(s) for s in p.shapes]
    np.testing.assert_allclose(f(*ops), np.full((4, 3), 30.0))
    assert hash(p) == hash(p)


def test_out_is_rejected():
    with pytest.raises(einopt.EinsumError, match="immutable"):
        einopt.einsum("ij->i", jnp.ones((2, 2)), out=jnp.ones(2))
