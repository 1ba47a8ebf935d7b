"""RNN, LSTM and GRU tracked over their time steps: the output is unchanged, and the
per-example gradients of every weight equal autograd's, example by example (layers,
directions, projections, batch_first, an initial state)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import einopt  # noqa: E402
import einopt.torch as et  # noqa: E402

nn = torch.nn
N, T, IN, H = 3, 4, 3, 5


class Seq(nn.Module):
    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn
        width = rnn.hidden_size if not getattr(rnn, "proj_size", 0) else rnn.proj_size
        self.head = nn.Linear(width * (2 if rnn.bidirectional else 1), 2)

    def forward(self, x: torch.Tensor, h0: object = None) -> torch.Tensor:
        out, _ = self.rnn(x, h0) if h0 is not None else self.rnn(x)
        if not self.rnn.batch_first:
            out = out.transpose(0, 1)
        return self.head(out).mean(1)


CASES = {
    "rnn-tanh": lambda: nn.RNN(IN, H, batch_first=True),
    "rnn-relu-2-layers": lambda: nn.RNN(IN, H, num_layers=2, nonlinearity="relu"),
    "lstm": lambda: nn.LSTM(IN, H, batch_first=True),
    "lstm-bidirectional-2-layers": lambda: nn.LSTM(IN, H, num_layers=2, bidirectional=True,
                                                   batch_first=True),
    "lstm-projection": lambda: nn.LSTM(IN, H, proj_size=2, batch_first=True),
    "gru-bidirectional": lambda: nn.GRU(IN, H, bidirectional=True, bias=True),
    "gru-no-bias": lambda: nn.GRU(IN, H, bias=False, batch_first=True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_recurrent_per_example_gradients(name):
    torch.manual_seed(0)
    model = Seq(CASES[name]()).double()
    x = torch.randn(N, T, IN, dtype=torch.float64)
    if not model.rnn.batch_first:
        x = x.transpose(0, 1).contiguous()
    y = torch.randn(N, 2, dtype=torch.float64)
    plain = model(x)
    with et.track(model, ["grad_batch", "grad_norm2"]) as t:
        out = model(x)
        F.mse_loss(out, y).backward()
    torch.testing.assert_close(out, plain)
    assert "forward" not in model.rnn.__dict__
    batch_axis = 0 if model.rnn.batch_first else 1
    for key, p in model.named_parameters():
        want = []
        for n in range(N):
            model.zero_grad()
            F.mse_loss(model(x.narrow(batch_axis, n, 1)), y[n:n + 1]).backward()
            want.append(p.grad.clone())
        want = torch.stack(want)
        torch.testing.assert_close(t[p]["grad_batch"], want, msg=key)
        torch.testing.assert_close(t[p]["grad_norm2"], want.flatten(1).square().sum(1))


def test_initial_state_and_refusals():
    torch.manual_seed(0)
    model = Seq(nn.GRU(IN, H, batch_first=True)).double()
    x = torch.randn(N, T, IN, dtype=torch.float64)
    h0 = torch.randn(1, N, H, dtype=torch.float64)
    with et.track(model, ["grad_norm2"]) as t:
        out = model(x, h0)
        out.sum().backward()
    torch.testing.assert_close(out, model(x, h0))
    assert t[model.rnn.weight_hh_l0]["grad_norm2"].shape == (N,)
    with pytest.raises(einopt.EinsumError, match="second-order"):
        with et.track(model, ["ggn_trace"], loss="mse"):
            pass
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, [T] * N, batch_first=True)
    with pytest.raises(einopt.EinsumError, match="PackedSequence"):
        with et.track(model, ["grad_norm2"]):
            model.rnn(packed)
