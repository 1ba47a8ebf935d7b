"""torch: autograd equals torch.einsum's, and torch.compile / torch.func trace through."""

from __future__ import annotations

import numpy as np
import pytest

import einopt

from cases import CASE_IDS, CASES, ascii_equation, make_operands

torch = pytest.importorskip("torch")

# Cases torch.einsum can evaluate (the reference): non-empty operands.
GRAD_CASES = [c for c in CASES if c.nops >= 1 and all(0 not in s for s in c.shapes)]


def _grads(fn, tensors):
    leaves = [t.clone().requires_grad_(True) for t in tensors]
    out = fn(*leaves)
    weight = torch.linspace(-1.0, 1.0, out.numel(), dtype=out.dtype).reshape(out.shape)
    (out * weight).sum().backward()
    return out.detach(), [leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
                          for leaf in leaves]


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c.label for c in GRAD_CASES])
def test_gradients_equal_torch_einsums(case):
    eq = ascii_equation(case.eq)
    tensors = [torch.from_numpy(np.array(x)) for x in
               make_operands(case.shapes, np.float64, seed=len(case.eq))]
    got, got_grads = _grads(lambda *t: einopt.einsum(case.eq, *t), tensors)
    want, want_grads = _grads(lambda *t: torch.einsum(eq, *t), tensors)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-9)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-9)


def test_result_keeps_dtype_and_device():
    a = torch.randn(3, 4, dtype=torch.float32)
    b = torch.randn(4, 5, dtype=torch.float32)
    r = einopt.einsum("ij,jk->ik", a, b)
    assert r.dtype == torch.float32 and r.device == a.device
    assert einopt.einsum("ij,jk->ik", a, b.double()).dtype == torch.float64  # torch's rule
    assert einopt.einsum("ij,->ij", a, 2.0).dtype == torch.float32  # scalars are weak


def test_sum_of_squares_kernel():
    b, a = torch.randn(16, 32, dtype=torch.float64), torch.randn(16, 8, dtype=torch.float64)
    got = einopt.einsum("ni,ni,nj,nj->n", b, b, a, a)
    torch.testing.assert_close(got, (b * b).sum(1) * (a * a).sum(1))
    c = torch.randn(16, 32, dtype=torch.complex128)  # no conjugation, as in einsum
    torch.testing.assert_close(einopt.einsum("ni,ni->n", c, c), (c * c).sum(1))


def test_compile_has_no_graph_break():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    einopt.einsum("ij,jk,kl->il", a, b, b.T)  # plan once, outside

    @torch.compile(fullgraph=True, backend="eager")
    def f(x, y):
        return einopt.einsum("ij,jk,kl->il", x, y, y.T)

    torch.testing.assert_close(f(a, b), a @ b @ b.T)


def test_func_vmap_and_grad():
    from torch.func import grad, vmap

    w = torch.randn(5, 3, dtype=torch.float64)
    x = torch.randn(7, 5, dtype=torch.float64)
    per_example = vmap(lambda xi: einopt.einsum("i,ij->j", xi, w))(x)
    torch.testing.assert_close(per_example, x @ w)
    g = grad(lambda w_: einopt.einsum("ni,ij->", x, w_))(w)
    torch.testing.assert_close(g, x.sum(0)[:, None].expand(5, 3))
    m = torch.randn(5, 5, dtype=torch.float64)
    quadratic = vmap(grad(lambda xi: einopt.einsum("i,ij,j->", xi, m, xi)))(x)
    torch.testing.assert_close(quadratic, x @ (m + m.T))


def test_out_and_errors():
    a = torch.randn(3, 4)
    out = torch.empty(3)
    assert einopt.einsum("ij->i", a, out=out) is out
    torch.testing.assert_close(out, a.sum(1))
    with pytest.raises(einopt.EinsumError, match="bool"):
        einopt.einsum("ij,jk->ik", a > 0, a.T > 0)
    with pytest.raises(einopt.EinsumError, match="out must be a torch tensor"):
        einopt.einsum("ij->i", a, out=np.empty(3))


@pytest.mark.parametrize("case", CASES[:20], ids=CASE_IDS[:20])
def test_plan_called_on_tensors(case):
    ops = make_operands(case.shapes, np.float64, seed=3)
    p = einopt.plan(case.eq, *case.shapes)
    got = p(*[torch.from_numpy(np.array(x)) for x in ops])
    np.testing.assert_allclose(got.numpy(), np.einsum(case.eq, *ops), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("contract", [2, 8, 100, 9000])
def test_batched_inner_product_forms(contract):
    a = torch.randn(6, contract, dtype=torch.float64)
    b = torch.randn(6, contract, dtype=torch.float64)
    torch.testing.assert_close(einopt.einsum("ni,ni->n", a, b), (a * b).sum(1))
    torch.testing.assert_close(einopt.einsum("ni,ni->n", a, a), (a * a).sum(1))
    ai = torch.randint(-3, 4, (6, contract))
    assert torch.equal(einopt.einsum("ni,ni->n", ai, ai), (ai * ai).sum(1))


def test_one_tensor_prepared_twice_stays_one(monkeypatch):
    """Both operands of ``x, x`` drop their size-1 axis; the kernel still sees one tensor
    and takes its norm (reading it once)."""
    calls = []
    real = torch.linalg.vector_norm
    monkeypatch.setattr(torch.linalg, "vector_norm",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    x = torch.randn(6, 1, 40000, dtype=torch.float64)
    einopt.clear_caches()
    got = einopt.einsum("ngi,ngi->n", x, x)
    torch.testing.assert_close(got, (x * x).sum((1, 2)))
    assert calls
    y = x.clone()
    calls.clear()
    torch.testing.assert_close(einopt.einsum("ngi,ngi->n", x, y), (x * y).sum((1, 2)))
    assert not calls


@pytest.mark.parametrize(("size", "pads", "stride"), [
    (16, (1, 0), 2),   # the stride leaves the high side's extra row unread: no copy
    (5, (1, 0), 1),    # it would add an output row: padded explicitly
    (9, (2, 1), 2),
    (8, (0, 1), 2),    # more on the high side: padded explicitly
])
def test_conv_kernels_with_unequal_pads_equal_explicit_padding(size, pads, stride):
    from einopt.backends.torch import TorchBackend

    functional = torch.nn.functional
    gen = torch.Generator().manual_seed(size)
    x = torch.randn(2, 4, size, size, dtype=torch.float64, generator=gen)
    w = torch.randn(6, 4, 3, 3, dtype=torch.float64, generator=gen)
    both = (pads, pads)
    widths = (*pads, *pads)
    y = TorchBackend.conv(x, w, both, (stride, stride), (1, 1), 1)
    xp = functional.pad(x, widths).requires_grad_(True)
    ref = functional.conv2d(xp, w, stride=stride)
    torch.testing.assert_close(y, ref)
    g = torch.randn(ref.shape, dtype=torch.float64, generator=gen)
    (gw,) = torch.autograd.grad(functional.conv2d(xp, w.requires_grad_(True), stride=stride), w,
                                grad_outputs=g)
    got = TorchBackend.conv_weight(x, g, tuple(w.shape), both, (stride, stride), (1, 1), 1)
    torch.testing.assert_close(got, gw)


def test_conv_weight_kernel_choice():
    """torch's grouped weight-gradient kernel except for a few input channels per group
    feeding many output channels at stride 1 (a first layer's per-example gradients)."""
    from einopt.backends.torch import TorchBackend

    be = TorchBackend()
    per_example = ((1, 32 * 3, 32, 32), (1, 32 * 32, 32, 32))  # 32 examples, 3 -> 32
    assert not be.takes_conv_weight(*per_example, (1, 1), 32)
    assert be.takes_conv_weight(*per_example, (2, 2), 32)  # strided
    assert be.takes_conv_weight((1, 32 * 8, 32, 32), (1, 32 * 32, 32, 32), (1, 1), 32)
    assert be.takes_conv_weight((1, 32 * 32, 8, 8), (1, 32 * 32, 8, 8), (1, 1), 32 * 32)
    assert be.takes_conv_weight((32, 3, 32, 32), (32, 32, 32, 32), (1, 1), 1)  # ungrouped


@pytest.mark.parametrize("channels,groups", [(3, 1), (16, 1), (16, 4)])
def test_per_example_conv_gradients_either_way_equal_torch_func(channels, groups):
    """A 3-channel first convolution's per-example weight gradients (the window view and
    batched product) and wider ones' (torch's grouped kernel) equal torch.func's."""
    from torch.func import functional_call, grad, vmap

    import einopt.torch as et

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(channels, 8 * groups, 3, padding=1, groups=groups),
        torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(8 * groups * 36, 2)).double()
    x = torch.randn(4, channels, 6, 6, dtype=torch.float64)
    y = torch.randint(0, 2, (4,))
    with et.track(model, ["grad_batch"]) as t:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_n(p, xn, yn):
        out = functional_call(model, p, (xn[None],))
        return torch.nn.functional.cross_entropy(out, yn[None])

    per = vmap(grad(loss_n), in_dims=(None, 0, 0))(params, x, y)
    torch.testing.assert_close(t[model[0].weight]["grad_batch"], per["0.weight"])
