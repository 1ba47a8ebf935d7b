"""DP-SGD on scikit-learn's bundled digits: a small CNN trained with every example's
gradient clipped and the sum noised, the einsum way (einopt.torch.DPSGD), and the
privacy spent (dp-accounting's Renyi DP accountant).

Batches are Poisson samples (each example in with probability q), as the accountant
assumes. Needs torch, scikit-learn and dp-accounting (the ``test`` extra has them).
"""

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

import einopt.torch as et

torch.manual_seed(0)
digits = load_digits()
x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0  # (1797, 1, 8, 8)
y = torch.tensor(digits.target)
order = torch.randperm(len(y))
train, test = order[:1400], order[1400:]

model = torch.nn.Sequential(
    torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.GroupNorm(2, 8), torch.nn.ReLU(),
    torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
    torch.nn.Flatten(), torch.nn.Linear(16 * 4 * 4, 10))
q, epochs, delta = 64 / len(train), 12, 1e-5
dp = et.DPSGD(model, max_grad_norm=1.0, noise_multiplier=1.0,
              expected_batch_size=64, sample_rate=q)
opt = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.5)

for _ in range(epochs):
    for _ in range(round(1 / q)):
        batch = train[torch.rand(len(train)) < q]
        if len(batch) == 0:
            continue
        opt.zero_grad()
        with dp.step():
            F.cross_entropy(model(x[batch]), y[batch]).backward()
        opt.step()

with torch.no_grad():
    accuracy = (model(x[test]).argmax(1) == y[test]).float().mean().item()
epsilon = dp.epsilon(delta)
print(f"DP-SGD on digits: test accuracy {accuracy:.3f} after {dp.steps} steps, "
      f"(epsilon, delta) = ({epsilon:.2f}, {delta:g}), sigma 1.0, clip 1.0")
assert accuracy > 0.8, accuracy
assert 0 < epsilon < 10
