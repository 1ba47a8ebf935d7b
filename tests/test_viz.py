"""Graph views and drawings."""

from __future__ import annotations

import pytest

pytest.importorskip("networkx")
pytest.importorskip("matplotlib")

import einopt  # noqa: E402
from einopt import graphs, viz  # noqa: E402


def random_regular(n: int, seed: int) -> tuple[str, list[tuple[int, ...]]]:
    """A degree-3 random graph of ``n`` tensors as a names-form einsum (bond size 2)."""
    import random

    rng = random.Random(seed)
    stubs = [k for k in range(n) for _ in range(3)]
    rng.shuffle(stubs)
    terms: list[list[str]] = [[] for _ in range(n)]
    for e in range(0, len(stubs) - 1, 2):
        terms[stubs[e]].append(f"e{e}")
        terms[stubs[e + 1]].append(f"e{e}")
    eq = ", ".join(" ".join(t) for t in terms) + " ->"
    return eq, [(2,) * len(t) for t in terms]


def test_factor_graph_marks_hyperedges_and_output():
    g = graphs.factor_graph("bi,bij,bj->b", (2, 3), (2, 3, 4), (2, 4))
    tensors = [v for v, d in g.nodes(data=True) if d["kind"] == "tensor"]
    assert len(tensors) == 3
    assert g.degree[("index", "b")] == 3  # a hyperedge: three tensors hold b
    assert g.nodes[("index", "b")]["output"] and g.nodes[("index", "j")]["size"] == 4
    assert not g.nodes[("index", "i")]["output"]


def test_index_graph_weights():
    g = graphs.index_graph("ij,ij,jk->ik", (2, 3), (2, 3), (3, 4))
    assert g.edges["i", "j"]["weight"] == 2 and g.edges["j", "k"]["weight"] == 1
    assert not g.has_edge("i", "k")


def test_repeated_index_counts():
    g = graphs.factor_graph("ii->i", (3, 3))
    assert g.edges[("tensor", 0), ("index", "i")]["count"] == 2


def test_drawings_of_a_100_tensor_network(tmp_path):
    eq, shapes = random_regular(100, seed=0)
    plan = einopt.plan(eq, *shapes)
    for name, fig in (("factor", viz.draw_factor_graph(eq, *shapes)),
                      ("index", viz.draw_index_graph(eq, *shapes)),
                      ("tree", viz.draw_tree(plan))):
        path = tmp_path / f"{name}.png"
        viz.save(fig, str(path))
        assert path.stat().st_size > 1000


def test_svg_text():
    fig = viz.draw_tree(einopt.plan("ij,jk->ik", (2, 3), (3, 4)))
    assert viz.svg(fig).lstrip().startswith("<?xml")


def test_jupyter_reprs():
    g = graphs.factor_graph("ij,jk->ik", (2, 3), (3, 4))
    assert g._repr_svg_().lstrip().startswith("<?xml")
    assert graphs.index_graph("ij,jk->ik", (2, 3), (3, 4))._repr_svg_().lstrip().startswith("<?xml")
    assert einopt.plan("ij,jk->ik", (2, 3), (3, 4))._repr_svg_().lstrip().startswith("<?xml")
