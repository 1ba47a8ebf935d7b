"""Shared weights: a layer called several times in one forward pass, and parameters tied
across layers, get each example's gradient summed over the uses (the norm of the sum,
not the sum of norms), against torch.func in float64."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
from torch.func import functional_call, grad, vmap  # noqa: E402

import einopt.torch as et  # noqa: E402

N = 4
nn = torch.nn


class Reused(nn.Module):
    """One Linear (and one Conv) applied twice, a norm applied twice."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 3, 3, padding=1)
        self.lin = nn.Linear(6, 6)
        self.norm = nn.LayerNorm(6)
        self.out = nn.Linear(18, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv(torch.tanh(self.conv(x))))
        h = self.norm(torch.tanh(self.lin(h)))
        h = self.norm(torch.tanh(self.lin(h)) + h)
        return self.out(h.flatten(1))


class Tied(nn.Module):
    """A language model whose output head is the token embedding's transpose."""

    def __init__(self, vocab: int = 6, width: int = 4) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.mix = nn.Linear(width, width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.tok.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.mix(self.tok(ids))))


def _case(name):
    torch.manual_seed(0)
    if name == "reused":
        model, x = Reused().double(), torch.randn(N, 3, 6, dtype=torch.float64)
    else:
        model, x = Tied().double(), torch.randint(0, 6, (N, 5))
    out = model(x)
    y = torch.randint(0, out.shape[-1], out.shape[:-1])

    def loss_fn(o, t):
        return F.cross_entropy(o.reshape(-1, o.shape[-1]), t.reshape(-1))

    return model, x, y, loss_fn


def _per_example(model, x, y, loss_fn):
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_n(p, xn, yn):
        return loss_fn(functional_call(model, p, (xn[None],)), yn[None])

    return vmap(grad(loss_n), in_dims=(None, 0, 0))(params, x, y)


@pytest.mark.parametrize("name", ["reused", "tied"])
def test_first_order_sums_over_uses(name):
    model, x, y, loss_fn = _case(name)
    names = ["grad", "grad_batch", "grad_norm2", "grad_sq_sum"]
    with et.track(model, names) as t:
        loss_fn(model(x), y).backward()
    per = _per_example(model, x, y, loss_fn)
    for key, p in model.named_parameters():
        want = per[key]
        torch.testing.assert_close(t[p]["grad_batch"], want)
        torch.testing.assert_close(t[p]["grad"], p.grad)
        torch.testing.assert_close(t[p]["grad_norm2"], want.flatten(1).square().sum(1))
        torch.testing.assert_close(t[p]["grad_sq_sum"], want.square().sum(0))
    assert len(t.records) > len(list(model.parameters())) // 2  # several uses recorded


@pytest.mark.parametrize("name", ["reused", "tied"])
def test_norms_alone_sum_over_uses(name):
    """With norms alone, backward reads a once-used weight's per-example gradients at
    once and lets them go; a weight used several times (or tied) keeps them until every
    use is in: the norm of the sum."""
    model, x, y, loss_fn = _case(name)
    with et.track(model, ["grad_norm2"]) as t:
        loss_fn(model(x), y).backward()
    per = _per_example(model, x, y, loss_fn)
    for key, p in model.named_parameters():
        torch.testing.assert_close(t[p]["grad_norm2"], per[key].flatten(1).square().sum(1))
    kept = [r for r in t.records if r.per_example is not None]
    read = [r for r in t.records if r.reduced is not None]
    assert kept and (read or name == "reused")  # both kinds where they apply


def test_ggn_of_a_reused_layer():
    model, x, y, loss_fn = _case("reused")
    with et.track(model, ["ggn_trace_batch", "ggn_diag"], loss="cross_entropy",
                  convention="batch") as t:
        loss_fn(model(x), y).backward()
    params = {k: v.detach() for k, v in model.named_parameters()}
    for key in ("lin.weight", "conv.weight", "norm.weight"):
        p = dict(model.named_parameters())[key]

        def out(w, key=key):
            return functional_call(model, {**params, key: w}, (x,))

        o = out(params[key])
        jac = torch.autograd.functional.jacobian(out, params[key]).reshape(N, 2, -1)
        pr = torch.softmax(o, -1)
        h = (torch.diag_embed(pr) - pr[:, :, None] * pr[:, None, :]) / N
        per = torch.einsum("nop,noq,nqr->npr", jac, h, jac)
        torch.testing.assert_close(t[p]["ggn_trace_batch"],
                                   torch.diagonal(per, dim1=1, dim2=2).sum(1))
        torch.testing.assert_close(t[p]["ggn_diag"].reshape(-1), torch.diagonal(per.sum(0)))


def test_two_calls_of_the_model_for_one_loss_and_a_training_loop():
    """A model run on two inputs before one backward pass sums both; the next step's
    forward pass starts afresh."""
    model, x, y, loss_fn = _case("reused")
    x2 = torch.randn_like(x)
    with et.track(model, ["grad_norm2"]) as t:
        (loss_fn(model(x), y) + loss_fn(model(x2), y)).backward()
        first = t[model.lin.weight]["grad_norm2"]
        model.zero_grad()
        loss_fn(model(x2), y).backward()
        second = t[model.lin.weight]["grad_norm2"]
    params = {k: v.detach() for k, v in model.named_parameters()}

    def both(p, a, b, yn):
        return (loss_fn(functional_call(model, p, (a[None],)), yn[None])
                + loss_fn(functional_call(model, p, (b[None],)), yn[None]))

    want = vmap(grad(both), in_dims=(None, 0, 0, 0))(params, x, x2, y)["lin.weight"]
    torch.testing.assert_close(first, want.flatten(1).square().sum(1))
    alone = _per_example(model, x2, y, loss_fn)["lin.weight"]
    torch.testing.assert_close(second, alone.flatten(1).square().sum(1))
