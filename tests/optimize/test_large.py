"""Path search on networks with thousands of tensors, written with generated symbols."""

from collections import Counter

import pytest

import einopt


def randreg_equation(n: int, degree: int, seed: int) -> str:
    """A random ``degree``-regular graph's einsum over ``n`` tensors, one symbol per edge from
    opt_einsum's ``get_symbol`` (as cotengra's ``randreg_equation`` writes it)."""
    oe = pytest.importorskip("opt_einsum")
    nx = pytest.importorskip("networkx")
    g = nx.random_regular_graph(degree, n, seed=seed)
    symbol = {frozenset(e): oe.get_symbol(k) for k, e in enumerate(g.edges)}
    return ",".join("".join(symbol[frozenset((v, u))] for u in g.neighbors(v))
                    for v in g.nodes) + "->"


def test_ten_thousand_tensors_with_generated_symbols():
    eq = randreg_equation(10_000, 3, seed=7)
    assert any(ch.isspace() for ch in eq)  # Unicode spaces are among the symbols
    p = einopt.plan(eq, *[(2, 2, 2)] * 10_000, optimize="greedy")
    assert p.network.num_tensors == 10_000
    assert len(p.path) == 9_999
    assert p.flops == path_flops(eq, 2, p.path)


def path_flops(eq: str, size: int, path: list[tuple[int, ...]]) -> int:
    """A path's cost counted from the equation's text alone: each step multiplies the
    sizes of every label its operands hold; a label stays while another operand or the
    output still holds it."""
    lhs, out = eq.split("->")
    terms = [set(t) for t in lhs.split(",")]
    holders = Counter(c for t in terms for c in t)
    total = 0
    for step in path:
        picked = [terms[k] for k in step]
        for k in sorted(step, reverse=True):
            del terms[k]
        union = set().union(*picked)
        holders.subtract(c for t in picked for c in t)
        total += size ** len(union)
        kept = {c for c in union if holders[c] > 0 or c in out}
        holders.update(kept)
        terms.append(kept)
    return total
