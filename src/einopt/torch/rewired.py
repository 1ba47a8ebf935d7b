"""The tracker's records and the autograd functions that rewire a tracked layer.

A :class:`Record` is what one call of a tracked module saw (its einsum, operands,
output and, in backward, its output gradient). :class:`FromExamples` and
:class:`Recorded` return the layer's output again with a backward pass of their own:
the first forms the per-example weight gradients once (the weight's gradient is their
sum), the second only records the output gradient and leaves the weight's gradient to
the caller (DP-SGD). The input's gradient is torch's own kernel wherever it has one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..autodiff import vjp
from ..errors import EinsumError
from ..parse import Equation
from ..quantities import LayerEinsum, from_per_example, quantity
from .layers import Entry, bias_gradient, bias_layer, channel_axes, layer_output_shape

__all__ = ["LINEAR_OR_CONV", "SECOND_PASS", "Record", "Rewired", "FromExamples", "Recorded",
           "native_input_grad", "input_grad_only"]

LINEAR_OR_CONV = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
#: The error of a second backward pass through a tracked forward pass whose layers'
#: quantities the first pass read, letting go of their inputs.
SECOND_PASS = ("a second backward pass reached a tracked layer whose quantities the first "
               "pass read, letting go of its input: run one backward pass per tracked "
               "forward pass (or ask for grad_batch, which keeps them)")


class Record:
    """What one tracked module saw: its einsum, operands, output, and gradients."""

    def __init__(self, module: torch.nn.Module, layer: LayerEinsum, operands: list[Any],
                 w_shape: tuple[int, ...], y: torch.Tensor | None,
                 entries: list[Entry] | None = None,
                 y_shape: tuple[int, ...] | None = None) -> None:
        self.module, self.layer, self.operands, self.w_shape = module, layer, operands, w_shape
        self.entries = entries  # a rewritten module's einsums, else the module's weight and bias
        self.y: torch.Tensor | None = y  # the output: kept for second order only
        self.y_shape = tuple(y.shape) if y is not None else tuple(y_shape or ())
        self.g: torch.Tensor | None = None
        self.seen = False  # backward reached it (its gradient may be let go since)
        # a norm's input, held raw until its normalized form is needed (autograd holds
        # the raw one anyway): the normalization
        self.normalize: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.s: torch.Tensor | None = None
        self.per_example: torch.Tensor | None = None  # formed in backward, if it pays
        self.bias_per_example: torch.Tensor | None = None  # ... with the bias's, for DP-SGD
        # ... and read at once into the tracked quantities where nothing needs them later
        self.reduced: dict[str, Any] | None = None
        self.reduce: Callable[[Record], None] | None = None
        self.weight_grads = True  # False: the caller sets them (DP-SGD's clipped sums)
        self.h: torch.Tensor | None = None  # d2L/dy2 per example, (N, Y, Y) flattened

    def arrive(self) -> None:
        """Backward reached this record: raise :data:`SECOND_PASS` where an earlier pass
        read its quantities and let go of its input (a second backward pass through the
        same graph would read stale ones)."""
        if self.seen and self.operands[self.layer.x] is None:
            raise EinsumError(SECOND_PASS)
        self.seen = True

    def input_ready(self) -> None:
        """Normalize a norm's input held raw (see ``normalize``), once it is needed."""
        if self.normalize is not None:
            with torch.no_grad():
                self.operands = [self.normalize(o.detach()) if k == self.layer.x else o
                                 for k, o in enumerate(self.operands)]
            self.normalize = None

    def keep_per_example_only(self) -> None:
        """Let go of the input and the output gradient, each as large as an activation,
        once the per-example gradients (all that is read later) are formed."""
        self.g = None
        self.operands = [None if k == self.layer.x else o for k, o in enumerate(self.operands)]


class Rewired(torch.autograd.Function):
    """A tracked layer's output ``y`` again (the layer's own graph cut off), so that
    backward runs a subclass's pass with the layer's input, weight and record."""

    @staticmethod
    def forward(ctx: Any, y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None, rec: Record) -> torch.Tensor:
        ctx.rec = rec
        ctx.save_for_backward(x, weight)
        return y.view_as(y)


class FromExamples(Rewired):
    """A tracked layer's output again, with a backward pass that forms the per-example
    weight gradients once: the weight's gradient is their sum (left to DP-SGD, which
    sets it to their clipped sum), and the tracked quantities read them. Used where
    that costs less than torch's weight-gradient kernel and the quantities' own plans
    together (a convolution over a large grid, a linear layer at every position of a
    sequence): the kernel then does not run."""

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor) -> tuple[Any, ...]:
        rec: Record = ctx.rec
        layer = rec.layer
        rec.arrive()
        x, weight = ctx.saved_tensors
        # With create_graph (a gradient penalty), every product stays differentiable.
        graph = torch.is_grad_enabled()
        ops = [o.detach() if isinstance(o, torch.Tensor) and not graph else o
               for o in rec.operands]
        g = (gy if graph else gy.detach()).reshape(layer_output_shape(layer, ops))
        rec.g = g.detach()
        grads = quantity("grad_batch", layer, ops, g=g)
        rec.per_example = grads.detach()
        gw = gb = gx = None
        if rec.weight_grads:
            gw = from_per_example("grad", layer, grads).reshape(weight.shape)
        if rec.reduce is not None:
            rec.reduce(rec)
        if ctx.needs_input_grad[1] and input_grad_only(rec.module):
            gx = native_input_grad(rec.module, gy, x, weight)  # differentiable too
        elif ctx.needs_input_grad[1]:  # the einsum's VJP for its input
            eq = Equation(layer.inputs, layer.output)
            gx = vjp(eq, ops, layer.x, g).reshape(x.shape)
        if ctx.needs_input_grad[3]:
            bias = rec.module.bias
            assert isinstance(bias, torch.Tensor)
            b_layer, _ = bias_layer(bias, rec.y_shape, channel_axes(rec.module, rec.y_shape))
            if rec.weight_grads:
                gb = bias_gradient(b_layer, gy if graph else gy.detach(), per_example=False)
            else:
                rec.bias_per_example = bias_gradient(b_layer, gy.detach(), per_example=True)
        if not rec.weight_grads:
            # DP-SGD reads only the per-example gradients (the weight's and the bias's):
            # the input and the output gradient, as large or larger, are let go now.
            rec.keep_per_example_only()
        return None, gx, gw, gb, None


class Recorded(Rewired):
    """A tracked layer's output again, with a backward pass that records the output
    gradient and computes only the input's gradient (torch's own kernel): the weight's
    and the bias's gradients are left to the caller (DP-SGD replaces them by clipped
    sums, so torch's weight-gradient kernels need not run)."""

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor) -> tuple[Any, ...]:
        rec: Record = ctx.rec
        rec.arrive()
        rec.g = gy.detach()
        gx = None
        if ctx.needs_input_grad[1]:
            x, weight = ctx.saved_tensors
            gx = native_input_grad(rec.module, gy, x, weight)
        return None, gx, None, None, None


def native_input_grad(module: torch.nn.Module, gy: torch.Tensor, x: torch.Tensor,
                       weight: torch.Tensor) -> torch.Tensor:
    """A linear or convolution layer's input gradient by torch's own kernel (see
    :func:`input_grad_only`): it is no einsum's business, and torch's is the fastest."""
    if isinstance(module, torch.nn.Linear):
        return gy @ weight
    nd = x.dim() - 2
    return torch.ops.aten.convolution_backward(
        gy, x, weight, None, list(module.stride), list(module.padding),
        list(module.dilation), False, [0] * nd, module.groups, [True, False, False])[0]


def input_grad_only(module: torch.nn.Module) -> bool:
    """Whether :func:`native_input_grad` computes this module's input gradient."""
    weight = getattr(module, "weight", None)
    return (isinstance(module, LINEAR_OR_CONV) and isinstance(weight, torch.nn.Parameter)
            and weight.requires_grad
            and getattr(module, "padding_mode", "zeros") == "zeros"
            and not isinstance(getattr(module, "padding", 0), str))
