"""Per-example gradient norms: the optimizer rediscovers Goodfellow's trick.

||dL_n/dW||^2 = sum_{o,i} (g[n,o] x[n,i])^2 written naively is "no,no,ni,ni->n"; the
plan is (g*g).sum(1) * (x*x).sum(1), printed as the code a person would write.
"""

import numpy as np

import einopt

rng = np.random.default_rng(0)
x, g = rng.standard_normal((256, 1024)), rng.standard_normal((256, 1024))
plan = einopt.plan("no,no,ni,ni->n", g, g, x, x)
code = plan.code(names=["g", "g", "x", "x"])
print(code)
assert "(g * g).sum(1)" in code and "(x * x).sum(1)" in code and "einsum" not in code
assert np.allclose(plan(g, g, x, x), (g * g).sum(1) * (x * x).sum(1))
print(f"speedup over the naive loop: {plan.speedup:.0f}x")
