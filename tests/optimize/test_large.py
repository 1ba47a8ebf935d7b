"""Path search on networks with thousands of tensors, written with generated symbols."""

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
    assert p.network.num_tensors == 10_000 and len(p.path) == 9_999
    assert isinstance(p.flops, int) and p.flops > 0
