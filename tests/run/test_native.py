"""Native convolution steps: convolutions, transposed ones and weight gradients run as
the library's own (torch's kernels, XLA's convolution on jax, numpy's unfolded buffer
and BLAS); per-example weight gradients as one group per example, in plain and shared
plans."""

from __future__ import annotations

import numpy as np
import pytest
from backend_libs import lib_param

import einopt
from einopt.backends import backend_for
from einopt.run.execute import inner_native
from einopt.run.native import conv_steps, native_program

LIBS = [lib_param("torch"), lib_param("jax")]
SPATIAL = ["hwd", "xyz", "abe"]  # input positions, output positions, taps per dim
GEOMETRIES = [
    (1, 9, 3, 1, 1, 1), (1, 10, 2, 1, "same", 1), (1, 11, 3, 2, 0, 2),
    (2, 7, 3, 1, 1, 1), (2, 8, 3, 2, 2, 1), (2, 9, 3, 1, (0, 2), 2),
    (3, 5, 3, 1, 1, 1), (3, 6, 2, 2, 0, 1),
]

SYMMETRIC = [g for g in GEOMETRIES if g[4] in (0, 1, 2) and g != (3, 6, 2, 2, 0, 1)]


def _case(dims, size, k, stride, padding, dilation, form):
    """A ``dims``-d convolution einsum over patterns: the forward pass, the transposed
    one, or the weight gradient summed over the batch (the layer's), per example, or per
    example in a shuffled order. Returns the equation, numpy operands and patterns."""
    rng = np.random.default_rng(dims * 100 + size)
    n, c, m = 3, 4, 5
    pats = [einopt.conv_pattern(size, k, stride=stride, padding=padding, dilation=dilation)
            for _ in range(dims)]
    ins, outs, taps = (SPATIAL[0][:dims], SPATIAL[1][:dims], SPATIAL[2][:dims])
    o = pats[0].output_size
    x = rng.standard_normal((n, c, *[size] * dims))
    g = rng.standard_normal((n, m, *[o] * dims))
    w = rng.standard_normal((m, c, *[k] * dims))
    windows = ",".join(f"{taps[d]}{outs[d]}{ins[d]}" for d in range(dims))
    if form == "forward":
        return f"nc{ins},mc{taps},{windows}->nm{outs}", [x, w], pats
    if form == "transposed":
        return f"nm{outs},mc{taps},{windows}->nc{ins}", [g, w], pats
    out = {"summed": f"mc{taps}", "per-example": f"nmc{taps}",
           "shuffled": "c" + taps[::-1] + "nm"}[form]
    return f"nc{ins},nm{outs},{windows}->{out}", [x, g], pats


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("form", ["forward", "transposed", "summed", "per-example",
                                  "shuffled"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_convolution_steps_run_natively_and_right(lib, form, geometry):
    eq, arrays, pats = _case(*geometry, form)
    ops = [lib.to_lib(a) for a in arrays]
    plan = einopt.plan(eq, *ops, *pats)
    # A transposed convolution with unequal padding is no library call (it runs as a
    # gathered view), nor is one whose tiny patterns the planner keeps dense.
    if form != "transposed" or geometry in SYMMETRIC:
        steps = conv_steps(plan)
        assert [c.weight for c in steps.values()] == [form != "forward" and
                                                      form != "transposed"]
        assert native_program(plan, backend_for(ops)) is not None
    want = np.einsum(eq, *arrays, *[np.asarray(p) for p in pats])
    got = lib.to_numpy(einopt.einsum(eq, *ops, *pats))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("form", ["forward", "transposed", "per-example"])
def test_integer_convolutions_are_exact(lib, form):
    eq, arrays, pats = _case(2, 6, 3, 1, 1, 1, form)
    ints = [np.round(a * 3).astype(np.int64) for a in arrays]
    got = lib.to_numpy(einopt.einsum(eq, *[lib.to_lib(a) for a in ints], *pats))
    assert got.dtype == np.int64
    want = np.einsum(eq, *ints, *[np.asarray(p, dtype=np.int64) for p in pats])
    np.testing.assert_array_equal(got, want)


def test_weight_gradient_is_differentiable_on_torch():
    torch = pytest.importorskip("torch")
    eq, arrays, pats = _case(2, 6, 3, 1, 1, 1, "summed")
    x, g = (torch.from_numpy(a).requires_grad_() for a in arrays)
    dense = [torch.from_numpy(np.asarray(p)) for p in pats]
    ours = einopt.einsum(eq, x, g, *pats)
    ref = torch.einsum(eq, x, g, *dense)
    v = torch.randn_like(ref)
    got = torch.autograd.grad((ours * v).sum(), (x, g))
    want = torch.autograd.grad((ref * v).sum(), (x, g))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("form", ["forward", "transposed", "summed"])
def test_native_steps_trace_through_jax(form):
    """jit and grad trace through XLA's convolutions (they are differentiable)."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    jax.config.update("jax_enable_x64", True)
    eq, arrays, pats = _case(2, 6, 3, 2, 1, 1, form)
    dense = [jnp.asarray(np.asarray(p)) for p in pats]
    a, b = (jnp.asarray(x) for x in arrays)

    def loss(fn):
        return lambda a, b: jnp.sum(jnp.sin(fn(a, b)))

    ours = jax.jit(jax.grad(loss(lambda a, b: einopt.einsum(eq, a, b, *pats)), (0, 1)))
    ref = jax.grad(loss(lambda a, b: jnp.einsum(eq, a, b, *dense)), (0, 1))
    for u, v in zip(ours(a, b), ref(a, b), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("form", ["summed", "per-example", "shuffled"])
@pytest.mark.parametrize("geometry", [g for g in GEOMETRIES if g[0] >= 2], ids=str)
def test_numpy_weight_gradients_unfold_inner_taps_only(form, geometry):
    """numpy's weight gradient reads the buffer its convolution uses (inner taps
    unfolded, outer taps as row offsets), for the same products as the plan's view."""
    eq, arrays, pats = _case(*geometry, form)
    plan = einopt.plan(eq, *arrays, *pats)
    assert native_program(plan, backend_for(arrays)) is not None
    want = np.einsum(eq, *arrays, *[np.asarray(p) for p in pats], optimize=True)
    np.testing.assert_allclose(einopt.einsum(eq, *arrays, *pats), want, rtol=1e-10,
                               atol=1e-10)


@pytest.mark.parametrize("lib", LIBS)
def test_shared_per_example_gradient_runs_natively(lib):
    """The per-example gradient norm of a conv layer: the repeated half (the per-example
    gradient) is one native weight-gradient call, read once."""
    rng = np.random.default_rng(0)
    n, c, m, h = 4, 3, 5, 8
    xn, gn = rng.standard_normal((n, c, h, h)), rng.standard_normal((n, m, h, h))
    x, g = lib.to_lib(xn), lib.to_lib(gn)
    p = einopt.conv_pattern(h, 3, padding=1)
    eq = "nchw,axh,byw,nkxy,nctu,azt,bqu,nkzq->n"
    plan = einopt.plan(eq, x, p, p, g, x, p, p, g)
    assert plan.shared is not None
    assert inner_native(plan, backend_for([x])) is not None
    per = np.einsum("nchw,axh,byw,nkxy->nkcab", xn, np.asarray(p), np.asarray(p), gn)
    want = (per ** 2).sum((1, 2, 3, 4))
    np.testing.assert_allclose(lib.to_numpy(einopt.einsum(eq, x, p, p, g, x, p, p, g)), want)
    np.testing.assert_allclose(lib.to_numpy(plan(x, p, p, g, x, p, p, g)), want)
