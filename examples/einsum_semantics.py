"""Einsum beyond Einstein: any index may appear once, twice or in many operands.

Repeated indices in one operand take diagonals, an index in three or more operands is a
hyperedge (a batch index), the output may keep, drop or repeat nothing, and ``...``
broadcasts. einopt follows numpy's semantics exactly.
"""

import numpy as np

import einopt

rng = np.random.default_rng(0)
a = rng.standard_normal((4, 4))
b = rng.standard_normal((3, 4))
x = rng.standard_normal((2, 5, 4))

checks = {
    "i->": ("i->", [b[0]]),  # a sum
    "ij->ji": ("ij->ji", [a]),  # a transpose
    "ii->i": ("ii->i", [a]),  # a diagonal
    "ii->": ("ii->", [a]),  # a trace
    "bi,bi,bi->b": ("bi,bi,bi->b", [b, b, b]),  # a hyperedge: b joins three operands
    "...i,ji->...j": ("...i,ji->...j", [x, a]),  # broadcasting
    "implicit ij,jk": ("ij,jk", [b, a]),  # implicit output: the indices seen once, sorted
}
for name, (eq, ops) in checks.items():
    got = einopt.einsum(eq, *ops)
    assert np.allclose(got, np.einsum(eq, *ops)), name
    print(f"{name:>16}: shape {np.shape(got)}  (equals numpy.einsum)")
