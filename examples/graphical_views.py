"""The graphical views: an einsum's factor graph (tensors and indices) and index graph
(indices adjacent when they share a tensor), and the plan's contraction tree.

Writes the three PNGs of the talk's ``abcd,def->`` example to the folder given (or
``docs/``)."""

import os
import sys

import einopt

try:
    from einopt import viz
except ImportError:
    raise SystemExit("this example needs the viz extra (networkx, matplotlib)") from None

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..",
                                                          "docs")
os.makedirs(out, exist_ok=True)
eq, shapes = "abcd,def->", [(2, 3, 4, 5), (5, 6, 7)]
plan = einopt.plan(eq, *shapes)
for name, fig in (("factor_graph", viz.draw_factor_graph(eq, *shapes)),
                  ("index_graph", viz.draw_index_graph(eq, *shapes)),
                  ("contraction_tree", viz.draw_tree(plan))):
    path = os.path.join(out, f"{name}.png")
    viz.save(fig, path)
    assert os.path.getsize(path) > 1000
    print(f"wrote {path}")
