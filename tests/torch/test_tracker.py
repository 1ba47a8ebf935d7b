"""einopt.torch.track: every quantity equals torch autograd / torch.func on small
networks of every supported layer type."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
from torch.func import functional_call, grad, vmap  # noqa: E402

import einopt  # noqa: E402
import einopt.torch as et  # noqa: E402
from einopt.nn import EinsumLayer  # noqa: E402

N = 5


def _models():
    """Fresh models (parameters and gradients are per test) with their input shapes."""
    return {
        "linear": (torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(),
                                       torch.nn.Linear(3, 2)), (N, 4)),
        "linear-seq": (torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Flatten(),
                                           torch.nn.Linear(6, 2)), (N, 2, 4)),
        "conv1d": (torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3, stride=2, padding=1),
                                       torch.nn.ReLU(), torch.nn.Flatten(),
                                       torch.nn.Linear(3 * 4, 2)), (N, 2, 7)),
        "conv2d": (torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=2, dilation=2,
                                                       groups=2),
                                       torch.nn.Flatten(), torch.nn.Linear(4 * 5 * 5, 2)),
                   (N, 4, 5, 5)),
        "conv3d": (torch.nn.Sequential(torch.nn.Conv3d(2, 2, 2, padding="same"),
                                       torch.nn.Flatten(), torch.nn.Linear(2 * 27, 2)),
                   (N, 2, 3, 3, 3)),
        "einsum": (torch.nn.Sequential(EinsumLayer("nti,oi->nto", (3, 4), bias=True),
                                       torch.nn.Flatten(), torch.nn.Linear(6, 2)), (N, 2, 4)),
    }


NAMES = sorted(_models())
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


def _setup(name, loss):
    torch.manual_seed(0)
    model, shape = _models()[name]
    model = model.double()
    x = torch.randn(shape, dtype=torch.float64)
    if loss == "mse":
        y = torch.randn(N, 2, dtype=torch.float64)
        fn = F.mse_loss
    else:
        y = torch.randint(0, 2, (N,))
        fn = F.cross_entropy
    return model, x, y, fn


@pytest.mark.parametrize("convention", ["example", "batch"])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("name", NAMES)
def test_first_order_quantities(name, loss, convention):
    model, x, y, fn = _setup(name, loss)
    names = ["grad", "grad_batch", "grad_norm2", "variance"]
    fn(model(x), y).backward()  # untracked: torch's own gradients
    plain = {k: v.grad.clone() for k, v in model.named_parameters()}
    model.zero_grad()
    with et.track(model, names, convention=convention) as t:
        fn(model(x), y).backward()
    for key, p in model.named_parameters():  # formed from the per-example gradients
        torch.testing.assert_close(p.grad, plain[key])
    params = {k: v.detach() for k, v in model.named_parameters()}

    share = N if convention == "batch" else 1

    def loss_n(p, xn, yn):  # the n-th example's loss, or its share of the mean loss
        return fn(functional_call(model, p, (xn[None],)), yn[None]) / share

    per = vmap(grad(loss_n), in_dims=(None, 0, 0))(params, x, y)
    for key, p in model.named_parameters():
        got, want = t[p], per[key]
        torch.testing.assert_close(got["grad_batch"], want)
        torch.testing.assert_close(got["grad"], p.grad)  # of the loss backpropagated
        torch.testing.assert_close(got["grad_norm2"], want.flatten(1).square().sum(1))
        torch.testing.assert_close(got["variance"], want.square().sum(0))


@pytest.mark.parametrize("names", [["grad_norm2"], ["grad_norm2", "variance", "grad"]])
@pytest.mark.parametrize("convention", ["example", "batch"])
@pytest.mark.parametrize("name", NAMES)
def test_quantities_read_in_backward_let_go_of_input_and_output_gradient(
        name, convention, names):
    """Without ``grad_batch``, backward reads each layer's quantities as its output
    gradient arrives and lets go of that gradient and of the input; the values are
    torch.func's."""
    model, x, y, fn = _setup(name, "cross_entropy")
    with et.track(model, names, convention=convention) as t:
        fn(model(x), y).backward()
    layers = [r for r in t.records if r.entries is None]  # (not a rewritten module's)
    assert layers
    for rec in layers:  # read in backward, formed (rewired) there or not
        assert rec.reduced is not None and len(rec.reduced) == len(names)
        assert rec.g is None and rec.operands[rec.layer.x] is None
    params = {k: v.detach() for k, v in model.named_parameters()}
    share = N if convention == "batch" else 1

    def loss_n(p, xn, yn):
        return fn(functional_call(model, p, (xn[None],)), yn[None]) / share

    per = vmap(grad(loss_n), in_dims=(None, 0, 0))(params, x, y)
    for key, p in model.named_parameters():
        want = {"grad_norm2": per[key].flatten(1).square().sum(1),
                "variance": per[key].square().sum(0), "grad": p.grad}
        for q in names:
            torch.testing.assert_close(t[p][q], want[q])


def test_a_reused_layer_keeps_its_input_and_output_gradient_until_read():
    """A weight used twice: its quantities are those of the summed per-example gradient,
    so backward does not read them from one use."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 4).double()
    model = torch.nn.Sequential(lin, torch.nn.Tanh(), lin)
    x = torch.randn(N, 4, dtype=torch.float64)
    y = torch.randint(0, 4, (N,))
    with et.track(model, ["grad_norm2"]) as t:
        F.cross_entropy(model(x), y).backward()
    assert all(r.reduced is None and r.g is not None for r in t.records)
    got = t[lin.weight]["grad_norm2"]
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_n(p, xn, yn):
        return F.cross_entropy(functional_call(model, p, (xn[None],)), yn[None])

    per = vmap(grad(loss_n), in_dims=(None, 0, 0))(params, x, y)
    torch.testing.assert_close(got, per["0.weight"].flatten(1).square().sum(1))


def _formed(rec):
    """Whether backward formed the record's per-example gradients (kept, or read into
    the tracked quantities at once): its layer was rewired to do so."""
    return rec.reduce is not None


def test_a_linear_layer_over_positions_forms_its_per_example_gradients():
    """On ``(N, T, D)`` inputs the per-example weight gradients cost what the weight's
    gradient costs, and a norm's own plan (two ``T x T`` Gram matrices per example)
    adds to it: backward forms them, biases read their summed output gradients, and
    every norm equals torch.func's."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.GELU(),
                                torch.nn.Linear(64, 16)).double()
    x = torch.randn(3, 32, 16, dtype=torch.float64)
    y = torch.randn(3, 32, 16, dtype=torch.float64)
    with et.track(model, ["grad_norm2"]) as t:
        F.mse_loss(model(x), y).backward()
    assert all(_formed(r) for r in t.records)
    assert all(r.per_example is None for r in t.records)  # read in backward, let go
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_n(p, xn, yn):
        return F.mse_loss(functional_call(model, p, (xn[None],)), yn[None])

    per = vmap(grad(loss_n), in_dims=(None, 0, 0))(params, x, y)
    for key, p in model.named_parameters():
        torch.testing.assert_close(t[p]["grad_norm2"], per[key].flatten(1).square().sum(1))


@pytest.mark.parametrize("fan_in,fan_out,positions,formed",
                         [(4, 4, 8, True), (8, 8, 4, False), (16, 64, 4, False)])
def test_a_linear_forms_only_where_its_per_example_gradients_are_smaller(
        fan_in, fan_out, positions, formed):
    """Per example, ``fan_in * fan_out`` gradient entries against the input's and output
    gradient's ``positions * (fan_in + fan_out)``: formed where fewer (16 < 64), not at
    a tie (64 = 64) nor where more (1024 > 320); the norms are torch.func's either way."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(fan_in, fan_out)).double()
    x = torch.randn(3, positions, fan_in, dtype=torch.float64)
    with et.track(model, ["grad_norm2"]) as t:
        model(x).square().mean().backward()
    assert _formed(t.records[0]) == formed
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_n(p, xn):
        return functional_call(model, p, (xn[None],)).square().mean()  # its own loss

    per = vmap(grad(loss_n), in_dims=(None, 0))(params, x)
    for key, p in model.named_parameters():
        torch.testing.assert_close(t[p]["grad_norm2"], per[key].flatten(1).square().sum(1))


@pytest.mark.parametrize("norm", ["layer", "group"])
@pytest.mark.parametrize("names", [["grad_norm2"], ["grad_batch", "grad"],
                                   ["grad_norm2", "ggn_trace_batch"]])
def test_a_norm_layer_forms_its_per_example_gradients_in_backward(norm, names):
    """With first-order quantities only, a norm's affine weight and bias form their
    per-example gradients as the output gradient arrives and let go of it and of the
    input (normalized only then); with second-order ones too, both are kept. Either
    way every quantity equals torch.func's."""
    torch.manual_seed(0)
    if norm == "layer":
        model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.LayerNorm(6),
                                    torch.nn.Tanh(), torch.nn.Flatten(),
                                    torch.nn.Linear(18, 2)).double()
        x = torch.randn(N, 3, 4, dtype=torch.float64)
    else:
        model = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.GroupNorm(2, 4),
                                    torch.nn.Tanh(), torch.nn.Flatten(),
                                    torch.nn.Linear(36, 2)).double()
        x = torch.randn(N, 2, 5, 5, dtype=torch.float64)
    y = torch.randint(0, 2, (N,))
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_n(p, xn, yn):
        return F.cross_entropy(functional_call(model, p, (xn[None],)), yn[None])

    inputs = [x, torch.randn_like(x)]
    pers = [vmap(grad(loss_n), in_dims=(None, 0, 0))(params, xs, y) for xs in inputs]
    with et.track(model, names, loss="cross_entropy") as t:
        for xs, per in zip(inputs, pers, strict=True):  # the second starts afresh
            model.zero_grad()
            F.cross_entropy(model(xs), y).backward()
            (rec,) = [r for r in t.records if r.module is model[1]]
            first_only = "ggn_trace_batch" not in names
            assert (rec.g is None) == first_only
            assert (rec.per_example is not None) == first_only
            assert (rec.operands[rec.layer.x] is None) == first_only
            for key, p in model.named_parameters():
                want = {"grad_norm2": per[key].flatten(1).square().sum(1),
                        "grad_batch": per[key], "grad": per[key].sum(0) / N}
                for q in names:
                    if q in want:
                        torch.testing.assert_close(t[p][q], want[q])


def test_first_order_tracking_holds_no_layer_output():
    """A layer's output, once hooked, is not held by its record (autograd lets go of
    outputs it does not need for backward); second-order tracking reads them again."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.LayerNorm(6),
                                torch.nn.Tanh(), torch.nn.Linear(6, 2)).double()
    x, y = torch.randn(N, 4, dtype=torch.float64), torch.randint(0, 2, (N,))
    for names, held in ((["grad_norm2"], False), (["ggn_trace_batch"], True)):
        with et.track(model, names, loss="cross_entropy") as t:
            loss = F.cross_entropy(model(x), y)
            assert all((r.y is not None) == held for r in t.records)
            loss.backward()
            assert all(r.seen for r in t.records)


def test_a_loop_where_every_record_let_go_of_its_output_gradient():
    """Every tracked layer a norm (the others frozen): no record keeps its output
    gradient after backward, and the next step's forward pass still starts afresh."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.LayerNorm(6),
                                torch.nn.Tanh(), torch.nn.Linear(6, 2)).double()
    for k in (0, 3):
        model[k].requires_grad_(False)
    xs = [torch.randn(N, 4, dtype=torch.float64) for _ in range(2)]
    y = torch.randint(0, 2, (N,))
    with et.track(model, ["grad_norm2"]) as t:
        for x in xs:
            F.cross_entropy(model(x), y).backward()
            assert len(t.records) == 1 and t.records[0].g is None
            got = t[model[1].weight]["grad_norm2"]
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_n(p, xn, yn):
        return F.cross_entropy(functional_call(model, p, (xn[None],)), yn[None])

    per = vmap(grad(loss_n), in_dims=(None, 0, 0))(params, xs[1], y)["1.weight"]
    torch.testing.assert_close(got, per.square().sum(1))


@pytest.mark.parametrize("names,formed", [(["grad_norm2"], True), (["variance"], True),
                                          (["grad_norm2", "grad"], True), (["grad"], False)])
def test_weight_gradient_from_per_example_gradients(names, formed):
    """On a large grid the norms' plan forms the per-example gradients anyway: backward
    forms them once, the weight's gradient is their sum, and the input's and the bias's
    gradients still flow (checked against torch on a two-layer network)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(4, 2, 3, padding=1)).double()
    x = torch.randn(3, 3, 24, 24, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, 2, 24, 24, dtype=torch.float64)
    F.mse_loss(model(x), y).backward()
    want = {k: v.grad.clone() for k, v in model.named_parameters()}
    want_x = x.grad.clone()
    model.zero_grad()
    x.grad = None
    with et.track(model, names, convention="batch") as t:
        F.mse_loss(model(x), y).backward()
    assert all(_formed(r) == formed for r in t.records)
    for key, p in model.named_parameters():
        torch.testing.assert_close(p.grad, want[key])
    torch.testing.assert_close(x.grad, want_x)
    conv = model[2]
    per = t[conv.weight]
    if "grad_norm2" in names:
        params = {k: v.detach() for k, v in model.named_parameters()}

        def loss_n(q, xn, yn):
            return F.mse_loss(functional_call(model, q, (xn[None],)), yn[None],
                              reduction="sum") / y.numel()

        g = vmap(grad(loss_n), in_dims=(None, 0, 0))(params, x.detach(), y)["2.weight"]
        torch.testing.assert_close(per["grad_norm2"], g.flatten(1).square().sum(1))


def _ggn(model, x, y, loss, key):
    """The GGN block of parameter ``key``: J^T H J, and its per-example traces."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    p0 = params[key]

    def out(w):
        q = dict(params)
        q[key] = w
        return functional_call(model, q, (x,))

    o = out(p0)
    jac = torch.autograd.functional.jacobian(out, p0).reshape(N, o.shape[1], -1)
    if loss == "mse":
        h = torch.eye(o.shape[1], dtype=o.dtype).expand(N, -1, -1) * 2 / o.numel()
    else:
        pr = torch.softmax(o, 1)
        h = (torch.diag_embed(pr) - pr[:, :, None] * pr[:, None, :]) / N
    per = torch.einsum("nop,noq,nqr->npr", jac, h, jac)
    return per.sum(0), torch.diagonal(per, dim1=1, dim2=2).sum(1)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("name", NAMES)
def test_second_order_quantities(name, loss):
    model, x, y, fn = _setup(name, loss)
    names = ["ggn_diag", "ggn_trace", "ggn_trace_batch"]
    with et.track(model, names, loss=loss, convention="batch") as t:
        fn(model(x), y).backward()
    with et.track(model, ["ggn_trace_batch"], loss=loss) as own:  # each example's loss
        fn(model(x), y).backward()
    for key, p in model.named_parameters():
        ggn, per = _ggn(model, x, y, loss, key)
        got = t[p]
        torch.testing.assert_close(got["ggn_diag"].reshape(-1), ggn.diagonal())
        torch.testing.assert_close(got["ggn_trace"], ggn.trace())
        torch.testing.assert_close(got["ggn_trace_batch"], per)
        torch.testing.assert_close(own[p]["ggn_trace_batch"], per * N)


def test_last_layer_hessian_is_exact():
    """For the last layer (linear in its weight, MSE) the GGN is the Hessian."""
    model, x, y, fn = _setup("linear", "mse")
    with et.track(model, ["ggn_diag", "ggn_trace"], loss="mse") as t:
        fn(model(x), y).backward()
    w = model[2].weight
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_of(wl):
        q = dict(params)
        q["2.weight"] = wl
        return fn(functional_call(model, q, (x,)), y)

    hess = torch.autograd.functional.hessian(loss_of, w.detach()).reshape(w.numel(), -1)
    torch.testing.assert_close(t[w]["ggn_diag"].reshape(-1), hess.diagonal())
    torch.testing.assert_close(t[w]["ggn_trace"], hess.trace())


def test_kfac_factors_of_a_linear_layer():
    model, x, y, fn = _setup("linear", "mse")
    grads = {}
    def keep(module, grad_in, grad_out):
        grads["g"] = grad_out[0]

    model[2].register_full_backward_hook(keep)
    with et.track(model, ["kfac"]) as t:
        fn(model(x), y).backward()
    a, g = t[model[2].weight]["kfac"]
    h = torch.tanh(model[0](x))
    torch.testing.assert_close(a, h.T @ h)
    torch.testing.assert_close(g, grads["g"].T @ grads["g"])


def test_errors():
    model = torch.nn.Linear(2, 2)
    with pytest.raises(einopt.EinsumError, match="unknown quantity"):
        with et.track(model, ["nope"]):
            pass
    with pytest.raises(einopt.EinsumError, match="loss"):
        with et.track(model, ["ggn_trace"]):
            pass
    with pytest.raises(einopt.EinsumError, match="loss"):
        with et.track(model, ["hessian_diag"]):
            pass
    with et.track(model, ["grad_norm2"]) as t:
        model(torch.randn(3, 2)).sum().backward()
    with pytest.raises(einopt.EinsumError, match="no tracked layer"):
        t[torch.nn.Parameter(torch.zeros(1))]


def test_linear_norms_keep_torch_weight_gradient():
    """A linear layer's norms are two vector norms (no per-example gradient is formed),
    so backward is torch's own."""
    model = torch.nn.Linear(64, 32).double()
    x, y = torch.randn(8, 64, dtype=torch.float64), torch.randn(8, 32, dtype=torch.float64)
    with et.track(model, ["grad_norm2"]) as t:
        F.mse_loss(model(x), y).backward()
    assert t.records[0].per_example is None
    g = 2 * (model(x) - y).detach() / y.shape[1]  # of each example's own mean loss
    want = g.square().sum(1) * x.square().sum(1)
    torch.testing.assert_close(t[model.weight]["grad_norm2"], want)


def test_gradient_penalty_through_tracked_layers():
    """create_graph=True: the tracked backward stays differentiable, so a penalty on the
    input gradient has torch's own gradients."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.Tanh(),
                                torch.nn.Conv2d(3, 2, 3, padding=1)).double()
    x = torch.randn(2, 2, 20, 20, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 2, 20, 20, dtype=torch.float64)

    def penalized() -> None:
        loss = F.mse_loss(model(x), y)
        (gx,) = torch.autograd.grad(loss, x, create_graph=True)
        (loss + gx.square().sum()).backward()

    penalized()
    want = {k: v.grad.clone() for k, v in model.named_parameters()}
    model.zero_grad()
    with et.track(model, ["grad_norm2"]) as t:
        penalized()
    assert all(_formed(r) for r in t.records)
    for key, p in model.named_parameters():
        torch.testing.assert_close(p.grad, want[key])


@pytest.mark.parametrize("layer,shape", [
    ("linear", (N, 4)),  # read from input and output gradient
    ("linear", (N, 3, 4)),  # per-example gradients formed
    ("norm", (N, 4)),  # a norm's, formed as its output gradient arrives
])
def test_a_second_backward_through_a_read_pass_raises(layer, shape):
    """Backward reads each layer's quantities and lets go of its input: a second backward
    pass through the same graph (retain_graph) raises instead of reading stale values."""
    torch.manual_seed(0)
    model = (torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
             if layer == "linear" else  # the norm alone: no other layer raises first
             torch.nn.Sequential(torch.nn.LayerNorm(4), torch.nn.Tanh())).double()
    x = torch.randn(shape, dtype=torch.float64)
    with et.track(model, ["grad_norm2"]):
        loss = model(x).square().mean()
        loss.backward(retain_graph=True)
        with pytest.raises(einopt.EinsumError, match="one backward pass per tracked"):
            loss.backward()


def test_gradient_penalty_norm_quantities_are_the_final_pass():
    """create_graph=True, then a backward through the penalty: a norm's quantities are
    read from its output gradient in the final pass, as every other layer's (the first
    pass, which more may follow, neither reads them nor lets go of its input)."""
    torch.manual_seed(0)
    norm = torch.nn.LayerNorm(6)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), norm, torch.nn.Tanh(),
                                torch.nn.Linear(6, 2)).double()
    x = torch.randn(N, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randn(N, 2, dtype=torch.float64)
    seen = {}
    norm.register_forward_hook(lambda m, i, o: seen.update(x=i[0].detach()))
    norm.register_full_backward_hook(lambda m, gi, go: seen.update(g=go[0].detach()))
    with et.track(model, ["grad_norm2"], convention="batch") as t:
        loss = F.mse_loss(model(x), y)
        (gx,) = torch.autograd.grad(loss, x, create_graph=True)
        (loss + gx.square().sum()).backward()
    xhat = F.layer_norm(seen["x"], (6,))
    want = (seen["g"] * xhat).square().sum(1)  # the final pass's per-example gradients
    torch.testing.assert_close(t[norm.weight]["grad_norm2"], want)
    torch.testing.assert_close(t[norm.bias]["grad_norm2"], seen["g"].square().sum(1))
