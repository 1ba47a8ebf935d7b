"""Drawings of einsums and plans (matplotlib and networkx, the ``viz`` extra).

Each function returns a matplotlib ``Figure``; :func:`save` writes it as SVG or PNG
(by the file's extension). Layouts are seeded, so a drawing is the same every time;
labels are left off above 60 nodes to stay readable, and nodes shrink with the count.
"""

from __future__ import annotations

import io
import math
from typing import Any

from .cost import pair_flops
from .graphs import factor_graph, index_graph
from .network import label_text

__all__ = ["draw_factor_graph", "draw_index_graph", "draw_graph", "draw_tree", "save",
           "svg"]

_TENSOR, _INDEX, _OUTPUT = "#4c72b0", "#dd8452", "#c44e52"


def _figure(nodes: int) -> Any:
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


def draw_factor_graph(subscripts: str, *operands_or_shapes: Any) -> Any:
    """The factor graph: tensors as squares, indices as circles (output indices red,
    area growing with the log of the size); an index joining 3+ tensors is a
    hyperedge."""
    return _draw_factor(factor_graph(subscripts, *operands_or_shapes))


def _draw_factor(g: Any) -> Any:
    import networkx as nx

    fig, ax = _figure(g.number_of_nodes())
    pos = _layout(g)
    scale = max(0.25, min(1.0, 40 / max(1, g.number_of_nodes())))
    tensors = [v for v, d in g.nodes(data=True) if d["kind"] == "tensor"]
    indices = [v for v, d in g.nodes(data=True) if d["kind"] == "index"]
    nx.draw_networkx_edges(g, pos, ax=ax, alpha=0.5)
    nx.draw_networkx_nodes(g, pos, nodelist=tensors, node_shape="s", node_color=_TENSOR,
                           node_size=500 * scale, ax=ax)
    sizes = [200 * scale * (1 + math.log2(max(2, g.nodes[v]["size"]))) / 2 for v in indices]
    colors = [_OUTPUT if g.nodes[v]["output"] else _INDEX for v in indices]
    nx.draw_networkx_nodes(g, pos, nodelist=indices, node_color=colors, node_size=sizes, ax=ax)
    if g.number_of_nodes() <= 60:
        labels = {v: g.nodes[v]["label"] if v[0] == "tensor" else v[1] for v in g.nodes}
        nx.draw_networkx_labels(g, pos, labels, font_size=9, font_color="white", ax=ax)
    ax.set_title(f"factor graph: {len(tensors)} tensors, {len(indices)} indices")
    return fig


def draw_index_graph(subscripts: str, *operands_or_shapes: Any) -> Any:
    """The index graph: indices adjacent when a tensor holds both (edge width grows
    with the number of such tensors); output indices red."""
    return _draw_index(index_graph(subscripts, *operands_or_shapes))


def _draw_index(g: Any) -> Any:
    import networkx as nx

    fig, ax = _figure(g.number_of_nodes())
    pos = _layout(g)
    widths = [1 + g.edges[e]["weight"] for e in g.edges]
    nx.draw_networkx_edges(g, pos, width=widths, alpha=0.5, ax=ax)
    colors = [_OUTPUT if d["output"] else _INDEX for _, d in g.nodes(data=True)]
    nx.draw_networkx_nodes(g, pos, node_color=colors, node_size=400, ax=ax)
    if g.number_of_nodes() <= 60:
        nx.draw_networkx_labels(g, pos, font_size=9, ax=ax)
    ax.set_title(f"index graph: {g.number_of_nodes()} indices")
    return fig


def draw_graph(g: Any) -> Any:
    """The drawing of a graph from :mod:`einopt.graphs` (factor or index graph)."""
    return _draw_factor(g) if g.graph.get("kind") == "factor" else _draw_index(g)


def draw_tree(plan: Any) -> Any:
    """The contraction tree of a plan: leaves at the bottom, each merge above its
    children; a merge's colour and size show its share of the plan's flops."""
    import matplotlib.pyplot as plt

    from .tree import tree_cost

    net, tree = plan.network, plan.tree
    n = net.num_tensors
    cost = tree_cost(net, tree)
    children = {n + k: m for k, m in enumerate(tree.merges)}
    masks = cost.node_masks
    flops = {n + k: pair_flops(masks[x], masks[y], net.sizes)
             for k, (x, y) in enumerate(tree.merges)}
    total = max(1, sum(flops.values()))
    x_of: dict[int, float] = {}
    depth: dict[int, int] = {}
    order = []  # leaves left to right, by an iterative walk from the root
    root = n + len(tree.merges) - 1 if tree.merges else 0
    stack = [root]
    while stack:
        v = stack.pop()
        if v in children:
            stack += [children[v][1], children[v][0]]
        else:
            order.append(v)
    for pos, leaf in enumerate(order):
        x_of[leaf], depth[leaf] = float(pos), 0
    for k, (a, b) in enumerate(tree.merges):
        z = n + k
        x_of[z] = (x_of[a] + x_of[b]) / 2
        depth[z] = max(depth[a], depth[b]) + 1
    fig, ax = _figure(2 * n)
    cmap = plt.get_cmap("viridis")
    for z, (a, b) in children.items():
        for c in (a, b):
            ax.plot([x_of[c], x_of[z]], [depth[c], depth[z]], color="0.6", lw=1, zorder=1)
    for z, f in flops.items():
        share = f / total
        ax.scatter([x_of[z]], [depth[z]], s=40 + 800 * share, color=cmap(share), zorder=2)
        if n <= 40 and share >= 0.01:
            ax.annotate(f"{100 * share:.0f}%", (x_of[z], depth[z]), textcoords="offset points",
                        xytext=(6, 4), fontsize=8)
    ax.scatter([x_of[v] for v in order], [0] * len(order), marker="s", color=_TENSOR, zorder=2)
    if n <= 40:
        for v in order:
            labels = "".join(label_text(net.labels[i]) for i in net.raw[v])
            ax.annotate(f"op{v}[{labels}]", (x_of[v], 0), textcoords="offset points",
                        xytext=(0, -14), ha="center", fontsize=8)
    ax.set_title(f"contraction tree: {plan.flops:.3g} flops, {plan.speedup:.3g}x fewer "
                 "than naive\n(merge size and colour: its share of the flops)")
    return fig


def save(fig: Any, path: str) -> None:
    """Write ``fig`` to ``path`` (``.svg`` or ``.png``)."""
    fig.savefig(path, bbox_inches="tight")


def svg(fig: Any) -> str:
    """``fig`` as SVG text (for Jupyter's ``_repr_svg_``)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()
