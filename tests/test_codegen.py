"""Plans as readable code (numpy and torch) and as formulas."""

from __future__ import annotations

import re

import numpy as np
import pytest

import einopt

from cases import CASES, check_against_numpy, make_operands

_DEF = re.compile(r"^def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)
TORCH_CASES = [c for c in CASES if all(0 not in s for s in c.shapes)]


def _function(src):
    namespace: dict = {"__name__": "einopt_generated"}
    exec(compile(src, "<einopt-generated>", "exec"), namespace)
    return namespace[_DEF.findall(src)[-1]]


@pytest.mark.parametrize("case", TORCH_CASES, ids=[c.label for c in TORCH_CASES])
def test_torch_code_equals_the_plan(case):
    torch = pytest.importorskip("torch")
    ops = make_operands(case.shapes, np.float64, seed=3)
    plan = einopt.plan(case.eq, *ops)
    if plan.shared is not None:
        pytest.skip("a shared plan prints as two parts")
    got = _function(plan.code("torch"))(*[torch.from_numpy(np.array(x)) for x in ops])
    check_against_numpy(case.eq, ops, np.asarray(got))


def test_readable_forms():
    assert "t0 = op0 @ op1" in einopt.plan("ij,jk->ik", (3, 4), (4, 5)).code()
    assert "op0.T @ op1" in einopt.plan("ji,jk->ik", (4, 3), (4, 5)).code()
    assert "(op0 * op1).sum(1)" in einopt.plan("ni,ni->n", (3, 4), (3, 4)).code()
    outer = einopt.plan("i,j->ij", (3,), (4,)).code()
    assert "op0[:, None] * op1[None, :]" in outer


def test_names_and_formula():
    plan = einopt.plan("ni,ni,nj,nj->n", *[(8, 16)] * 4)
    src = plan.code(names=["B", "B", "A", "A"])
    assert "def contraction(B, A):" in src and "(B * B).sum(1)" in src
    b, a = np.random.default_rng(0).standard_normal((2, 8, 16))
    np.testing.assert_allclose(_function(src)(b, a), (b * b).sum(1) * (a * a).sum(1))
    text = plan.explain(names=["B", "B", "A", "A"])
    assert "Σ_i B[n,i]² · Σ_j A[n,j]²" in text and "speedup" in text
    with pytest.raises(einopt.EinsumError, match="names"):
        plan.code(names=["B"])
    with pytest.raises(einopt.EinsumError, match="backend"):
        plan.code("jax")
