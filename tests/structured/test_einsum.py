"""einsum with structured operands equals numpy.einsum on their dense forms, on every
backend, for fixed cases and for random expressions."""

from __future__ import annotations

import numpy as np
import pytest
from backend_libs import lib_param
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import einopt
from einopt import conv_pattern, delta, one_hot

P7 = conv_pattern(7, 3, stride=2, padding=1)
P6 = conv_pattern(6, 2, dilation=2, padding=(1, 0))
PT = conv_pattern(9, 3, stride=2, padding=1, output_size=4)  # transposed: o summed, i kept
IDX = np.array([2, 0, 1, 2])

# (id, equation, operands: shapes for random arrays, or structured operands)
CASES = [
    ("conv1d", "nci,kcj,jxi->nkx", [(2, 3, 7), (4, 3, 3), P7]),
    ("conv2d", "ncij,kcab,axi,byj->nkxy", [(2, 3, 7, 6), (4, 3, 3, 2), P7, P6]),
    ("conv-transposed", "nco,cmk,koi->nmi", [(2, 3, 4), (3, 2, 3), PT]),
    ("unfold", "nci,koi->ncko", [(2, 3, 7), P7]),
    ("hessian-trace", "ncij,ncij,kai,lbj->n", [(2, 3, 7, 6), (2, 3, 7, 6), P7, P6]),
    ("pattern-pair-delta", "nci,ncj,koi,koj->n", [(2, 3, 7), (2, 3, 7), P7, P7]),
    ("pattern-pair-2d", "ncij,ncab,kxi,lyj,kxa,lyb->n",
     [(2, 3, 7, 6), (2, 3, 7, 6), P7, P6, P7, P6]),
    ("pattern-pair-same", "koi,koi,i->ko", [P7, P7, (7,)]),
    ("pattern-pair-ki", "koi,kpi->kop", [P7, P7]),
    ("two-convs", "i,koi,k,lpo,l->p", [(7,), P7, (3,), conv_pattern(4, 2), (2,)]),
    ("pattern-pattern-o", "koi,loj->kilj", [P7, P7]),
    ("pattern-pattern-i", "koi,lpi->kolp", [P7, P7]),
    ("pattern-alone", "koi->koi", [P7]),
    ("pattern-mask", "koi->ko", [P7]),
    ("delta-identity", "ij,jk,kl->il", [(2, 3), delta(3), (3, 4)]),
    ("delta-diag-embed", "ij,j->ij", [delta(3), (3,)]),
    ("delta-alone", "ij->ij", [delta(3)]),
    ("delta-trace", "ii->", [delta(4)]),
    ("delta-order3", "ijk,i,j->k", [delta(3, 3), (3,), (3,)]),
    ("delta-hyper", "ij,jk,ik->i", [(3, 3), delta(3), (3, 3)]),
    ("delta-output-twice", "ab,bc->abc", [(2, 3), delta(3)]),
    ("delta-broadcast", "i,ij->ij", [(1,), delta(3)]),
    ("delta-order1", "ij,j->i", [(2, 3), delta(3, 1)]),
    ("delta-order1-alone", "i->i", [delta(4, 1)]),
    ("one-hot-gather", "nc,cd->nd", [one_hot(IDX, 3), (3, 5)]),
    ("one-hot-batched", "bc,nbc->nb", [one_hot(IDX, 3), (2, 4, 3)]),
    ("one-hot-twice", "nc,nc,cd->nd", [one_hot(IDX, 3), one_hot(IDX[::-1].copy(), 3), (3, 2)]),
    ("one-hot-kept", "nc,n->nc", [one_hot(IDX, 3), (4,)]),
    ("mixed", "nci,jxi,nc,cd->nxd", [(4, 3, 7), P7, one_hot(IDX, 3), (3, 2)]),
]


def _operands(ops, rng):
    return [rng.standard_normal(x) if isinstance(x, tuple) else x for x in ops]


def _dense(ops):
    return [np.asarray(x) for x in ops]


@pytest.mark.parametrize("eq,ops", [pytest.param(e, o, id=i) for i, e, o in CASES])
def test_matches_dense_numpy(eq, ops, rng):
    operands = _operands(ops, rng)
    want = np.einsum(eq, *_dense(operands))
    got = einopt.einsum(eq, *operands)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    plan = einopt.plan(eq, *operands)
    np.testing.assert_allclose(plan(*operands), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("lib", [lib_param(n) for n in ("torch", "jax", "dask")])
@pytest.mark.parametrize("eq,ops", [pytest.param(e, o, id=i) for i, e, o in CASES
                                    if any(isinstance(x, tuple) for x in o)])
def test_matches_on_other_libraries(lib, eq, ops, rng):
    operands = _operands(ops, rng)
    want = np.einsum(eq, *_dense(operands))
    converted = [lib.to_lib(x) if isinstance(x, np.ndarray) else x for x in operands]
    got = lib.to_numpy(einopt.einsum(eq, *converted))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_torch_one_hot_indices_stay_torch(rng):
    torch = pytest.importorskip("torch")
    e = torch.randn(3, 5, dtype=torch.float64)
    idx = torch.tensor([2, 0, 1])
    got = einopt.einsum("nc,cd->nd", one_hot(idx, 3), e)
    assert isinstance(got, torch.Tensor)
    torch.testing.assert_close(got, e[idx])


def test_dtype_comes_from_the_arrays(rng):
    x = rng.standard_normal((2, 3, 7)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3)).astype(np.float32)
    assert einopt.einsum("nci,kcj,jxi->nkx", x, w, P7).dtype == np.float32


def test_out_argument(rng):
    x = rng.standard_normal(7)
    out = np.empty((3, 4))
    res = einopt.einsum("i,koi->ko", x, P7, out=out)
    assert res is out
    np.testing.assert_allclose(out, np.einsum("i,koi->ko", x, np.asarray(P7)))


# ---- random expressions -------------------------------------------------------------
LABELS = "abcdef"


@st.composite
def problems(draw):
    """A random dense einsum with 1-3 structured operands over its labels (and fresh
    ones), sizes consistent."""
    sizes = {lab: draw(st.integers(1, 5)) for lab in LABELS}
    n_dense = draw(st.integers(1, 3))
    terms = [draw(st.lists(st.sampled_from(LABELS), min_size=0, max_size=3))
             for _ in range(n_dense)]
    ops: list = [tuple(sizes[lab] for lab in t) for t in terms]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["delta", "conv", "one_hot"]))
        if kind == "delta":
            lab = draw(st.sampled_from(LABELS))
            others = draw(st.lists(st.sampled_from(LABELS), min_size=1, max_size=2))
            for o in others:
                sizes[o] = sizes[lab]
            terms.append([lab, *others])
            ops.append(delta(sizes[lab], 1 + len(others)))
        elif kind == "conv":
            k, o, i = draw(st.permutations(LABELS).map(lambda p: p[:3]))
            sizes[i] = draw(st.integers(3, 7))
            sizes[k] = draw(st.integers(1, 3))
            stride, dil = draw(st.integers(1, 2)), draw(st.integers(1, 2))
            pad = draw(st.integers(0, 2))
            span = dil * (sizes[k] - 1) + 1
            if sizes[i] + 2 * pad < span:
                pad = span
            pat = conv_pattern(sizes[i], sizes[k], stride, pad, dil)
            sizes[o] = pat.output_size
            terms.append([k, o, i])
            ops.append(pat)
        else:
            b, c = draw(st.permutations(LABELS).map(lambda p: p[:2]))
            idx = np.array(draw(st.lists(st.integers(0, sizes[c] - 1), min_size=sizes[b],
                                         max_size=sizes[b])), dtype=np.int64)
            terms.append([b, c])
            ops.append(one_hot(idx, sizes[c]))
    # Dense operands take the final sizes (a later structured operand may fix them).
    ops = [tuple(sizes[lab] for lab in t) if isinstance(x, tuple) else x
           for t, x in zip(terms, ops, strict=True)]
    seen = sorted({lab for t in terms for lab in t})
    output = draw(st.lists(st.sampled_from(seen), unique=True, max_size=3)) if seen else []
    eq = ",".join("".join(t) for t in terms) + "->" + "".join(output)
    return eq, ops


def _consistent(eq, ops) -> bool:
    sizes: dict = {}
    for term, x in zip(eq.split("->")[0].split(","), ops, strict=True):
        shape = x if isinstance(x, tuple) else x.shape
        for lab, d in zip(term, shape, strict=True):
            if sizes.setdefault(lab, d) != d:
                return False
    return True


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(problems())
def test_random_structured_einsums(problem):
    eq, ops = problem
    if not _consistent(eq, ops):
        return  # two structured operands fixed one label's size differently
    rng = np.random.default_rng(0)
    operands = _operands(ops, rng)
    want = np.einsum(eq, *_dense(operands))
    got = einopt.einsum(eq, *operands)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)



@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(problems())
def test_random_structured_einsums_on_torch(problem):
    """The same random einsums on torch tensors, where convolution steps (forward,
    transposed, weight gradient) run natively."""
    torch = pytest.importorskip("torch")
    eq, ops = problem
    if not _consistent(eq, ops) or not any(isinstance(x, tuple) for x in ops):
        return
    rng = np.random.default_rng(0)
    operands = _operands(ops, rng)
    want = np.einsum(eq, *_dense(operands))
    tensors = [torch.from_numpy(x) if isinstance(x, np.ndarray) else x for x in operands]
    got = einopt.einsum(eq, *tensors)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-10)


def test_gathered_multiplicities():
    """A pattern whose taps sum away leaves a constant (its multiplicities); a selector
    on one of its indices gathers that constant too (found on torch by the random
    test)."""
    p, s = conv_pattern(3, 1), one_hot(np.array([0, 0]), 3)
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(3), rng.standard_normal((3, 3))
    for eq in ("c,bc,abc,fb->", "b,bc,abc,fb->f"):
        want = np.einsum(eq, a, b, np.asarray(p), np.asarray(s))
        np.testing.assert_allclose(einopt.einsum(eq, a, b, p, s), want)
