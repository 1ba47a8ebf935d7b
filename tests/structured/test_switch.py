"""The product rule's extra index: switch operands, their expansion, and the deep
linear network's Hessian trace written as one einsum."""

from __future__ import annotations

import numpy as np
import pytest

import einopt
from einopt import delta, switch


def test_product_rule_of_a_chain(rng):
    """sum_i prod_k h_k(i) with h_k = A_k' at i == k else A_k is the derivative of
    A_1 A_2 A_3 along (A_1', A_2', A_3')."""
    mats = [rng.standard_normal((4, 4)) for _ in range(3)]
    tans = [rng.standard_normal((4, 4)) for _ in range(3)]
    labels = ["ab", "bc", "cd"]
    args = []
    for k, (a, t, lab) in enumerate(zip(mats, tans, labels, strict=True)):
        h = switch(list(lab), primal=[(a, list(lab))], derivative=[(t, list(lab))], at=k,
                   size=3)
        args += [h, [*lab, "i"]]
    got = einopt.einsum(*args, ["a", "d"])
    want = tans[0] @ mats[1] @ mats[2] + mats[0] @ tans[1] @ mats[2] + \
        mats[0] @ mats[1] @ tans[2]
    np.testing.assert_allclose(got, want)
    _, dual = einopt.jvp("ab,bc,cd->ad", mats, dict(enumerate(tans)))
    np.testing.assert_allclose(dual, want)


def test_hessian_trace_of_a_deep_linear_network():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    x = torch.randn(7, 5, dtype=torch.float64)
    ws = [torch.randn(5, 4, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64),
          torch.randn(6, 3, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)]
    t = torch.randn(7, 2, dtype=torch.float64)

    def loss(*w):
        out = x
        for m in w:
            out = out @ m
        return ((out - t) ** 2).mean()

    hess = torch.autograd.functional.hessian(loss, tuple(ws))
    trace = sum(hess[k][k].reshape(ws[k].numel(), -1).trace() for k in range(len(ws)))
    scale = 2.0 / t.numel()  # the squared loss's Hessian w.r.t. the output
    torch.testing.assert_close(scale * einopt.hessian_trace_einsum(x, ws), trace)


def test_switch_checks():
    a = np.ones((2, 2))
    with pytest.raises(einopt.SubscriptError, match="among"):
        switch(["a", "b"], primal=[(a, ["a", "c"])], derivative=[(a, ["a", "b"])], at=0,
               size=2)
    with pytest.raises(einopt.SubscriptError, match="outside"):
        switch(["a", "b"], primal=[(a, ["a", "b"])], derivative=[(a, ["a", "b"])], at=2,
               size=2)
    h = switch(["a", "b"], primal=[(a, ["a", "b"])], derivative=[(delta(2), ["a", "b"])],
               at=0, size=2)
    with pytest.raises(einopt.SubscriptError, match="summed"):
        einopt.einsum(h, ["a", "b", "i"], ["i"])
    with pytest.raises(einopt.PathError, match="sum of einsums"):
        einopt.plan(h, ["a", "b", "i"], [])


def test_dense_patterns_when_cheaper():
    """On an 8x8 grid the planner keeps patterns dense and contracts the inputs first
    (their Gram over channels), instead of windowing them."""
    x = np.zeros((32, 256, 8, 8), np.float32)
    g = np.zeros((32, 256, 8, 8), np.float32)
    p = einopt.conv_pattern(8, 3, padding=1)
    eq = "nchw,axh,byw,nkxy,nctu,azt,bqu,nkzq->n"
    plan = einopt.plan(eq, x, p, p, g, x, p, p, g)
    assert not plan.structure.substituted
    big = np.zeros((32, 64, 32, 32), np.float32)
    q = einopt.conv_pattern(32, 3, padding=1)
    assert einopt.plan(eq, big, q, q, big, big, q, q, big).structure.substituted


def test_expansion_reuses_products_across_terms(monkeypatch):
    """The three terms of a 3-layer trace share their products: W2 W3, x W1 and
    (x W1) W2 are each formed once (the closed form's own count), on later calls too."""
    torch = pytest.importorskip("torch")
    from einopt.backends.torch import TorchBackend

    torch.manual_seed(0)
    x = torch.randn(16, 32, dtype=torch.float64)
    ws = [torch.randn(32, 32, dtype=torch.float64) / 6 for _ in range(3)]
    calls = []
    real = torch.matmul
    monkeypatch.setattr(TorchBackend, "matmul",
                        staticmethod(lambda a, b: calls.append(1) or real(a, b)))
    einopt.clear_caches()  # programs compiled from here on use the counting matmul
    first = einopt.hessian_trace_einsum(x, ws)
    assert len(calls) == 3
    calls.clear()
    again = einopt.hessian_trace_einsum(x, ws)  # the recorded schedule, replayed
    assert len(calls) == 3
    torch.testing.assert_close(again, first)
    einopt.clear_caches()
