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

import io
import math
from typing import Any

from .network import build_network, label_text, shape_of
from .parse import equation_of

__all__ = ["factor_graph", "index_graph", "draw_graph", "figure", "svg"]


def _graph() -> Any:
    """An empty ``networkx.Graph`` that Jupyter shows as its drawing."""
    import networkx as nx

    class EinsumGraph(nx.Graph):  # type: ignore[misc]
        """A networkx graph of an einsum; Jupyter displays its drawing."""

        def _repr_svg_(self) -> str | None:
            try:
                return svg(draw_graph(self))
            except ImportError:
                return None

    return EinsumGraph()


def _network(subscripts: Any, operands_or_shapes: tuple[Any, ...]) -> Any:
    eq, items = equation_of(subscripts, operands_or_shapes)
    shapes = [shape_of(x, k) for k, x in enumerate(items)]
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


#: Colours of tensor nodes, index nodes and output index nodes.
TENSOR_COLOR, INDEX_COLOR, OUTPUT_COLOR = "#4c72b0", "#dd8452", "#c44e52"


def figure(nodes: int) -> Any:
    """A figure and axes sized for ``nodes`` nodes (matplotlib, Agg unless set)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    side = min(14.0, 4.0 + 0.08 * nodes)
    fig, ax = plt.subplots(figsize=(side, side * 0.75))
    ax.set_axis_off()
    return fig, ax


def _layout(g: Any) -> Any:
    import networkx as nx

    if g.number_of_nodes() <= 2:
        return nx.circular_layout(g)
    return nx.spring_layout(g, seed=0, iterations=100 if g.number_of_nodes() < 300 else 30)


def _draw_factor(g: Any) -> Any:
    import networkx as nx

    fig, ax = figure(g.number_of_nodes())
    pos = _layout(g)
    scale = max(0.25, min(1.0, 40 / max(1, g.number_of_nodes())))
    tensors = [v for v, d in g.nodes(data=True) if d["kind"] == "tensor"]
    indices = [v for v, d in g.nodes(data=True) if d["kind"] == "index"]
    nx.draw_networkx_edges(g, pos, ax=ax, alpha=0.5)
    nx.draw_networkx_nodes(g, pos, nodelist=tensors, node_shape="s", node_color=TENSOR_COLOR,
                           node_size=500 * scale, ax=ax)
    sizes = [200 * scale * (1 + math.log2(max(2, g.nodes[v]["size"]))) / 2 for v in indices]
    colors = [OUTPUT_COLOR if g.nodes[v]["output"] else INDEX_COLOR for v in indices]
    nx.draw_networkx_nodes(g, pos, nodelist=indices, node_color=colors, node_size=sizes, ax=ax)
    if g.number_of_nodes() <= 60:
        labels = {v: g.nodes[v]["label"] if v[0] == "tensor" else v[1] for v in g.nodes}
        nx.draw_networkx_labels(g, pos, labels, font_size=9, font_color="white", ax=ax)
    ax.set_title(f"factor graph: {len(tensors)} tensors, {len(indices)} indices")
    return fig


def _draw_index(g: Any) -> Any:
    import networkx as nx

    fig, ax = figure(g.number_of_nodes())
    pos = _layout(g)
    widths = [1 + g.edges[e]["weight"] for e in g.edges]
    nx.draw_networkx_edges(g, pos, width=widths, alpha=0.5, ax=ax)
    colors = [OUTPUT_COLOR if d["output"] else INDEX_COLOR for _, d in g.nodes(data=True)]
    nx.draw_networkx_nodes(g, pos, node_color=colors, node_size=400, ax=ax)
    if g.number_of_nodes() <= 60:
        nx.draw_networkx_labels(g, pos, font_size=9, ax=ax)
    ax.set_title(f"index graph: {g.number_of_nodes()} indices")
    return fig


def draw_graph(g: Any) -> Any:
    """The drawing of a graph from :mod:`einopt.graphs` (factor or index graph)."""
    return _draw_factor(g) if g.graph.get("kind") == "factor" else _draw_index(g)


def svg(fig: Any) -> str:
    """``fig`` as SVG text (for Jupyter's ``_repr_svg_``)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()
