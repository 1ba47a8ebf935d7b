"""The Hessian trace of a deep linear network from one extra-index einsum.

For f = x W1 W2 W3 and the squared loss, the Hessian's diagonal block for W_k is
J_k^T J_k (times the loss's scale), so its trace is sum_k ||d f / d W_k||^2. With an
extra index i over the layers, every layer k switches to the identity on its two
copies at i == k; einopt expands that one einsum and finds, in each term, the closed
form ||x W_<k||^2 ||W_>k||^2 by computing the repeated half once. Across the terms
every product is formed once: a chain of m layers costs the closed form's 2m - 3
matrix products (its prefixes x W_<k and suffixes W_>k), not m^2.
"""

import numpy as np

import einopt
from einopt.api.calls import SWITCH_RUNS

rng = np.random.default_rng(0)
x = rng.standard_normal((16, 12))
ws = [rng.standard_normal((12, 12)) / 4 for _ in range(3)]

trace = einopt.hessian_trace_einsum(x, ws)
sq = np.linalg.norm
closed = (sq(x) ** 2 * sq(ws[1] @ ws[2]) ** 2 + sq(x @ ws[0]) ** 2 * sq(ws[2]) ** 2
          + sq(x @ ws[0] @ ws[1]) ** 2 * 12)
assert np.isclose(trace, closed)
print(f"sum_k ||df/dW_k||^2 = {trace:.6g} (closed form {closed:.6g})")

# Deeper: the schedule's matrix products (steps of more than one multiply-add per
# output entry) grow linearly with the depth.
for m in (4, 8, 16):
    einopt.clear_caches()
    deep = [rng.standard_normal((12, 12)) / 4 for _ in range(m)]
    einopt.hessian_trace_einsum(x, deep)
    (schedule,) = SWITCH_RUNS.values()
    products = sum(1 for s in schedule.steps if s.plan.flops > 16 * 12)
    assert products == 2 * m - 3, products
    print(f"{m:2d} layers: {products} matrix products, {schedule.flops:.3g} flops")
