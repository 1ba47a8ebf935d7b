"""Sums of einsums sharing their products: switch einsums run as one schedule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import einopt
from einopt import delta, switch
from einopt.run.schedule import build_schedule
from einopt.structured.switch import expand, signatures


def _closed_trace(x, ws):
    """sum_k ||x W_1..W_{k-1}||^2 ||W_{k+1}..W_m||^2, from prefixes and suffixes."""
    total = 0.0
    for k in range(len(ws)):
        p = x
        for w in ws[:k]:
            p = p @ w
        s = None
        for w in ws[k + 1:]:
            s = w if s is None else s @ w
        total += (p * p).sum() * (ws[k].shape[1] if s is None else (s * s).sum())
    return total


@pytest.mark.parametrize("batch", [6, 16])
@pytest.mark.parametrize("m", [2, 3, 5, 8, 12])
def test_deep_trace_costs_linear_products(m, batch, monkeypatch):
    """The closed form's own count: a chain of m layers takes 2m - 3 matrix products
    (m - 2 prefixes, m - 1 suffixes), first to last or replayed; also where a term
    alone would multiply its weights first (a batch wider than the layers)."""
    torch = pytest.importorskip("torch")
    from einopt.backends.torch import TorchBackend

    rng = np.random.default_rng(m)
    x = rng.standard_normal((batch, 9))
    ws = [rng.standard_normal((9, 9)) / 3 for _ in range(m)]
    calls = []
    real = torch.matmul
    monkeypatch.setattr(TorchBackend, "matmul",
                        staticmethod(lambda a, b: calls.append(1) or real(a, b)))
    einopt.clear_caches()  # programs compiled from here on use the counting matmul
    tx, tws = torch.from_numpy(x), [torch.from_numpy(w) for w in ws]
    first = einopt.hessian_trace_einsum(tx, tws)
    assert len(calls) == 2 * m - 3
    calls.clear()
    again = einopt.hessian_trace_einsum(tx, tws)
    assert len(calls) == 2 * m - 3
    np.testing.assert_allclose(first.numpy(), _closed_trace(x, ws))
    np.testing.assert_allclose(again.numpy(), first.numpy())
    einopt.clear_caches()


def test_schedule_keeps_the_cheaper_order():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8))
    ws = [rng.standard_normal((8, 8)) for _ in range(6)]
    from einopt.autodiff import trace_arguments

    eq, ops = trace_arguments(x, ws)
    leaves = einopt.api.calls.leaves_of(ops)
    sig = signatures(ops)
    sched = build_schedule(eq, ops, sig, leaves, einopt.plan)
    terms = einopt.structured.switch.expansion(eq, sig)
    from einopt.run.schedule import _Builder

    forward = _Builder(ops, leaves, einopt.plan).add_all(terms)
    backward = _Builder(ops, leaves, einopt.plan).add_all(terms[::-1])
    assert sched.flops == min(forward.flops, backward.flops)
    for s in (sched, forward, backward):
        np.testing.assert_allclose(s.run(leaves, einopt.einsum), _closed_trace(x, ws))
    # the schedule runs again on other arrays of the same shapes
    x2 = rng.standard_normal((4, 8))
    leaves2 = [x2 if v is x else v for v in leaves]
    np.testing.assert_allclose(sched.run(leaves2, einopt.einsum), _closed_trace(x2, ws))


def _dense(h):
    """A switch as the dense tensor over its labels and extra index."""
    def product(factors):
        args = []
        for op, labs in factors:
            args += [np.asarray(op), list(labs)]
        return np.einsum(*_ints([*args, list(h.labels)]))

    slices = [product(h.derivative if i == h.at else h.primal) for i in range(h.size)]
    return np.stack(slices, axis=-1)


@st.composite
def switch_chains(draw):
    """A chain of matrices ``a0 a1 .. a(m-1)`` summed over its ends or not, some of them
    switches (derivative: another matrix, or a delta when square), some arrays repeated,
    with a second chain through the same arrays for squared norms."""
    m = draw(st.integers(2, 5))
    dims = draw(st.lists(st.integers(1, 4), min_size=m + 1, max_size=m + 1))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    mats = [rng.standard_normal((dims[k], dims[k + 1])) for k in range(m)]
    kinds = draw(st.lists(st.sampled_from(["plain", "tangent", "delta"]), min_size=m,
                          max_size=m))
    if all(k == "plain" for k in kinds):
        kinds[0] = "tangent"
    tangents = [rng.standard_normal(a.shape) for a in mats]
    twice = draw(st.booleans())
    labels = [f"l{k}" for k in range(m + 1)]
    args, dense = [], []
    copies = [""] + (["'"] if twice else [])
    for c in copies:
        for k, a in enumerate(mats):
            lab = [labels[k] + c, labels[k + 1] + (c if k < m - 1 else "")]
            if kinds[k] == "plain":
                args += [a, lab]
                dense += [a, lab]
                continue
            if kinds[k] == "delta" and a.shape[0] == a.shape[1]:
                deriv = [(delta(a.shape[0]), ["r", "c"])]
            else:
                deriv = [(tangents[k], ["r", "c"])]
            h = switch(["r", "c"], primal=[(a, ["r", "c"])], derivative=deriv, at=k, size=m)
            args += [h, [*lab, "i"]]
            dense += [_dense(h), [*lab, "i"]]
    keep_ends = draw(st.booleans())
    out = [labels[0], labels[m]] if keep_ends and not twice else [labels[m]]
    return args, dense, out, m


def _ints(args):
    """Sublist arguments with string labels renumbered for numpy.einsum."""
    ids: dict[str, int] = {}
    return [[ids.setdefault(lab, len(ids)) for lab in a] if isinstance(a, list) else a
            for a in args]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(switch_chains())
def test_switch_einsums_equal_their_dense_form(case):
    """Every schedule (prefixes, suffixes, shared copies, deltas) against numpy.einsum
    on the switches made dense."""
    args, dense, out, m = case
    einopt.clear_caches()
    got = einopt.einsum(*args, out)
    want = np.einsum(*_ints([*dense, out]))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    assert len(expand(*einopt.parse.parse_sublist((*args, out)))) == m


def test_schedule_is_differentiable():
    """The trace's gradient with respect to the weights through the schedule (first
    built, then replayed) equals autograd through the closed form."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    x = torch.randn(6, 5, dtype=torch.float64)
    ws = [torch.randn(5, 5, dtype=torch.float64, requires_grad=True) for _ in range(4)]
    want = torch.autograd.grad(_closed_trace(x, ws), ws)
    einopt.clear_caches()
    for _ in range(2):
        got = torch.autograd.grad(einopt.hessian_trace_einsum(x, ws), ws)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b)
