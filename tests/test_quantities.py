"""Layer quantities as einsums (numpy and torch operands), against explicit forms."""

from __future__ import annotations

import numpy as np
import pytest

import einopt
from einopt.quantities import LayerEinsum, quantity

CONV = LayerEinsum.of("nci,kca,axi->nkx")


def _conv_setup(rng):
    x = rng.standard_normal((4, 2, 9))
    w = rng.standard_normal((3, 2, 3))
    p = einopt.conv_pattern(9, 3, stride=2, padding=1)
    u = np.einsum("nci,axi->ncax", x, np.asarray(p))  # unfolded input
    g = rng.standard_normal((4, 3, p.output_size))
    return x, w, p, u, g


def test_conv_per_example_gradients_and_norms(rng):
    x, w, p, u, g = _conv_setup(rng)
    per = np.einsum("nkx,ncax->nkca", g, u)
    np.testing.assert_allclose(quantity("grad_batch", CONV, [x, w, p], g), per)
    np.testing.assert_allclose(quantity("grad", CONV, [x, w, p], g), per.sum(0))
    np.testing.assert_allclose(quantity("grad_norm2", CONV, [x, w, p], g),
                               (per ** 2).sum((1, 2, 3)))
    np.testing.assert_allclose(quantity("grad_sq_sum", CONV, [x, w, p], g), (per ** 2).sum(0))


def test_conv_curvature(rng):
    x, w, p, u, _ = _conv_setup(rng)
    c = 5
    s = rng.standard_normal((4, 3, p.output_size, c))
    jac = np.einsum("ncax,nkxC->nCkca", u, s).reshape(4, c, -1)  # S^T J per example
    ggn = np.einsum("nCp,nCq->pq", jac, jac)
    np.testing.assert_allclose(quantity("ggn_diag", CONV, [x, w, p], s=s).reshape(-1),
                               np.diagonal(ggn))
    np.testing.assert_allclose(quantity("ggn_trace", CONV, [x, w, p], s=s), np.trace(ggn))
    per = np.einsum("nCp,nCp->n", jac, jac)
    np.testing.assert_allclose(quantity("ggn_trace_batch", CONV, [x, w, p], s=s), per)
    v = rng.standard_normal(w.shape)
    np.testing.assert_allclose(quantity("hvp", CONV, [x, w, p], s=s, v=v).reshape(-1),
                               ggn @ v.reshape(-1))


def test_conv_kfac(rng):
    x, w, p, u, g = _conv_setup(rng)
    a, gg = quantity("kfac", CONV, [x, w, p], g)
    np.testing.assert_allclose(a, np.einsum("ncax,ndbx->cadb", u, u))
    np.testing.assert_allclose(gg, np.einsum("nkx,nlx->kl", g, g))


def test_ghost_or_materialize_is_chosen_by_cost():
    """Per-example gradient norms of a conv layer: with many output positions per
    example the planner materializes each gradient once (CSE); with few it takes the
    Gram ("ghost norm") form."""
    big = [(32, 64, 32, 32), (64, 64, 3, 3)]
    small = [(32, 256, 8, 8), (256, 256, 3, 3)]
    for (xs, ws), shared in ((big, True), (small, False)):
        x = np.zeros(xs, np.float32)
        g = np.zeros((xs[0], ws[0], xs[2], xs[3]), np.float32)
        p = einopt.conv_pattern(xs[2], 3, padding=1)
        layer = LayerEinsum.of("nchw,kcab,axh,byw->nkxy")
        terms, pos = layer.grad_terms()
        from einopt.quantities import Copy

        keep = {"n", *layer.inputs[1]}
        ops = [x, p, p, g]
        first = [*terms, layer.output]
        args = []
        for o, t in zip(ops + ops, first + [tuple(lab if lab in keep else Copy(lab)
                                                  for lab in t) for t in first], strict=True):
            args += [o, list(t)]
        plan = einopt.plan(*args, ["n"])
        assert (plan.shared is not None) == shared


def test_errors(rng):
    x, w, p, _, g = _conv_setup(rng)
    with pytest.raises(einopt.EinsumError, match="needs the output gradient"):
        quantity("grad", CONV, [x, w, p])
    with pytest.raises(einopt.EinsumError, match="unknown quantity"):
        quantity("nope", CONV, [x, w, p], g)
    with pytest.raises(einopt.EinsumError, match="batch"):
        LayerEinsum.of("ni,oi->o")
