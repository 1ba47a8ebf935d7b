"""A convolution is an einsum with an index-pattern tensor P[k, o, i].

Stored densely the pattern makes the einsum cost 3.2e9 (opt_einsum's count for a
32x32, 64-channel, 3x3 layer). einopt treats the pattern as structure: it becomes a
strided view of the input (no copy), and the plan costs the multiply-adds the layer
really needs.
"""

import numpy as np

import einopt

n, c, k, h = 4, 16, 16, 32
rng = np.random.default_rng(0)
x = rng.standard_normal((n, c, h, h)).astype(np.float32)
w = rng.standard_normal((k, c, 3, 3)).astype(np.float32)
p = einopt.conv_pattern(h, 3, padding=1)

eq = "nchw,kcab,axh,byw->nkxy"
plan = einopt.plan(eq, x, w, p, p)
direct = n * k * c * 9 * h * h
dense = np.asarray(p, dtype=np.float32)
print(f"planned flops: {plan.flops:.3g} (direct multiply-adds: {direct:.3g})")
assert plan.flops == direct

y = einopt.einsum(eq, x, w, p, p)
want = np.einsum(eq, x, w, dense, dense, optimize=True)
assert np.allclose(y, want, atol=1e-3)
counted = 2 * n * c * 3 * h * h * h + n * c * 9 * h * h * k  # the dense patterns' steps
print(f"dense patterns would cost about {counted:.3g} flops; the plan windows the input "
      "instead (a strided view, no pattern built)")
print("equal to the dense-pattern einsum: yes")
