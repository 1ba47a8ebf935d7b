"""DPSGD: the clipped, noised gradient equals clipping torch.func's per-example
gradients by hand, flat and per layer, with shared weights, norms and embeddings."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
from torch.func import functional_call, grad, vmap  # noqa: E402

import einopt  # noqa: E402
import einopt.torch as et  # noqa: E402

nn = torch.nn
N = 6


class Small(nn.Module):
    """Convolutions (one reused), GroupNorm, an embedding of a class token, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.mid = nn.Conv2d(4, 4, 3, padding=1)
        self.norm = nn.GroupNorm(2, 4)
        self.tag = nn.Embedding(3, 4)
        self.head = nn.Linear(4 * 36, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        img, tags = x[:, :2], x[:, 2, 0, 0].long()
        h = torch.tanh(self.norm(self.conv(img)))
        h = torch.tanh(self.mid(torch.tanh(self.mid(h))))
        h = h + self.tag(tags)[:, :, None, None]
        return self.head(h.flatten(1))


class Sequence(nn.Module):
    """Linear layers at every position of a sequence (backward forms their per-example
    gradients), a LayerNorm between them, mean over the positions."""

    def __init__(self) -> None:
        super().__init__()
        self.inner, self.norm, self.outer = nn.Linear(4, 16), nn.LayerNorm(16), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer(self.norm(F.gelu(self.inner(x)))).mean(1)


class Wide(nn.Module):
    """A linear layer at every position whose per-example gradients outsize its input
    and output gradient together: DP-SGD keeps those instead, norms use Gram matrices."""

    def __init__(self) -> None:
        super().__init__()
        self.inner, self.wide = nn.Linear(4, 16), nn.Linear(16, 64)
        self.norm, self.outer = nn.LayerNorm(64), nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer(self.norm(F.gelu(self.wide(F.gelu(self.inner(x)))))).mean(1)


def _data(name="small"):
    torch.manual_seed(0)
    if name == "wide":
        return Wide().double(), torch.randn(N, 8, 4, dtype=torch.float64), \
            torch.randint(0, 3, (N,))
    if name == "sequence":
        return Sequence().double(), torch.randn(N, 8, 4, dtype=torch.float64), \
            torch.randint(0, 3, (N,))
    model = Small().double()
    x = torch.randn(N, 3, 6, 6, dtype=torch.float64)
    x[:, 2] = torch.randint(0, 3, (N, 1, 1)).double()
    y = torch.randint(0, 3, (N,))
    return model, x, y


def _per_example(model, x, y):
    """torch.func's per-example gradients of each example's loss, by parameter name."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_n(p, xn, yn):
        return F.cross_entropy(functional_call(model, p, (xn[None],)), yn[None])

    return vmap(grad(loss_n), in_dims=(None, 0, 0))(params, x, y)


def _by_hand(model, x, y, bounds, flat):
    """Clip torch.func's per-example gradients of each example's loss and sum them."""
    per = _per_example(model, x, y)
    norms = {k: g.flatten(1).square().sum(1) for k, g in per.items()}
    if flat:
        total = sum(norms.values()).sqrt()
        c = {k: (bounds[k] / (total + 1e-6)).clamp(max=1) for k in per}
    else:
        c = {k: (bounds[k] / (norms[k].sqrt() + 1e-6)).clamp(max=1) for k in per}
    return {k: torch.einsum("n,n...->...", c[k], g) / N for k, g in per.items()}


@pytest.mark.parametrize("name", ["small", "sequence", "wide"])
@pytest.mark.parametrize("clipping", ["flat", "per_layer"])
@pytest.mark.parametrize("bound", [0.05, 100.0])  # clips every example, or none
def test_clipped_gradients_equal_clipping_by_hand(name, clipping, bound):
    model, x, y = _data(name)
    dp = et.DPSGD(model, max_grad_norm=bound, noise_multiplier=0.0, clipping=clipping)
    with dp.step() as tracker:
        F.cross_entropy(model(x), y).backward()
    if name == "sequence":  # formed in backward, no weight gradient summed there
        assert all(r.per_example is not None for r in tracker.records
                   if isinstance(r.module, nn.Linear))
    formed = [r for r in tracker.records if r.per_example is not None]
    # what is formed lets go of the input and the output gradient (held to the end)
    assert formed and all(r.g is None and r.operands[r.layer.x] is None for r in formed)
    if name == "wide":  # the smaller of the two is kept
        (wide,) = [r for r in tracker.records if r.module is model.wide]
        assert wide.per_example is None and wide.g is not None
    names = [k for k, _ in model.named_parameters()]
    each = bound if clipping == "flat" else bound / math.sqrt(len(names))
    want = _by_hand(model, x, y, dict.fromkeys(names, each), clipping == "flat")
    for key, p in model.named_parameters():
        torch.testing.assert_close(p.grad, want[key])
    if name == "wide":  # norms alone do not form them either (Tracker._from_examples:
        # a batched product writing more than it reads): the Gram form, read in
        # backward, and the input and output gradient let go there
        model.zero_grad()
        with et.track(model, ["grad_norm2"]) as t:
            F.cross_entropy(model(x), y).backward()
        (wide,) = [r for r in t.records if r.module is model.wide]
        assert wide.per_example is None and set(wide.reduced) == {"grad_norm2"}
        assert wide.g is None and wide.operands[wide.layer.x] is None
        want = _per_example(model, x, y)["wide.weight"].flatten(1).square().sum(1)
        torch.testing.assert_close(t[model.wide.weight]["grad_norm2"], want)


def test_no_clipping_gives_the_plain_gradient():
    model, x, y = _data()
    F.cross_entropy(model(x), y).backward()
    plain = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    dp = et.DPSGD(model, max_grad_norm=1e6, noise_multiplier=0.0)
    with dp.step():
        F.cross_entropy(model(x), y).backward()
    for key, p in model.named_parameters():
        torch.testing.assert_close(p.grad, plain[key])


def test_noise_is_gaussian_with_the_set_scale():
    model, x, y = _data()
    dp0 = et.DPSGD(model, max_grad_norm=0.5, noise_multiplier=0.0)
    with dp0.step():
        F.cross_entropy(model(x), y).backward()
    clean = torch.cat([p.grad.flatten() for p in model.parameters()])
    dp = et.DPSGD(model, max_grad_norm=0.5, noise_multiplier=2.0,
                  generator=torch.Generator().manual_seed(1))
    with dp.step():
        F.cross_entropy(model(x), y).backward()
    noisy = torch.cat([p.grad.flatten() for p in model.parameters()])
    noise = (noisy - clean) * N / (0.5 * 2.0)  # standard normal draws
    assert noise.numel() > 500
    assert abs(noise.mean().item()) < 0.15 and abs(noise.std().item() - 1) < 0.15


def test_epsilon_from_the_accountant():
    pytest.importorskip("dp_accounting")
    model, x, y = _data()
    dp = et.DPSGD(model, max_grad_norm=1.0, noise_multiplier=1.1, sample_rate=0.01)
    for _ in range(3):
        model.zero_grad()
        with dp.step():
            F.cross_entropy(model(x), y).backward()
    eps = dp.epsilon(1e-5)
    assert dp.steps == 3 and 0 < eps < 10
    more = et.DPSGD(model, max_grad_norm=1.0, noise_multiplier=1.1, sample_rate=0.01)
    more.steps = 300
    assert more.epsilon(1e-5) > eps


def test_errors():
    model, _, _ = _data()
    with pytest.raises(einopt.EinsumError, match="clipping"):
        et.DPSGD(model, 1.0, 1.0, clipping="nope")
    with pytest.raises(einopt.EinsumError, match="one positive bound per trainable"):
        et.DPSGD(model, [1.0, 2.0], 1.0, clipping="per_layer")
    with pytest.raises(einopt.EinsumError, match="sample_rate"):
        et.DPSGD(model, 1.0, 1.0).epsilon(1e-5)
    with pytest.raises(einopt.EinsumError, match="BatchNorm"):
        et.DPSGD(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)), 1.0, 1.0)



@pytest.mark.parametrize("channels,size,formed", [(8, 5, True), (4, 2, False)])
def test_a_convolution_forms_per_example_gradients_up_to_twice_what_it_reads(
        channels, size, formed):
    """Under DP-SGD a convolution holds its per-example gradients where they are at most
    twice its input and output gradient (8 channels on 5x5: 1.44x; on 2x2: 4.5x, kept
    as input and output gradient), and the step equals clipping by hand either way."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.Tanh(),
                          nn.Flatten(), nn.Linear(channels * size * size, 3)).double()
    x = torch.randn(N, channels, size, size, dtype=torch.float64)
    y = torch.randint(0, 3, (N,))
    dp = et.DPSGD(model, max_grad_norm=0.05, noise_multiplier=0.0)
    with dp.step() as tracker:
        F.cross_entropy(model(x), y).backward()
    assert (tracker.records[0].per_example is not None) == formed
    want = _by_hand(model, x, y, dict.fromkeys(dict(model.named_parameters()), 0.05), True)
    for key, p in model.named_parameters():
        torch.testing.assert_close(p.grad, want[key])
