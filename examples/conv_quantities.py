"""Quantities of a convolution layer, each the naive einsum of the layer's equation:
per-example gradient norms, the Hessian (GGN) trace, per-example Hessian traces and a
Hessian-vector product, checked against explicit unfolded computations."""

import numpy as np

import einopt
from einopt.quantities import LayerEinsum, quantity

rng = np.random.default_rng(0)
n, c, k, h = 4, 3, 5, 8
x = rng.standard_normal((n, c, h, h))
w = rng.standard_normal((k, c, 3, 3))
p = einopt.conv_pattern(h, 3, padding=1)
layer = LayerEinsum.of("nchw,kcab,axh,byw->nkxy")
ops = [x, w, p, p]

dense = np.asarray(p)
u = np.einsum("nchw,axh,byw->ncabxy", x, dense, dense)  # unfolded input
g = rng.standard_normal((n, k, h, h))
per = np.einsum("nkxy,ncabxy->nkcab", g, u)
assert np.allclose(quantity("grad_norm2", layer, ops, g), (per ** 2).sum((1, 2, 3, 4)))
print("per-example gradient norms: match the unfolded computation")

s = np.sqrt(2.0) * np.broadcast_to(np.eye(k)[None, :, None, None, :], (n, k, h, h, k))
jac = np.einsum("ncabxy,nkxyC->nCkcab", u, s).reshape(n, k, -1)
ggn = np.einsum("nCp,nCq->pq", jac, jac)
assert np.isclose(quantity("ggn_trace", layer, ops, s=s), np.trace(ggn))
per_trace = quantity("ggn_trace_batch", layer, ops, s=s)
assert np.allclose(per_trace, np.einsum("nCp,nCp->n", jac, jac))
v = rng.standard_normal(w.shape)
assert np.allclose(quantity("hvp", layer, ops, s=s, v=v).reshape(-1), ggn @ v.reshape(-1))
print(f"Hessian trace {np.trace(ggn):.6g}, per-example traces and HVP: match")
