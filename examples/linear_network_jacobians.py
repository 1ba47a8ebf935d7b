"""A linear network y = x A B C and its derivatives: sums over weighted walks.

The derivative of the product along every factor is the product rule: a sum over
which factor is differentiated. Written with an extra index i over the factors
(h_k(i) = dF_k if i == k else F_k) it is one einsum; einopt evaluates it on the
primal plan with dual numbers, at most three products per step, not one einsum per
factor.
"""

import numpy as np

import einopt

rng = np.random.default_rng(0)
x = rng.standard_normal((5, 6))
mats = [rng.standard_normal((6, 6)) / 3 for _ in range(4)]
tangents = [rng.standard_normal((6, 6)) for _ in range(4)]

eq = "ni,ij,jk,kl,lm->nm"
y, dy = einopt.jvp(eq, [x, *mats], {k + 1: t for k, t in enumerate(tangents)})
walks = sum(x @ np.linalg.multi_dot([tangents[k] if j == k else m
                                     for j, m in enumerate(mats)]) for k in range(4))
assert np.allclose(dy, walks)
print("directional derivative along all four weights: equal to the sum of walks")

jac = einopt.jacobian(eq, [x, *mats], 2)  # d y[n, m] / d B[j, k]
assert jac.shape == (5, 6, 6, 6)
shapes = [v.shape for v in [x, *mats]]
print(f"Jacobian w.r.t. B as an einsum: {einopt.jacobian_equation(eq, 2, shapes)}")
