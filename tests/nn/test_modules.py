"""Conv layers and factored convolutions."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import einopt  # noqa: E402
from einopt.nn import (  # noqa: E402
    PRESETS,
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose2d,
    FactoredConv1d,
    FactoredConv2d,
    FactoredConv3d,
)

RANKS = {"bottleneck": (3, 2), "cp": 4, "tucker": (3, 2), "tensor_train": 3}


@pytest.mark.parametrize("ours,theirs,nd", [(Conv1d, torch.nn.Conv1d, 1),
                                            (Conv2d, torch.nn.Conv2d, 2),
                                            (Conv3d, torch.nn.Conv3d, 3)])
def test_layers_equal_torch_layers(ours, theirs, nd):
    torch.manual_seed(0)
    a = theirs(4, 6, 3, stride=2, padding=1, dilation=1, groups=2).double()
    b = ours(4, 6, 3, stride=2, padding=1, dilation=1, groups=2).double()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 4, *(8,) * nd, dtype=torch.float64)
    torch.testing.assert_close(b(x), a(x))


def test_transposed_layer_with_output_size():
    torch.manual_seed(0)
    a = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1).double()
    b = ConvTranspose2d(4, 6, 3, stride=2, padding=1).double()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(b(x, output_size=(10, 10)), a(x, output_size=(10, 10)))


def test_other_padding_modes_are_refused():
    layer = Conv2d(2, 2, 3, padding=1, padding_mode="reflect")
    with pytest.raises(einopt.EinsumError, match="zeros"):
        layer(torch.randn(1, 2, 5, 5))


@pytest.mark.parametrize("cls,nd", [(FactoredConv1d, 1), (FactoredConv2d, 2),
                                    (FactoredConv3d, 3)])
@pytest.mark.parametrize("preset", PRESETS)
def test_factored_equals_its_dense_kernel(cls, nd, preset):
    torch.manual_seed(0)
    layer = cls(6, 5, 3, stride=2, padding=1, preset=preset, rank=RANKS.get(preset)).double()
    x = torch.randn(2, 6, *(7, 6, 5)[:nd], dtype=torch.float64)
    conv = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
    want = conv(x, layer.kernel(), layer.bias, layer.stride, layer.padding, layer.dilation)
    torch.testing.assert_close(layer(x), want)
    expected = sum(f.numel() for f in layer.factors) + 5
    assert layer.num_parameters == expected


def test_custom_spec():
    layer = FactoredConv2d(4, 6, 3, padding="same", spec="oa,acxy->ocxy", bond_sizes={"a": 2},
                           preset=None).double()
    x = torch.randn(1, 4, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(layer(x), F.conv2d(x, layer.kernel(), layer.bias, padding="same"))


@pytest.mark.parametrize("preset", ["depthwise_separable", "cp", "tucker", "bottleneck"])
def test_planner_runs_the_factors_rather_than_the_kernel(preset):
    """At these sizes the cheap plan applies the factors to the input one by one; its
    flops are below the dense layer's direct count."""
    layer = FactoredConv2d(128, 128, 3, padding=1, preset=preset, rank=RANKS.get(preset, 16)
                           if preset != "bottleneck" else (32, 32))
    dense = 32 * 128 * 128 * 9 * 32 * 32
    plan = layer.plan((32, 128, 32, 32))
    assert plan.flops < dense / 3


def test_depthwise_separable_plan_is_depthwise_then_pointwise():
    layer = FactoredConv2d(128, 128, 3, padding=1, preset="depthwise_separable")
    plan = layer.plan((32, 128, 32, 32))
    assert "5.75e+08 flops planned" in layer.summary((32, 128, 32, 32))
    # first the windowed input meets the depthwise factor, then the pointwise one
    assert plan.path == [(0, 1), (0, 1)]
    assert plan.flops == 32 * 128 * 9 * 32 * 32 + 32 * 128 * 128 * 32 * 32


@pytest.mark.parametrize("preset", PRESETS)
def test_initial_kernel_variance_matches_torch_default(preset):
    """Averaged over initialisations (entries of one kernel share factors), each kernel
    entry has the default layer's variance 1 / (3 fan_in)."""
    torch.manual_seed(0)
    rank = (8, 8) if preset in ("bottleneck", "tucker") else 8
    var = sum(FactoredConv2d(32, 32, 3, preset=preset, rank=rank).kernel().detach().square()
              .mean().item() for _ in range(40)) / 40
    fan_in = 32 * (1 if preset == "1x1" else 9)
    assert var == pytest.approx(1 / (3 * fan_in), rel=0.25)


def test_bad_preset_and_ranks():
    with pytest.raises(einopt.EinsumError, match="unknown preset"):
        FactoredConv2d(2, 2, 3, preset="nope")
    with pytest.raises(einopt.EinsumError, match="rank"):
        FactoredConv2d(2, 2, 3, preset="tucker", rank=(1, 2, 3))
    with pytest.raises(einopt.ShapeError, match="bond"):
        FactoredConv2d(2, 2, 3, preset=None, spec="oa,acxy->ocxy")
