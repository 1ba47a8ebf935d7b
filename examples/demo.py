"""Demo: einopt rediscovers the per-example gradient-norm trick on its own.

``sum_ij (B[n,i] A[n,j])^2`` written naively as ``ni,ni,nj,nj->n`` costs n*i*j*3 flops;
the optimizer factors it into ``(B*B).sum(1) * (A*A).sum(1)``.
"""

import numpy as np

import einopt

n, i, j = 256, 1024, 1024
rng = np.random.default_rng(0)
B = rng.standard_normal((n, i))
A = rng.standard_normal((n, j))

plan = einopt.plan("ni,ni,nj,nj->n", B, B, A, A)
print(plan)
print()
print(f"speedup over the naive loop: {plan.speedup:.0f}x")
result = plan(B, B, A, A)
hand = (B * B).sum(1) * (A * A).sum(1)
assert np.allclose(result, hand)
print("equal to (B*B).sum(1) * (A*A).sum(1): yes")
print()
print(plan.code())
