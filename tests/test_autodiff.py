"""Derivatives of einsums as einsums, against torch autograd on the shared corpus."""

from __future__ import annotations

import numpy as np
import pytest

import einopt
from einopt.autodiff import COTANGENT

from cases import CASES, ascii_equation, make_operands

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")

GRAD_CASES = [c for c in CASES if c.nops >= 1 and all(0 not in s for s in c.shapes)]


def _tensors(case):
    return [torch.from_numpy(np.array(x)) for x in
            make_operands(case.shapes, np.float64, seed=len(case.eq))]


def _autograd(eq, tensors, cot):
    leaves = [t.clone().requires_grad_(True) for t in tensors]
    out = torch.einsum(ascii_equation(eq), *leaves)
    (out * cot).sum().backward()
    return [leaf.grad for leaf in leaves]


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c.label for c in GRAD_CASES])
def test_vjp_equation_equals_autograd(case):
    tensors = _tensors(case)
    out = torch.einsum(ascii_equation(case.eq), *tensors)
    cot = torch.linspace(-1.0, 1.0, out.numel(), dtype=out.dtype).reshape(out.shape)
    want = _autograd(case.eq, tensors, cot)
    for k in range(case.nops):
        got = einopt.vjp(case.eq, tensors, k, cot)
        torch.testing.assert_close(got, want[k], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c.label for c in GRAD_CASES])
def test_jvp_along_every_operand_equals_autograd(case):
    tensors = _tensors(case)
    tangents = {k: torch.cos(torch.arange(t.numel(), dtype=t.dtype)).reshape(t.shape)
                for k, t in enumerate(tensors)}
    _, want = torch.func.jvp(lambda *t: torch.einsum(ascii_equation(case.eq), *t),
                             tuple(tensors), tuple(tangents[k] for k in range(len(tensors))))
    y, got = einopt.jvp(case.eq, tensors, tangents)
    torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-9)
    for k in range(case.nops):  # one operand at a time: the tangent in its place
        single = einopt.jvp_equation(case.eq, k, [t.shape for t in tensors])
        _, want_k = torch.func.jvp(
            lambda t, k=k: torch.einsum(ascii_equation(case.eq),
                                        *[t if j == k else x for j, x in enumerate(tensors)]),
            (tensors[k],), (tangents[k],))
        torch.testing.assert_close(single(tensors, tangents[k]), want_k, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("eq,shapes,wrt", [
    ("ij,jk->ik", [(3, 4), (4, 5)], 0),
    ("ii->i", [(3, 3)], 0),
    ("ij,j->i", [(3, 4), (1,)], 1),
    ("...i,i->...", [(2, 1, 4), (4,)], 0),
    ("ijk->", [(2, 3, 2)], 0),
])
def test_jacobian_equals_torch(eq, shapes, wrt):
    tensors = [torch.randn(s, dtype=torch.float64) for s in shapes]
    want = torch.autograd.functional.jacobian(
        lambda t: torch.einsum(eq, *[t if j == wrt else x for j, x in enumerate(tensors)]),
        tensors[wrt])
    torch.testing.assert_close(einopt.jacobian(eq, tensors, wrt), want)


def test_second_derivative_by_applying_twice():
    """Hessian-vector product of f(x) = x_i M_ij x_j: the VJP of a VJP, both einsums."""
    m = torch.randn(4, 4, dtype=torch.float64)
    x = torch.randn(4, dtype=torch.float64)
    v = torch.randn(4, dtype=torch.float64)
    shapes = [(4,), (4, 4), (4,)]
    hvp = torch.zeros(4, dtype=torch.float64)
    one = torch.tensor(1.0, dtype=torch.float64)
    for w in (0, 2):  # x appears twice: the gradient is the sum of two VJPs
        first = einopt.vjp_equation("i,ij,j->", w, shapes)  # an einsum of (M, x, 1)
        assert first.operands[-1] == COTANGENT
        values = [[x, m, x][r] if isinstance(r, int) else one for r in first.operands]
        for pos, ref in enumerate(first.operands):
            if ref in (0, 2):  # differentiate the first derivative along its x operand
                second = einopt.vjp_equation(first, pos, [tuple(t.shape) for t in values])
                hvp = hvp + second(values, v)
    want = torch.autograd.functional.hvp(lambda x_: x_ @ m @ x_, x, v)[1]
    torch.testing.assert_close(hvp, want)


def test_derivative_text_and_errors():
    d = einopt.vjp_equation("ij,jk->ik", 1)
    assert str(d) == "ij,ik->jk"
    with pytest.raises(einopt.SubscriptError, match="shapes"):
        einopt.vjp_equation("...i->...", 0)
    with pytest.raises(einopt.SubscriptError, match="wrt"):
        einopt.vjp_equation("ij->", 3)
    with pytest.raises(einopt.EinsumError, match="cotangent"):
        d([np.ones((2, 3)), np.ones((3, 4))])


@pytest.mark.parametrize("m", [2, 3, 5, 12])
def test_jvp_cost_is_linear_in_the_number_of_factors(m):
    """A chain of m matrices with a tangent on every one: the dual evaluation runs
    exactly 3(m-1) products (value, and tangent times value both ways round), not m
    einsums of m-1 products each."""
    from einopt.backends.numpy import NumpyBackend

    calls = []
    real = NumpyBackend.matmul
    mats = [np.random.default_rng(k).standard_normal((8, 8)) for k in range(m)]
    eq = ",".join(f"{chr(97 + k)}{chr(98 + k)}" for k in range(m)) + f"->a{chr(97 + m)}"
    tangents = {k: np.eye(8) for k in range(m)}
    try:
        NumpyBackend.matmul = staticmethod(lambda a, b: calls.append(1) or real(a, b))
        y, dy = einopt.jvp(eq, mats, tangents)
    finally:
        NumpyBackend.matmul = staticmethod(real)
    assert len(calls) == 3 * (m - 1)
    want = sum(np.linalg.multi_dot([np.eye(8) if j == k else a for j, a in enumerate(mats)])
               for k in range(m))
    np.testing.assert_allclose(dy, want, rtol=1e-10)
