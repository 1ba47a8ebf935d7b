"""Factoring by the distributive law: the whole game of contraction order.

sum_{n,i,j} B[n,i]^2 A[n,j]^2 as one loop costs n*i*j steps; factored as
(sum_i B[n,i]^2)(sum_j A[n,j]^2) it costs n*(i+j). The optimizer factors on its own.
"""

import numpy as np

import einopt

rng = np.random.default_rng(0)
b, a = rng.standard_normal((64, 300)), rng.standard_normal((64, 200))
plan = einopt.plan("ni,ni,nj,nj->", b, b, a, a)
print(plan.explain(names=["B", "B", "A", "A"]))
assert plan.speedup > 50
assert np.isclose(plan(b, b, a, a), ((b * b).sum(1) * (a * a).sum(1)).sum())
