"""nn.MultiheadAttention tracked through its projections: the module's output is
unchanged, and per-example gradients of every parameter equal autograd's, example by
example, packed and separate projections, batch_first or not, with masks."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import einopt  # noqa: E402
import einopt.torch as et  # noqa: E402

nn = torch.nn
N, L, S, E = 3, 4, 5, 6


class Block(nn.Module):
    def __init__(self, batch_first: bool, cross: bool) -> None:
        super().__init__()
        kw = {"kdim": 3, "vdim": 2} if cross else {}
        self.attn = nn.MultiheadAttention(E, 2, batch_first=batch_first, **kw)
        self.head = nn.Linear(E, 2)
        self.batch_first, self.cross = batch_first, cross

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                pad: torch.Tensor) -> torch.Tensor:
        if not self.batch_first:
            x, k, v = (t.transpose(0, 1) for t in (x, k, v))
        if self.cross:
            out, _ = self.attn(x, k, v, key_padding_mask=pad)
        else:
            mask = torch.triu(torch.ones(L, L, dtype=torch.bool), 1)
            out, _ = self.attn(x, x, x, attn_mask=mask, need_weights=False)
        if not self.batch_first:
            out = out.transpose(0, 1)
        return self.head(torch.tanh(out)).sum(1)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("cross", [False, True])
def test_attention_per_example_gradients(batch_first, cross):
    torch.manual_seed(0)
    model = Block(batch_first, cross).double()
    x = torch.randn(N, L, E, dtype=torch.float64)
    k = torch.randn(N, S, 3 if cross else E, dtype=torch.float64)
    v = torch.randn(N, S, 2 if cross else E, dtype=torch.float64)
    pad = torch.zeros(N, S, dtype=torch.bool)
    pad[0, -2:] = True
    y = torch.randn(N, 2, dtype=torch.float64)
    plain = model(x, k, v, pad)
    with et.track(model, ["grad_batch", "grad_norm2", "grad"]) as t:
        out = model(x, k, v, pad)
        F.mse_loss(out, y).backward()
    torch.testing.assert_close(out, plain)  # the rewritten forward: the same values
    params = dict(model.named_parameters())
    assert all(p in t._tracked for p in params.values())
    for key, p in params.items():
        want = []
        for n in range(N):
            model.zero_grad()
            F.mse_loss(model(x[n:n + 1], k[n:n + 1], v[n:n + 1], pad[n:n + 1]),
                       y[n:n + 1]).backward()
            want.append(p.grad.clone())
        want = torch.stack(want)
        torch.testing.assert_close(t[p]["grad_batch"], want, msg=key)
        torch.testing.assert_close(t[p]["grad_norm2"], want.flatten(1).square().sum(1))
    assert "forward" not in model.attn.__dict__  # the module's own forward again


def test_attention_with_extra_key_value_rows_is_refused():
    with pytest.raises(einopt.EinsumError, match="add_bias_kv"):
        with et.track(nn.MultiheadAttention(4, 2, add_bias_kv=True), ["grad_norm2"]):
            pass
