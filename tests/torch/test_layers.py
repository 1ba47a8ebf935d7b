"""Every parameterized torch.nn layer :mod:`einopt.torch.layers` writes as an einsum:
per-example gradients, their squared norms and sums of squares equal torch.func's, and
the GGN's per-example traces equal autograd's, in float64."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
from torch.func import functional_call, grad, vmap  # noqa: E402

import einopt  # noqa: E402
import einopt.torch as et  # noqa: E402

N = 4
nn = torch.nn


class Tokens(nn.Module):
    """A tiny language model: token and position embeddings, a norm, a head."""

    def __init__(self, vocab: int = 7, width: int = 5, positions: int = 3,
                 norm: type = nn.LayerNorm) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, width, padding_idx=0)
        self.pos = nn.Embedding(positions, width)
        self.norm = norm(width)
        self.head = nn.Linear(width, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1]).expand_as(ids)
        return self.head(torch.tanh(self.norm(self.tok(ids) + self.pos(pos))))


def _models():
    """name -> (model, input, target shape or classes); outputs are (N, ..., C)."""
    torch.manual_seed(0)
    ids = torch.randint(0, 7, (N, 3))
    ids[0, 0] = 0  # the padding row gets no gradient
    img = torch.randn(N, 2, 5, 5, dtype=torch.float64)
    seq = torch.randn(N, 2, 6, dtype=torch.float64)

    def head(c: int, size: int) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(c * size, 3))

    return {
        "conv-circular": (nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"),
                                        nn.Tanh(), head(3, 25)), img),
        "conv-reflect": (nn.Sequential(nn.Conv1d(2, 2, 3, padding=2, padding_mode="reflect",
                                                 groups=2), nn.Tanh(), head(2, 8)), seq),
        "conv-replicate": (nn.Sequential(nn.Conv2d(2, 2, (3, 2), padding=(1, 2),
                                                   padding_mode="replicate", stride=2),
                                         nn.Tanh(), head(2, 12)), img),
        "conv-transpose-1d": (nn.Sequential(nn.ConvTranspose1d(2, 3, 3, stride=2, padding=1,
                                                               output_padding=1),
                                            nn.Tanh(), head(3, 12)), seq),
        "conv-transpose-2d": (nn.Sequential(nn.ConvTranspose2d(2, 4, 2, stride=2, groups=2,
                                                               dilation=1),
                                            nn.Tanh(), head(4, 100)), img),
        "group-norm": (nn.Sequential(nn.Conv2d(2, 4, 3), nn.GroupNorm(2, 4), nn.Tanh(),
                                     head(4, 9)), img),
        "batch-norm-eval": (nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.Tanh(),
                                          head(4, 9)).eval(), img),
        "instance-norm": (nn.Sequential(nn.Conv1d(2, 3, 3), nn.InstanceNorm1d(3, affine=True),
                                        nn.Tanh(), head(3, 4)), seq),
        "layer-norm-2d": (nn.Sequential(nn.LayerNorm((2, 6)), nn.Tanh(), head(2, 6)), seq),
        "tokens-layer-norm": (Tokens(), ids),
        "tokens-rms-norm": (Tokens(norm=nn.RMSNorm), ids),
    }


NAMES = sorted(_models())


def _setup(name):
    model, x = _models()[name]
    model = model.double()
    if name == "batch-norm-eval":  # running statistics that are not the defaults
        bn = model[1]
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    with torch.no_grad():
        for p in model.parameters():  # norms' weights away from 1, biases away from 0
            p.add_(0.3 * torch.randn_like(p))
    out = model(x)
    y = torch.randint(0, out.shape[-1], out.shape[:-1])

    def loss_fn(o, t):  # cross entropy over every position, classes last
        return F.cross_entropy(o.reshape(-1, o.shape[-1]), t.reshape(-1))

    return model, x, y, loss_fn


@pytest.mark.parametrize("name", NAMES)
def test_per_example_gradients_of_every_layer(name):
    model, x, y, loss_fn = _setup(name)
    names = ["grad", "grad_batch", "grad_norm2", "grad_sq_sum"]
    with et.track(model, names) as t:
        loss_fn(model(x), y).backward()
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_n(p, xn, yn):  # each example's own loss
        return loss_fn(functional_call(model, p, (xn[None],)), yn[None])

    per = vmap(grad(loss_n), in_dims=(None, 0, 0))(params, x, y)
    assert {k for k, _ in model.named_parameters()} == set(per)
    for key, p in model.named_parameters():
        got, want = t[p], per[key]
        torch.testing.assert_close(got["grad_batch"], want)
        torch.testing.assert_close(got["grad"], p.grad)
        torch.testing.assert_close(got["grad_norm2"], want.flatten(1).square().sum(1))
        torch.testing.assert_close(got["grad_sq_sum"], want.square().sum(0))


@pytest.mark.parametrize("name", ["group-norm", "conv-transpose-1d", "tokens-layer-norm",
                                  "conv-circular"])
def test_ggn_traces_of_every_layer(name):
    """Per-example GGN traces against J^T H J from autograd, with (N, ..., C) logits."""
    model, x, y, loss_fn = _setup(name)
    with et.track(model, ["ggn_trace_batch", "ggn_diag"], loss="cross_entropy",
                  convention="batch") as t:
        loss_fn(model(x), y).backward()
    params = {k: v.detach() for k, v in model.named_parameters()}
    for key, p in model.named_parameters():
        def out(w, key=key):
            return functional_call(model, {**params, key: w}, (x,))

        o = out(params[key])
        k = o.shape[-1]
        jac = torch.autograd.functional.jacobian(out, params[key]).reshape(N, -1, k, p.numel())
        pr = torch.softmax(o.reshape(N, -1, k), -1)
        h = (torch.diag_embed(pr) - pr[..., :, None] * pr[..., None, :]) / pr[..., 0].numel()
        per = torch.einsum("ntop,ntoq,ntqr->npr", jac, h, jac)
        torch.testing.assert_close(t[p]["ggn_trace_batch"],
                                   torch.diagonal(per, dim1=1, dim2=2).sum(1))
        torch.testing.assert_close(t[p]["ggn_diag"].reshape(-1),
                                   torch.diagonal(per.sum(0)))


@pytest.mark.parametrize("module,match", [
    (nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)), "'1'.*BatchNorm in training mode"),
    (nn.Sequential(nn.Linear(2, 2), nn.PReLU()), "'1'.*PReLU holds parameters"),
    (nn.Bilinear(2, 2, 2), "Bilinear holds parameters"),
    (nn.Embedding(5, 2, max_norm=1.0), "max_norm"),
])
def test_untrackable_modules_raise_when_tracking_starts(module, match):
    with pytest.raises(einopt.EinsumError, match=match):
        with et.track(module, ["grad_norm2"]):
            pass


def test_frozen_and_eval_modules_are_accepted():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.LSTM(3, 2))
    model[2].requires_grad_(False)
    model[1].eval()
    with et.track(model, ["grad_norm2"]) as t:
        out, _ = model[2](model[1](model[0](torch.randn(4, 2)))[None])
        out.sum().backward()
    assert t[model[1].weight]["grad_norm2"].shape == (4,)
    with pytest.raises(einopt.EinsumError, match="no tracked layer"):
        t[model[2].weight_ih_l0]


def test_untracked_parameter_raises_without_computing(monkeypatch):
    model = nn.Linear(2, 2)
    with et.track(model, ["grad_norm2"]) as t:
        model(torch.randn(3, 2)).sum().backward()

    def fail(self):
        raise AssertionError("computed")

    monkeypatch.setattr(et.Tracker, "_compute", fail)
    with pytest.raises(einopt.EinsumError, match="no tracked layer"):
        t[nn.Parameter(torch.zeros(1))]


@pytest.mark.parametrize("mode,form", [("sum", "2d"), ("mean", "2d"), ("sum", "offsets"),
                                       ("mean", "offsets"), ("sum", "weighted")])
def test_embedding_bag(mode, form):
    """Bags of rows (fixed size, or by offsets, or weighted per entry: torch weights
    them in mode='sum' only), padding rows left out: per-example gradients against
    autograd, bag by bag."""
    torch.manual_seed(0)
    bag = nn.EmbeddingBag(6, 3, mode=mode, padding_idx=1).double()
    head = nn.Linear(3, 2).double()
    model = nn.ModuleDict({"bag": bag, "head": head})
    ids = torch.randint(0, 6, (10,))
    ids[2] = 1
    offsets = torch.tensor([0, 3, 4, 7])
    weights = torch.rand(10, dtype=torch.float64)

    def run(lo=0, hi=4):
        if form == "2d":
            return head(bag(ids[:8].reshape(4, 2)[lo:hi]))
        ends = torch.cat([offsets[1:], torch.tensor([10])])
        sel = torch.cat([torch.arange(offsets[k], ends[k]) for k in range(lo, hi)])
        starts = offsets[lo:hi] - offsets[lo]
        w = weights[sel] if form == "weighted" else None
        return head(bag(ids[sel], starts, per_sample_weights=w))

    target = torch.randn(4, 2, dtype=torch.float64)
    with et.track(model, ["grad_batch"], loss_reduction="sum") as t:
        F.mse_loss(run(), target, reduction="sum").backward()
    for p in (bag.weight, head.weight):
        want = []
        for n in range(4):
            model.zero_grad()
            F.mse_loss(run(n, n + 1), target[n:n + 1], reduction="sum").backward()
            want.append(p.grad.clone())
        torch.testing.assert_close(t[p]["grad_batch"], torch.stack(want))
