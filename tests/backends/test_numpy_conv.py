"""numpy's convolution kernel (strided views + BLAS) against torch's, and its use in
plans."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import einopt
from einopt.backends.numpy import NumpyBackend
from einopt.backends.numpy_conv import conv
from einopt.run.native import conv_steps

KERNEL_CASES = list(itertools.product((1, 2, 3), (1, 2), (0, 1, (2, 0)), (1, 2), (1, 2)))


def _loop_conv(x, w, pads, stride, dilation, groups):
    """Cross-correlation by explicit loops over output positions (the oracle without
    torch): each output position is a dot product of a kernel with a window."""
    nd = x.ndim - 2
    x = np.pad(x, [(0, 0), (0, 0), *pads])
    k = w.shape[2:]
    out_shape = [(x.shape[2 + d] - dilation * (k[d] - 1) - 1) // stride + 1 for d in range(nd)]
    cin, cout = w.shape[1], w.shape[0]
    y = np.zeros((x.shape[0], cout, *out_shape))
    for pos in itertools.product(*map(range, out_shape)):
        window = tuple(slice(p * stride, p * stride + dilation * (kd - 1) + 1, dilation)
                       for p, kd in zip(pos, k, strict=True))
        for g in range(groups):
            xs = x[(slice(None), slice(g * cin, (g + 1) * cin), *window)]
            ws = w[g * cout // groups:(g + 1) * cout // groups]
            y[(slice(None), slice(g * cout // groups, (g + 1) * cout // groups), *pos)] = \
                np.tensordot(xs, ws, axes=(list(range(1, nd + 2)), list(range(1, nd + 2))))
    return y


@pytest.mark.parametrize("nd,stride,pad,dilation,groups", KERNEL_CASES)
def test_kernel_matches_loops(nd, stride, pad, dilation, groups, rng):
    x = rng.standard_normal((2, 4, *(9, 8, 7)[:nd]))
    w = rng.standard_normal((6, 4 // groups, *(3, 2, 3)[:nd]))
    lo, hi = pad if isinstance(pad, tuple) else (pad, pad)
    want = _loop_conv(x, w, [(lo, hi)] * nd, stride, dilation, groups)
    got = conv(x, w, ((lo, hi),) * nd, (stride,) * nd, (dilation,) * nd, groups)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nd,stride,pad,dilation,groups", KERNEL_CASES)
def test_kernel_matches_torch(nd, stride, pad, dilation, groups, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
    x = rng.standard_normal((2, 4, *(9, 8, 7)[:nd]))
    w = rng.standard_normal((6, 4 // groups, *(3, 2, 3)[:nd]))
    lo, hi = pad if isinstance(pad, tuple) else (pad, pad)
    xt = F.pad(torch.from_numpy(x), [lo, hi] * nd)
    want = CONV[nd](xt, torch.from_numpy(w), None, stride, 0, dilation, groups).numpy()
    got = conv(x, w, ((lo, hi),) * nd, (stride,) * nd, (dilation,) * nd, groups)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_plans_use_it_where_it_pays(rng):
    x = rng.standard_normal((2, 64, 10, 10))
    w = rng.standard_normal((8, 64, 3, 3))
    p = einopt.conv_pattern(10, 3, padding=1)
    plan = einopt.plan("nchw,kcab,axh,byw->nkxy", x, w, p, p)
    (step,) = conv_steps(plan).values()
    be = NumpyBackend()
    assert be.takes_conv(step.x_shape, step.w_shape, step.stride, step.groups, False)
    assert not be.takes_conv(step.x_shape, step.w_shape, (2, 1), step.groups, False)
    assert not be.takes_conv((2, 4, 10), (8, 4, 3), (1,), 1, False)
    want = np.einsum("nchw,kcab,axh,byw->nkxy", x, w, np.asarray(p), np.asarray(p))
    np.testing.assert_allclose(plan(x, w, p, p), want, rtol=1e-10, atol=1e-10)
