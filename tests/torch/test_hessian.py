"""Exact Hessian quantities: each layer's output Hessian (the loss's curvature carried
back plus the model's own, by double backward) between the weight's Jacobians, against
torch.autograd.functional.hessian, on a small CNN whose convolutions feed a GroupNorm
(where the GGN differs from the Hessian)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
from torch.func import functional_call  # noqa: E402

import einopt  # noqa: E402
import einopt.torch as et  # noqa: E402

N = 3
nn = torch.nn


def _cnn():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.Tanh(),
                          nn.Conv2d(4, 3, 3, stride=2), nn.Softplus(), nn.Flatten(),
                          nn.Linear(3 * 2 * 2, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model, torch.randn(N, 2, 6, 6, dtype=torch.float64)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_exact_hessian_of_every_parameter(loss):
    model, x = _cnn()
    if loss == "mse":
        y, fn = torch.randn(N, 3, dtype=torch.float64), F.mse_loss
    else:
        y, fn = torch.randint(0, 3, (N,)), F.cross_entropy
    names = ["hessian_diag", "hessian_trace", "hessian_trace_batch", "ggn_diag"]
    with et.track(model, names, loss=loss) as t:
        fn(model(x), y).backward()
    params = {k: v.detach() for k, v in model.named_parameters()}
    differs = 0
    for key, p in model.named_parameters():
        def loss_of(w, xs=x, ys=y, key=key):
            return fn(functional_call(model, {**params, key: w}, (xs,)), ys)

        hess = torch.autograd.functional.hessian(loss_of, params[key]).reshape(p.numel(), -1)
        got = t[p]
        torch.testing.assert_close(got["hessian_diag"].reshape(-1), hess.diagonal())
        torch.testing.assert_close(got["hessian_trace"], hess.trace())
        per = torch.stack([torch.autograd.functional.hessian(
            lambda w, k=k, key=key: loss_of(w, x[k:k + 1], y[k:k + 1], key),
            params[key]).reshape(p.numel(), -1).trace() for k in range(N)])
        torch.testing.assert_close(got["hessian_trace_batch"], per)  # each example's loss
        differs += int(not torch.allclose(got["ggn_diag"].reshape(-1), hess.diagonal()))
    assert differs >= 4  # the GGN is not the Hessian before the nonlinearities


def test_exact_hessian_of_a_reused_layer_is_refused():
    lin = nn.Linear(2, 2)
    model = nn.Sequential(lin, nn.Tanh(), lin)
    with et.track(model, ["hessian_diag"], loss="mse") as t:
        F.mse_loss(model(torch.randn(3, 2)), torch.randn(3, 2)).backward()
    with pytest.raises(einopt.EinsumError, match="used several times"):
        t[lin.weight]
