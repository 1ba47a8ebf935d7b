"""Matrix products are einsums, and their order is the optimizer's job.

With ``A`` 1000x10, ``B`` 10x1000 and ``C`` 1000x10, ``(A B) C`` costs 2e7
multiply-adds and ``A (B C)`` 2e5. One loop over all four indices would cost 1e8 for
each operand pair. einopt's plan is the cheap order, run as BLAS products.
"""

import numpy as np

import einopt

rng = np.random.default_rng(0)
a, b, c = (rng.standard_normal(s) for s in [(1000, 10), (10, 1000), (1000, 10)])
plan = einopt.plan("ij,jk,kl->il", a, b, c)
print(plan)
assert np.allclose(plan(a, b, c), a @ (b @ c))
assert plan.flops == 10 * 1000 * 10 + 1000 * 10 * 10  # A (B C)
assert plan.speedup >= 1000  # against the naive loop
print(f"speedup over the naive loop: {plan.speedup:.0f}x")
print(plan.code())
