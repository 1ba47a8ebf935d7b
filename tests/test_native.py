"""Native convolution steps: a convolution's weight gradient runs as the library's own
(per-example gradients as one group per example), in plain and shared plans."""

from __future__ import annotations

import numpy as np
import pytest

import einopt
from einopt.backends import backend_for
from einopt.execute import inner_native
from einopt.native import conv_steps, native_program

torch = pytest.importorskip("torch")

SPATIAL = ["hwd", "xyz", "abe"]  # input positions, output positions, taps per dim


def _weight_case(dims, size, k, stride, padding, dilation, form):
    """The weight gradient of a ``dims``-d convolution: summed over the batch (the
    layer's), per example, or per example in a shuffled order."""
    rng = np.random.default_rng(dims * 100 + size)
    n, c, m = 3, 4, 5
    pats = [einopt.conv_pattern(size, k, stride=stride, padding=padding, dilation=dilation)
            for _ in range(dims)]
    ins, outs, taps = (SPATIAL[0][:dims], SPATIAL[1][:dims], SPATIAL[2][:dims])
    o = pats[0].shape[1]
    x = torch.from_numpy(rng.standard_normal((n, c, *[size] * dims)))
    g = torch.from_numpy(rng.standard_normal((n, m, *[o] * dims)))
    kernel = f"mc{taps}"
    out = {"summed": kernel, "per-example": "n" + kernel,
           "shuffled": "c" + taps[::-1] + "nm"}[form]
    eq = f"nc{ins},nm{outs}," + ",".join(f"{taps[d]}{outs[d]}{ins[d]}" for d in range(dims)) \
        + f"->{out}"
    return eq, [x, g, *pats]


@pytest.mark.parametrize("form", ["summed", "per-example", "shuffled"])
@pytest.mark.parametrize("dims,size,k,stride,padding,dilation", [
    (1, 9, 3, 1, 1, 1), (1, 10, 2, 1, "same", 1), (1, 11, 3, 2, 0, 2),
    (2, 7, 3, 1, 1, 1), (2, 8, 3, 2, 2, 1), (2, 9, 3, 1, (0, 2), 2),
    (3, 5, 3, 1, 1, 1), (3, 6, 2, 2, 0, 1),
])
def test_weight_gradients_run_natively_and_right(dims, size, k, stride, padding, dilation,
                                                 form):
    eq, ops = _weight_case(dims, size, k, stride, padding, dilation, form)
    plan = einopt.plan(eq, *ops)
    steps = conv_steps(plan)
    assert [c.weight for c in steps.values()] == [True]
    assert native_program(plan, backend_for(ops[:2])) is not None
    want = np.einsum(eq, *[np.asarray(o) for o in ops])
    np.testing.assert_allclose(einopt.einsum(eq, *ops).numpy(), want, rtol=1e-10, atol=1e-10)


def test_weight_gradient_of_integers_is_exact():
    eq, ops = _weight_case(2, 6, 3, 1, 1, 1, "per-example")
    x, g = (torch.round(o * 3).to(torch.int64) for o in ops[:2])
    got = einopt.einsum(eq, x, g, *ops[2:])
    assert got.dtype == torch.int64
    want = np.einsum(eq, x.numpy(), g.numpy(), *[np.asarray(p, dtype=np.int64)
                                                  for p in ops[2:]])
    np.testing.assert_array_equal(got.numpy(), want)


def test_weight_gradient_is_differentiable():
    eq, ops = _weight_case(2, 6, 3, 1, 1, 1, "summed")
    x, g = (o.clone().requires_grad_() for o in ops[:2])
    dense = [torch.from_numpy(np.asarray(p)) for p in ops[2:]]
    ours = einopt.einsum(eq, x, g, *ops[2:])
    ref = torch.einsum(eq, x, g, *dense)
    v = torch.randn_like(ref)
    got = torch.autograd.grad((ours * v).sum(), (x, g))
    want = torch.autograd.grad((ref * v).sum(), (x, g))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


def test_numpy_weight_gradients_stay_views_and_products():
    eq, ops = _weight_case(2, 7, 3, 1, 1, 1, "per-example")
    arrays = [o.numpy() for o in ops[:2]] + ops[2:]
    assert native_program(einopt.plan(eq, *arrays), backend_for(arrays[:2])) is None
    want = np.einsum(eq, *[np.asarray(o) for o in arrays])
    np.testing.assert_allclose(einopt.einsum(eq, *arrays), want, rtol=1e-10, atol=1e-10)


def test_shared_per_example_gradient_runs_natively():
    """The per-example gradient norm of a conv layer: the repeated half (the per-example
    gradient) is one native weight-gradient call, read once."""
    torch.manual_seed(0)
    n, c, m, h = 4, 3, 5, 8
    x, g = torch.randn(n, c, h, h, dtype=torch.float64), torch.randn(n, m, h, h,
                                                                     dtype=torch.float64)
    p = einopt.conv_pattern(h, 3, padding=1)
    eq = "nchw,axh,byw,nkxy,nctu,azt,bqu,nkzq->n"
    plan = einopt.plan(eq, x, p, p, g, x, p, p, g)
    assert plan.shared is not None
    assert inner_native(plan, backend_for([x])) is not None
    u = torch.nn.functional.unfold(x, 3, padding=1)
    want = torch.bmm(g.reshape(n, m, -1), u.transpose(1, 2)).square().sum((1, 2))
    torch.testing.assert_close(einopt.einsum(eq, x, p, p, g, x, p, p, g), want)
    torch.testing.assert_close(plan(x, p, p, g, x, p, p, g), want)
