"""Factored convolutions: a conv layer whose kernel is a tensor network.

A depthwise-separable kernel W[o,c,x,y] = D[c,x,y] P[o,c] could be built and then
convolved (4.8e9 flops for the layer below), or applied as a depthwise then a pointwise
convolution (5.8e8). The layer's forward pass is one einsum; the planner picks.
"""


try:
    import torch
except ImportError:  # needs torch
    raise SystemExit("this example needs torch") from None

from einopt.nn import PRESETS, FactoredConv2d

torch.manual_seed(0)
x = torch.randn(2, 32, 16, 16)
for preset in PRESETS:
    rank = {"bottleneck": (8, 8), "cp": 8, "tucker": (8, 8), "tensor_train": 4}.get(preset)
    layer = FactoredConv2d(32, 32, 3, padding=1, preset=preset, rank=rank)
    y = layer(x)
    dense = torch.nn.functional.conv2d(x, layer.kernel(), layer.bias, padding=1)
    assert torch.allclose(y, dense, atol=1e-4), preset
    print(layer.summary(tuple(x.shape)))

big = FactoredConv2d(128, 128, 3, padding=1, preset="depthwise_separable")
plan = big.plan((32, 128, 32, 32))
assert plan.flops < 32 * 128 * 128 * 9 * 32 * 32 / 5  # depthwise then pointwise
print(plan)
