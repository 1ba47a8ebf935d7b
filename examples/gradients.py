"""Gradients and per-example gradients are einsums.

For y = einsum("ni,oi->no", x, W) and dL/dy = g, dL/dW is the einsum of the other
operand and the cotangent, "ni,no->oi"; keeping n in its output gives the per-example
gradients, "ni,no->noi".
"""

import numpy as np

import einopt
from einopt.quantities import LayerEinsum, quantity

rng = np.random.default_rng(0)
x, w, g = rng.standard_normal((8, 5)), rng.standard_normal((3, 5)), rng.standard_normal((8, 3))
vjp = einopt.vjp_equation("ni,oi->no", 1)
print(f"dL/dW: {vjp}")
assert np.allclose(vjp([x, w], g), g.T @ x)

layer = LayerEinsum.of("ni,oi->no")
per = quantity("grad_batch", layer, [x, w], g)
assert np.allclose(per, np.einsum("no,ni->noi", g, x))
assert np.allclose(per.sum(0), g.T @ x)
print(f"per-example gradients: shape {per.shape}, summing to dL/dW")
