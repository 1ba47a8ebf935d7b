"""Einconv at a small scale: every decomposition of a 3x3 convolution kernel with up to
two inner indices, priced at one parameter budget; a few of them (the named ones and the
front of parameters against flops) trained on scikit-learn's bundled digits.

The second convolution of a small CNN (16 -> 32 channels, 3x3) is replaced by each
chosen decomposition with its bond size fitted to a quarter of the dense layer's
parameters; the table gives test accuracy, parameters, planned flops and training time.
Writes ``einconv_front.png`` (parameters against flops of every connected entry, the
front and the named ones marked) to the folder given (or ``docs/``) when matplotlib is
installed. Needs torch and scikit-learn (the ``test`` extra has them).
"""

import os
import sys
import time

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

import einopt.nn as enn

CIN, COUT, K, SIZE = 16, 32, 3, 8
BUDGET = CIN * COUT * K * K // 4

found = enn.enumerate_decompositions(2, inner=[0, 1, 2])
print(f"2-d kernel, up to 2 inner indices: {len(found)} decompositions, "
      f"{found.count_connected} connected")
# Each connected network gets the largest bond size that keeps to the budget.
priced = enn.price(found.connected, CIN, COUT, K, input_size=SIZE, budget=BUDGET)
best = priced.pick(BUDGET)
print(f"{len(priced)} connected ones fit {BUDGET} parameters; fewest flops: {best}")
# Those that use at least half the budget: their front of parameters against flops.
full = enn.Pricing(p for p in priced if p.parameters >= BUDGET // 2)
front = full.front()
print(f"{len(full)} use at least half of it; their front: {len(front)} entries")

chosen = {p.decomposition.factors: p for p in priced
          if {"cp", "tucker", "depthwise_separable", "spatially_separable"}
          & set(p.decomposition.names)}
for p in [best, *front[:2]]:
    chosen.setdefault(p.decomposition.factors, p)

torch.manual_seed(0)
digits = load_digits()
x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0  # (1797, 1, 8, 8)
y = torch.tensor(digits.target)
order = torch.randperm(len(y))
train, test = order[:1400], order[1400:]


def model(layer: torch.nn.Module) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, CIN, 3, padding=1), torch.nn.ReLU(), layer, torch.nn.ReLU(),
        torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(COUT * 4 * 4, 10))


def fit(net: torch.nn.Module, epochs: int = 6) -> tuple[float, float]:
    """Test accuracy after training, and seconds per epoch."""
    torch.manual_seed(1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in train[torch.randperm(len(train))].split(64):
            opt.zero_grad()
            F.cross_entropy(net(x[batch]), y[batch]).backward()
            opt.step()
    per_epoch = (time.perf_counter() - start) / epochs
    with torch.no_grad():
        accuracy = (net(x[test]).argmax(1) == y[test]).float().mean().item()
    return accuracy, per_epoch


standard = enn.price([found.named("standard")], CIN, COUT, K, 0, input_size=SIZE)[0]
dense = torch.nn.Conv2d(CIN, COUT, K, padding=1, bias=False)
rows = [("dense 3x3 (torch.nn.Conv2d)", standard.parameters, standard.flops,
         *fit(model(dense)))]
for p in chosen.values():
    torch.manual_seed(2)
    layer = p.decomposition.layer(CIN, COUT, K, p.inner_size, padding=1, bias=False)
    assert sum(t.numel() for t in layer.parameters()) == p.parameters <= BUDGET
    label = f"{p.decomposition} [bond {p.inner_size}]"
    rows.append((label, p.parameters, p.flops, *fit(model(layer))))

print(f"\n{'kernel network':44} {'params':>7} {'flops':>9} {'accuracy':>8} {'s/epoch':>8}")
for name, params, flops, accuracy, seconds in rows:
    print(f"{name:44} {params:7d} {flops:9d} {accuracy:8.3f} {seconds:8.3f}")
    assert accuracy > 0.5, name  # every network learns the digits
assert all(r[1] <= BUDGET for r in rows[1:]) and all(r[2] < standard.flops for r in rows[1:])

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib not installed: no figure")
else:
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__),
                                                              "..", "docs")
    os.makedirs(out, exist_ok=True)
    every = enn.price(found.connected, CIN, COUT, K, inner_size=4, input_size=SIZE)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.scatter([p.parameters for p in every], [p.flops for p in every], s=6,
               color="0.7", label=f"{len(every)} connected networks (bond 4)")
    # the front as a staircase: the fewest flops any network has within each budget
    edge = every.front()
    right = max(p.parameters for p in every)
    ax.plot([p.parameters for p in edge] + [right], [p.flops for p in edge] +
            [edge[-1].flops], "o-", ms=4, color="C0", drawstyle="steps-post",
            label=f"Pareto front ({len(edge)})")
    for p in every:
        if p.decomposition.names:
            ax.scatter([p.parameters], [p.flops], color="C3", s=18, zorder=3)
            ax.annotate("/".join(p.decomposition.names), (p.parameters, p.flops),
                        fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set(xscale="log", yscale="log", xlabel="parameters", ylabel="forward flops (planned)",
           title=f"Decompositions of a {K}x{K} kernel, {CIN}->{COUT} channels, {SIZE}x{SIZE}")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = os.path.join(out, "einconv_front.png")
    fig.savefig(path, dpi=110)
    assert os.path.getsize(path) > 1000
    print(f"wrote {path}")
