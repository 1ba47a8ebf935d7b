"""Common subexpressions: the same arrays twice are contracted once."""

from __future__ import annotations

import numpy as np
import pytest

import einopt
from einopt.optimize.cse import find_twins


def test_twins_of_the_per_example_gradient_norm():
    inputs = [tuple("nmi"), tuple("nki"), tuple("nmj"), tuple("nkj")]
    (tw,) = [t for t in find_twins(inputs, ("n",), (0, 1, 0, 1))
             if set(t.inner.output) == set("nmk")]
    assert tw.first == (0, 1) and tw.second == (2, 3) and tw.rest == ()
    assert tw.outer.inputs[0] == tw.outer.inputs[1] == tw.inner.output


def test_no_twins_without_repeated_arrays():
    assert find_twins([tuple("ij"), tuple("jk")], ("i", "k"), (0, 1)) == []


def test_shared_plan_is_cheaper_and_right(rng):
    b, a = rng.standard_normal((8, 16, 50)), rng.standard_normal((8, 12, 50))
    plan = einopt.plan("nmi,nki,nmj,nkj->n", b, a, b, a)
    assert plan.shared is not None
    assert plan.flops == 8 * 16 * 12 * 50 + 8 * 16 * 12
    distinct = einopt.plan("nmi,nki,nmj,nkj->n", b, a, b.copy(), a.copy())
    assert distinct.shared is None and distinct.flops > plan.flops
    want = np.einsum("nmi,nki,nmj,nkj->n", b, a, b, a)
    np.testing.assert_allclose(einopt.einsum("nmi,nki,nmj,nkj->n", b, a, b, a), want)
    np.testing.assert_allclose(plan(b, a, b, a), want)
    assert "computed once" in str(plan)


def test_cached_program_is_not_reused_for_distinct_arrays(rng):
    b, a = rng.standard_normal((4, 5, 6)), rng.standard_normal((4, 3, 6))
    c, d = rng.standard_normal((4, 5, 6)), rng.standard_normal((4, 3, 6))
    eq = "nmi,nki,nmj,nkj->n"
    first = einopt.einsum(eq, b, a, b, a)
    second = einopt.einsum(eq, b, a, c, d)
    np.testing.assert_allclose(first, np.einsum(eq, b, a, b, a))
    np.testing.assert_allclose(second, np.einsum(eq, b, a, c, d))


def test_rest_operands_join_the_outer_einsum(rng):
    x, w, u = rng.standard_normal((6, 20)), rng.standard_normal((20, 30)), rng.standard_normal(30)
    eq = "ni,ij,mk,kj,j->"  # sum_j u_j (sum x w)_j^2: the halves share j, u joins them
    plan = einopt.plan(eq, x, w, x, w, u)
    assert plan.shared is not None and plan.shared.rest == (4,)
    np.testing.assert_allclose(einopt.einsum(eq, x, w, x, w, u),
                               np.einsum(eq, x, w, x, w, u))


def test_torch_gradients_through_a_shared_plan():
    torch = pytest.importorskip("torch")
    b = torch.randn(8, 16, 40, dtype=torch.float64, requires_grad=True)
    a = torch.randn(8, 12, 40, dtype=torch.float64, requires_grad=True)
    einopt.einsum("nmi,nki,nmj,nkj->n", b, a, b, a).sum().backward()
    gb, ga = b.grad.clone(), a.grad.clone()
    b.grad = a.grad = None
    torch.einsum("nmi,nki,nmj,nkj->n", b, a, b, a).sum().backward()
    torch.testing.assert_close(gb, b.grad)
    torch.testing.assert_close(ga, a.grad)


# ---- random einsums with repeated arrays ----------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def repeated(draw):
    """A random einsum whose operands include the same arrays twice, under a renaming
    of some indices (twin halves), plus optional extra operands."""
    letters = "abcdefgh"
    n = draw(st.integers(1, 3))
    terms = [draw(st.lists(st.sampled_from(letters[:5]), min_size=0, max_size=3))
             for _ in range(n)]
    rename = {c: draw(st.sampled_from([c, chr(ord(c) + 3)])) for c in letters[:5]}
    twins = [[rename[c] for c in t] for t in terms]
    # a renamed twin keeps its array's shape: a label and its new name share one size
    root = {c: c for c in letters}

    def find(c: str) -> str:
        while root[c] != c:
            c = root[c]
        return c
    for c in letters[:5]:
        root[find(rename[c])] = find(c)
    drawn = {c: draw(st.integers(1, 4)) for c in letters}
    sizes = {c: drawn[find(c)] for c in letters}
    extra = draw(st.lists(st.lists(st.sampled_from(letters), max_size=2), max_size=2))
    all_terms = terms + twins + extra
    seen = sorted({c for t in all_terms for c in t})
    out = draw(st.lists(st.sampled_from(seen), unique=True, max_size=2)) if seen else []
    eq = ",".join("".join(t) for t in all_terms) + "->" + "".join(out)
    rng = np.random.default_rng(draw(st.integers(0, 100)))
    base = [rng.standard_normal([sizes[c] for c in t]) for t in terms]
    ops = base + base + [rng.standard_normal([sizes[c] for c in t]) for t in extra]
    return eq, ops


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(repeated())
def test_random_einsums_with_repeated_arrays(problem):
    eq, ops = problem
    want = np.einsum(eq, *ops)  # every drawn problem is valid: no example is thrown away
    np.testing.assert_allclose(einopt.einsum(eq, *ops), want, rtol=1e-10, atol=1e-10)


def _chain_norm(m: int) -> tuple[list[tuple[str, ...]], list[int]]:
    """``||x W_1 ... W_m||^2`` as the chain times its copy (outputs shared)."""
    inputs = [("n", "p0"), ("n", "p0'")]
    for k in range(m):
        a, b = f"p{k}", f"p{k + 1}"
        inputs += [(a, b), (a + "'", b + "'" if k < m - 1 else b)]
    return inputs, [2 * (k // 2) for k in range(len(inputs))]


@pytest.mark.parametrize("m", [5, 9])
def test_twins_past_the_exhaustive_limit_are_oriented_along_the_chain(m):
    from einopt.optimize.cse import MAX_PAIRS

    inputs, aliases = _chain_norm(m)
    assert m + 1 > MAX_PAIRS
    (tw,) = find_twins(inputs, (), aliases)
    assert tw.first == tuple(range(0, 2 * m + 2, 2)) and tw.rest == ()
    assert tw.inner.output == ("n", f"p{m}")


def test_long_squared_chain_is_planned_once_and_right(rng):
    m = 6
    x = rng.standard_normal((5, 4))
    ws = [rng.standard_normal((4, 4)) for _ in range(m)]
    inputs, _ = _chain_norm(m)
    ops = [x, x] + [w for w in ws for _ in range(2)]
    args = einopt.parse.sublist_args(ops, inputs, ())
    plan = einopt.plan(*args)
    assert plan.shared is not None
    y = x
    for w in ws:
        y = y @ w
    np.testing.assert_allclose(einopt.einsum(*args), (y * y).sum())
