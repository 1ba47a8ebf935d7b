"""Tracking per-example and curvature quantities of torch models through einsums.

``with einopt.torch.track(model, ["grad_norm2", "ggn_trace"], loss="mse") as t:``
runs the forward and backward passes as usual; afterwards ``t[param]["grad_norm2"]``
holds the quantity for that parameter. Each parameterized layer (:mod:`.layers`:
``Linear``, convolutions and transposed convolutions in every padding mode,
``Embedding``, the norms' affine weights, einopt's own layers and any module with an
``einsum_layer(x)`` method) is described by the einsum linear in its weight; every
quantity is that einsum's naive form (:mod:`einopt.quantities`), planned by einopt.
:class:`DPSGD` clips every example's gradient and noises the sum the same way.
"""

from ..quantities import clipped_sum
from .layers import SUPPORTED, layer_einsum, supported, unsupported
from .private import DPSGD
from .tracker import CONVENTIONS, NAMES, Tracker, track

__all__ = ["track", "Tracker", "layer_einsum", "NAMES", "CONVENTIONS", "SUPPORTED",
           "supported", "unsupported", "DPSGD", "clipped_sum"]
