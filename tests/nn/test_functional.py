"""einopt.nn.functional equals torch.nn.functional for every hyperparameter."""

from __future__ import annotations

import itertools

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import einopt  # noqa: E402
from einopt.nn import functional as E  # noqa: E402

SPATIAL = {1: (9,), 2: (9, 7), 3: (7, 6, 5)}
TAPS = {1: (3,), 2: (3, 2), 3: (3, 2, 2)}
CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TCONV = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
OURS = {1: E.conv1d, 2: E.conv2d, 3: E.conv3d}
OURS_T = {1: E.conv_transpose1d, 2: E.conv_transpose2d, 3: E.conv_transpose3d}

GRID = [c for c in itertools.product((1, 2, 3), (1, 2, 3), (0, 1, 2, "same", "valid"), (1, 2),
                                     (1, 2, 4))
        if not (c[2] == "same" and c[1] > 1)]  # torch has no 'same' for stride > 1


def _data(nd, groups, transposed=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, *SPATIAL[nd], generator=g, dtype=torch.float64)
    shape = (4, 4 // groups) if not transposed else (4, 2)
    w = torch.randn(*shape, *TAPS[nd], generator=g, dtype=torch.float64)
    b = torch.randn(w.shape[1] * groups if transposed else w.shape[0], generator=g,
                    dtype=torch.float64)
    return x, w, b


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("nd,stride,padding,dilation,groups", GRID)
def test_conv_matches_torch(nd, stride, padding, dilation, groups):
    x, w, b = _data(nd, groups)
    try:
        want = CONV[nd](x, w, b, stride, padding, dilation, groups)
    except RuntimeError:  # the kernel does not fit: ours must refuse too
        with pytest.raises(einopt.EinsumError):
            OURS[nd](x, w, b, stride, padding, dilation, groups)
        return
    got = OURS[nd](x, w, b, stride, padding, dilation, groups)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nd,stride,padding,dilation,groups",
                         [c for c in GRID if not isinstance(c[2], str)])
def test_conv_transpose_matches_torch(nd, stride, padding, dilation, groups):
    x, w, b = _data(nd, groups, transposed=True)
    for extra in range(max(stride, dilation)):
        try:
            want = TCONV[nd](x, w, b, stride, padding, extra, groups, dilation)
        except RuntimeError:
            continue
        got = OURS_T[nd](x, w, b, stride, padding, extra, groups, dilation)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel,dilation,padding,stride",
                         [(3, 1, 0, 1), ((3, 2), (1, 2), 1, 2), (2, 2, (2, 1), (1, 3))])
def test_unfold_matches_torch(kernel, dilation, padding, stride):
    x = torch.randn(2, 3, 8, 9, dtype=torch.float64)
    want = F.unfold(x, kernel, dilation, padding, stride)
    torch.testing.assert_close(E.unfold(x, kernel, dilation, padding, stride), want)


@pytest.mark.parametrize("nd,stride,padding,dilation,groups",
                         [(1, 2, 1, 1, 1), (2, 1, "same", 2, 2), (2, 3, 2, 1, 4), (3, 1, 1, 1, 1)])
def test_gradients_match_torch(nd, stride, padding, dilation, groups):
    x, w, b = _data(nd, groups)
    grads = []
    for fn in (CONV[nd], OURS[nd]):
        xs, ws, bs = (t.clone().requires_grad_() for t in (x, w, b))
        y = fn(xs, ws, bs, stride, padding, dilation, groups)
        y.backward(torch.cos(torch.arange(y.numel(), dtype=y.dtype)).reshape(y.shape))
        grads.append([xs.grad, ws.grad, bs.grad])
    for want, got in zip(*grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_transposed_gradients_match_torch():
    x, w, b = _data(2, 2, transposed=True)
    grads = []
    for fn in (F.conv_transpose2d, E.conv_transpose2d):
        xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
        fn(xs, ws, b, 2, 1, 1, 2, 1).square().sum().backward()
        grads.append([xs.grad, ws.grad])
    for want, got in zip(*grads, strict=True):
        torch.testing.assert_close(got, want)


def test_float32_conv_runs_natively(monkeypatch):
    """The conv step calls the library's convolution: no im2col view is made."""
    from einopt.backends.torch import TorchBackend

    calls = []
    real = TorchBackend.conv
    monkeypatch.setattr(TorchBackend, "conv", staticmethod(
        lambda *a: calls.append(1) or real(*a)))
    monkeypatch.setattr(TorchBackend, "window", staticmethod(
        lambda *a: pytest.fail("a windowed view was built")))
    einopt.clear_caches()
    x, w = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3)
    torch.testing.assert_close(E.conv2d(x, w, padding=1), F.conv2d(x, w, padding=1))
    assert calls
    einopt.clear_caches()


def test_integer_conv_is_exact():
    x = torch.randint(-5, 5, (2, 3, 8))
    w = torch.randint(-5, 5, (4, 3, 3))
    want = F.conv1d(x.double(), w.double()).long()
    assert torch.equal(E.conv1d(x, w), want)


def test_bad_shapes_name_the_problem():
    with pytest.raises(einopt.ShapeError, match="channels"):
        E.conv2d(torch.randn(1, 3, 5, 5), torch.randn(2, 4, 3, 3))
    with pytest.raises(einopt.ShapeError, match="dimensions"):
        E.conv2d(torch.randn(3, 5, 5), torch.randn(2, 3, 3, 3))
    with pytest.raises(einopt.ShapeError, match="stride"):
        E.conv2d(torch.randn(1, 3, 5, 5), torch.randn(2, 3, 3, 3), stride=(1, 2, 3))


def test_transposed_conv_runs_natively(monkeypatch):
    from einopt.backends.torch import TorchBackend

    calls = []
    real = TorchBackend.conv
    monkeypatch.setattr(TorchBackend, "conv", staticmethod(
        lambda *a: calls.append(a[-2]) or real(*a)))
    einopt.clear_caches()
    x, w = torch.randn(2, 4, 5, 6), torch.randn(4, 3, 3, 2)
    torch.testing.assert_close(E.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
                               F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1))
    assert calls == [True]
    einopt.clear_caches()
