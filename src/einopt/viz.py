"""Drawings of einsums and plans (matplotlib and networkx, the ``viz`` extra).

Each function returns a matplotlib ``Figure``; :func:`save` writes it as SVG or PNG
(by the file's extension). Layouts are seeded, so a drawing is the same every time;
labels are left off above 60 nodes to stay readable, and nodes shrink with the count.
"""

from __future__ import annotations

from typing import Any

from .cost import count_text, pair_flops, ratio_text
from .graphs import TENSOR_COLOR, draw_graph, factor_graph, figure, index_graph, svg
from .network import label_text

__all__ = ["draw_factor_graph", "draw_index_graph", "draw_graph", "draw_tree", "save",
           "svg"]

def draw_factor_graph(subscripts: str, *operands_or_shapes: Any) -> Any:
    """The factor graph: tensors as squares, indices as circles (output indices red,
    area growing with the log of the size); an index joining 3+ tensors is a
    hyperedge."""
    return draw_graph(factor_graph(subscripts, *operands_or_shapes))


def draw_index_graph(subscripts: str, *operands_or_shapes: Any) -> Any:
    """The index graph: indices adjacent when a tensor holds both (edge width grows
    with the number of such tensors); output indices red."""
    return draw_graph(index_graph(subscripts, *operands_or_shapes))


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
    fig, ax = figure(2 * n)
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
    ax.scatter([x_of[v] for v in order], [0] * len(order), marker="s", color=TENSOR_COLOR, zorder=2)
    if n <= 40:
        for v in order:
            labels = "".join(label_text(net.labels[i]) for i in net.raw[v])
            ax.annotate(f"op{v}[{labels}]", (x_of[v], 0), textcoords="offset points",
                        xytext=(0, -14), ha="center", fontsize=8)
    ax.set_title(f"contraction tree: {count_text(plan.flops)} flops, "
                 f"{ratio_text(plan.naive_flops, plan.flops)}x fewer "
                 "than naive\n(merge size and colour: its share of the flops)")
    return fig


def save(fig: Any, path: str) -> None:
    """Write ``fig`` to ``path`` (``.svg`` or ``.png``)."""
    fig.savefig(path, bbox_inches="tight")
