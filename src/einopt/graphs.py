"""An einsum as a graph (networkx, the ``viz`` extra): the factor graph and the index
graph of the talk.

- :func:`factor_graph`: bipartite, tensor nodes and index nodes; an index joins every
  tensor that holds it, so an index held by three or more tensors (a batch index) is a
  hyperedge, visible as an index node of degree three or more. Index nodes carry their
  size and whether the output keeps them.
- :func:`index_graph`: indices only, adjacent when some tensor holds both, the edge
  weight counting such tensors.
"""

from __future__ import annotations

from typing import Any

from .api import _equation, _shape_of
from .network import build_network, label_text

__all__ = ["factor_graph", "index_graph"]


def _graph() -> Any:
    """An empty ``networkx.Graph`` that Jupyter shows as its drawing."""
    import networkx as nx

    class EinsumGraph(nx.Graph):  # type: ignore[misc]
        """A networkx graph of an einsum; Jupyter displays its drawing."""

        def _repr_svg_(self) -> str | None:
            try:
                from .viz import draw_graph, svg
            except ImportError:
                return None
            return svg(draw_graph(self))

    return EinsumGraph()


def _network(subscripts: Any, operands_or_shapes: tuple[Any, ...]) -> Any:
    eq, items = _equation(subscripts, operands_or_shapes)
    shapes = [_shape_of(x, k) for k, x in enumerate(items)]
    return build_network(eq, shapes)


def factor_graph(subscripts: str, *operands_or_shapes: Any) -> Any:
    """The factor graph of an einsum for arrays or shapes (a ``networkx.Graph``).

    Nodes: ``("tensor", k)`` (attributes ``kind="tensor"``, ``label="op{k}"``,
    ``indices``) and ``("index", name)`` (``kind="index"``, ``size``, ``output``).
    Edges join each tensor to its indices (``count``: how often it holds the index).
    """
    net = _network(subscripts, operands_or_shapes)
    g = _graph()
    g.graph["kind"] = "factor"
    out = set(net.output)
    for i, lab in enumerate(net.labels):
        g.add_node(("index", label_text(lab)), kind="index", size=net.sizes[i], output=i in out)
    for k, raw in enumerate(net.raw):
        node = ("tensor", k)
        g.add_node(node, kind="tensor", label=f"op{k}",
                   indices=tuple(label_text(net.labels[i]) for i in raw))
        for i in raw:
            key = ("index", label_text(net.labels[i]))
            if g.has_edge(node, key):
                g.edges[node, key]["count"] += 1
            else:
                g.add_edge(node, key, count=1)
    return g


def index_graph(subscripts: str, *operands_or_shapes: Any) -> Any:
    """The index graph of an einsum (a ``networkx.Graph``): a node per index (``size``,
    ``output``), an edge between two indices some tensor holds together (``weight``:
    how many tensors do)."""
    net = _network(subscripts, operands_or_shapes)
    g = _graph()
    g.graph["kind"] = "index"
    out = set(net.output)
    for i, lab in enumerate(net.labels):
        g.add_node(label_text(lab), size=net.sizes[i], output=i in out)
    for raw in net.raw:
        ids = sorted(set(raw))
        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                u, v = (label_text(net.labels[ids[a]]), label_text(net.labels[ids[b]]))
                w = g.edges[u, v]["weight"] + 1 if g.has_edge(u, v) else 1
                g.add_edge(u, v, weight=w)
    return g
