"""Tracking per-example and curvature quantities of torch models through einsums.

``with einopt.torch.track(model, ["grad_norm2", "hessian_trace"], loss="mse") as t:``
runs the forward and backward passes as usual; afterwards ``t[param]["grad_norm2"]``
holds the quantity for that parameter. Each supported layer (``nn.Linear``,
``nn.Conv{1,2,3}d`` and einopt's own conv layers, :class:`einopt.nn.EinsumLayer`, and
any module with an ``einsum_layer(x)`` method) is described by its einsum; every
quantity is that einsum's naive form (:mod:`einopt.quantities`), planned by einopt.
Biases are the einsum ``y[n, ..., o] = 1[n, ...] b[o]``.

Second-order quantities need ``loss="mse"`` or ``"cross_entropy"`` (mean reduction,
torch's default; ``loss_reduction="sum"`` for sums): the loss Hessian's factor ``S`` at
the model output is backpropagated to every layer's output in one batched autograd
call while the backward pass runs, so they are exact for layers followed by linear
maps and the generalized Gauss-Newton otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from .autodiff import vjp
from .caches import BoundedDict
from .errors import EinsumError
from .nn.functional import conv_einsum
from .parse import Equation
from .quantities import FIRST_ORDER, LayerEinsum, first_order_plan, from_per_example, quantity
from .structured.rewrite import spec_of

__all__ = ["track", "Tracker", "layer_einsum", "NAMES"]

#: quantity names: the einopt.quantities ones, and torch-style aliases
NAMES = {
    "grad": "grad", "grad_batch": "grad_batch", "grad_norm2": "grad_norm2",
    "grad_sq_sum": "grad_sq_sum", "variance": "grad_sq_sum",
    "ggn_diag": "ggn_diag", "hessian_diag": "ggn_diag",
    "ggn_trace": "ggn_trace", "hessian_trace": "ggn_trace",
    "hessian_trace_batch": "ggn_trace_batch", "ggn_trace_batch": "ggn_trace_batch",
    "kfac": "kfac",
}
_SECOND = {"ggn_diag", "ggn_trace", "ggn_trace_batch"}
#: per (layer, operand shapes, quantities): whether backward forms per-example gradients
FORMS: BoundedDict[Any, bool] = BoundedDict("tracked backward forms", 1024)
_CONVS = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)


def layer_einsum(module: torch.nn.Module, x: torch.Tensor
                 ) -> tuple[LayerEinsum, list[Any], tuple[int, ...]] | None:
    """``(layer, operands, weight shape in the einsum)`` of a supported module on input
    ``x``, or None when it is not one."""
    custom = getattr(module, "einsum_layer", None)
    if callable(custom):
        return custom(x)  # type: ignore[no-any-return]
    if isinstance(module, torch.nn.Linear):  # (N, *, in): the extra axes are positions
        labels = ["n", *(f"t{k}" for k in range(x.dim() - 2))]
        layer = LayerEinsum(((*labels, "i"), ("o", "i")), (*labels, "o"), 0, 1)
        return layer, [x, module.weight], tuple(module.weight.shape)
    if isinstance(module, _CONVS):
        if module.padding_mode != "zeros":
            return None
        operands, terms, output = conv_einsum(x, module.weight, module.stride,
                                              module.padding, module.dilation, module.groups)
        return LayerEinsum(tuple(terms), output, 0, 1), operands, tuple(operands[1].shape)
    return None


def _channel_axis(module: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """The output axis a bias adds along: second for convolutions, else last."""
    return 1 if isinstance(module, _CONVS) else len(shape) - 1


def _bias_layer(bias: torch.Tensor, shape: tuple[int, ...], channel_axis: int
                ) -> tuple[LayerEinsum, list[Any]]:
    """``y[n, ..., o, ...] = 1[n, ...] b[o]``: the bias as an einsum layer, for ``y`` of
    ``shape``, and its operands."""
    labels = [f"d{k}" for k in range(len(shape))]
    labels[0] = "n"
    others = [lab for k, lab in enumerate(labels) if k != channel_axis]
    ones = torch.ones([shape[k] for k in range(len(shape)) if k != channel_axis],
                      dtype=bias.dtype, device=bias.device)
    layer = LayerEinsum((tuple(others), (labels[channel_axis],)), tuple(labels), 0, 1)
    return layer, [ones, bias]


class _Record:
    """What one tracked module saw: its einsum, operands, output, and gradients."""

    def __init__(self, module: torch.nn.Module, layer: LayerEinsum, operands: list[Any],
                 w_shape: tuple[int, ...], y: torch.Tensor) -> None:
        self.module, self.layer, self.operands, self.w_shape = module, layer, operands, w_shape
        self.y: torch.Tensor | None = y  # dropped when the block ends (it holds the graph)
        self.y_shape = tuple(y.shape)
        self.g: torch.Tensor | None = None
        self.s: torch.Tensor | None = None
        self.per_example: torch.Tensor | None = None  # formed in backward, if it pays


class _FromExamples(torch.autograd.Function):
    """A tracked layer's output again, with a backward pass that forms the per-example
    weight gradients once: the weight's gradient is their sum, and the tracked
    quantities read them. Used where the quantities' own plans would form them anyway
    (a convolution over a large grid): torch's weight-gradient kernel then does not
    run as well."""

    @staticmethod
    def forward(ctx: Any, y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None, rec: _Record) -> torch.Tensor:
        ctx.rec, ctx.x_shape = rec, x.shape
        return y.view_as(y)

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor) -> tuple[Any, ...]:
        rec: _Record = ctx.rec
        layer = rec.layer
        # With create_graph (a gradient penalty), every product stays differentiable.
        graph = torch.is_grad_enabled()
        ops = [o.detach() if isinstance(o, torch.Tensor) and not graph else o
               for o in rec.operands]
        g = (gy if graph else gy.detach()).reshape(layer_output_shape(layer, ops))
        rec.g = g.detach()
        grads = quantity("grad_batch", layer, ops, g=g)
        rec.per_example = grads.detach()
        weight = rec.module.weight
        gw = from_per_example("grad", layer, grads).reshape(weight.shape)
        gx = gb = None
        if ctx.needs_input_grad[1]:  # the einsum's VJP for its input
            eq = Equation(layer.inputs, layer.output)
            gx = vjp(eq, ops, layer.x, g).reshape(ctx.x_shape)
        if ctx.needs_input_grad[3]:
            bias = rec.module.bias
            assert isinstance(bias, torch.Tensor)
            bias_layer, bias_ops = _bias_layer(bias, rec.y_shape,
                                               _channel_axis(rec.module, rec.y_shape))
            gb = quantity("grad", bias_layer, bias_ops, g=gy if graph else gy.detach())
        return None, gx, gw, gb, None


class Tracker:
    """Collects, per tracked parameter, the requested quantities (see :func:`track`)."""

    def __init__(self, model: torch.nn.Module, names: Sequence[str], loss: str | None,
                 loss_reduction: str) -> None:
        unknown = [q for q in names if q not in NAMES]
        if unknown:
            raise EinsumError(f"unknown quantity {unknown[0]!r}; choose from "
                              f"{', '.join(sorted(NAMES))}")
        self.names = list(names)
        self.model = model
        self.loss, self.reduction = loss, loss_reduction
        self._second = any(NAMES[q] in _SECOND for q in names)
        if self._second and loss not in ("mse", "cross_entropy"):
            raise EinsumError("second-order quantities need loss='mse' or 'cross_entropy'")
        self.records: list[_Record] = []
        self._output: torch.Tensor | None = None
        self._handles: list[Any] = []
        self._results: dict[torch.nn.Parameter, dict[str, Any]] = {}
        self._propagating = False

    # Hooks.
    def _attach(self) -> None:
        for module in self.model.modules():
            if layer_einsum_supported(module):
                self._handles.append(module.register_forward_hook(self._forward))
        if self._second:
            self._handles.append(self.model.register_forward_hook(self._model_output))

    def _detach(self) -> None:
        """Remove every hook and let go of the outputs (and so of the graph)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._output = None
        for r in self.records:
            r.y = None

    def _forward(self, module: torch.nn.Module, inputs: tuple[Any, ...], y: Any) -> Any:
        x = inputs[0]
        found = layer_einsum(module, x)
        if found is None or not isinstance(y, torch.Tensor) or not y.requires_grad:
            return None
        layer, operands, w_shape = found
        rec = _Record(module, layer, operands, w_shape, y)
        self.records.append(rec)
        if self._from_examples(module, layer, operands, y):
            bias = getattr(module, "bias", None)
            return _FromExamples.apply(y.detach(), x, module.weight,
                                       bias if isinstance(bias, torch.nn.Parameter) else None,
                                       rec)

        def keep(g: torch.Tensor) -> None:
            if not self._propagating:  # not the batched pass of the Hessian factor
                rec.g = g.detach()

        self._handles.append(y.register_hook(keep))
        return None

    def _from_examples(self, module: torch.nn.Module, layer: LayerEinsum,
                       operands: list[Any], y: torch.Tensor) -> bool:
        """Whether to form the per-example gradients in backward and the weight's
        gradient from them: only first-order quantities are tracked, and their plans
        form the per-example gradients anyway (or ``grad_batch`` is asked for)."""
        wanted = {NAMES[q] for q in self.names}
        weight = getattr(module, "weight", None)
        if (self._second or not wanted <= set(FIRST_ORDER) or layer.x != 0
                or not isinstance(module, (torch.nn.Linear, *_CONVS))
                or not isinstance(weight, torch.nn.Parameter) or not weight.requires_grad):
            return False
        if "grad_batch" in wanted:
            return True
        key = (layer, tuple(spec_of(o) for o in operands), frozenset(wanted))
        found = FORMS.get(key)
        if found is None:  # planned once per layer and shapes, not every forward
            ops = [o.detach() if isinstance(o, torch.Tensor) else o for o in operands]
            g = y.detach().reshape(layer_output_shape(layer, ops))
            each = first_order_plan("grad_batch", layer, ops, g).flops
            found = FORMS[key] = any(first_order_plan(q, layer, ops, g).flops >= 0.9 * each
                                     for q in wanted - {"grad"})
        return bool(found)

    def _model_output(self, module: torch.nn.Module, inputs: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor) and out.requires_grad:
            self._output = out
            self._handles.append(out.register_hook(self._second_order))

    def _second_order(self, grad: torch.Tensor) -> None:
        """While backward runs: backpropagate the loss Hessian factor to every layer."""
        if self._propagating:
            return
        out = self._output
        assert out is not None
        s_out = _loss_factor(out.detach(), self.loss, self.reduction)  # (C, *out.shape)
        live = [r for r in self.records if r.y is not None]
        ys = [r.y for r in live if r.y is not None]
        self._propagating = True
        try:
            cols = torch.autograd.grad(out, ys, grad_outputs=s_out, is_grads_batched=True,
                                       retain_graph=True, allow_unused=True)
        finally:
            self._propagating = False
        for r, c in zip(live, cols, strict=True):
            r.s = None if c is None else c.movedim(0, -1).detach()

    # Results.
    def __getitem__(self, param: torch.nn.Parameter) -> dict[str, Any]:
        if param not in self._results:
            self._compute()
        try:
            return self._results[param]
        except KeyError:
            raise EinsumError("that parameter belongs to no tracked layer") from None

    def _compute(self) -> None:
        for rec in self.records:
            self._layer_results(rec)

    def _layer_results(self, rec: _Record) -> None:
        module = rec.module
        weight: Any = module.weight
        params: list[tuple[Any, LayerEinsum, list[Any], tuple[int, ...]]] = [
            (weight, rec.layer, rec.operands, rec.w_shape)]
        bias = getattr(module, "bias", None)
        if isinstance(bias, torch.nn.Parameter):
            layer, ops = _bias_layer(bias, rec.y_shape, _channel_axis(module, rec.y_shape))
            params.append((bias, layer, ops, tuple(bias.shape)))
        for p, layer, ops, shape in params:
            out = self._results.setdefault(p, {})
            ops = [o.detach() if isinstance(o, torch.Tensor) else o for o in ops]
            g, s = rec.g, rec.s
            y_shape = tuple(layer_output_shape(layer, ops))
            if g is not None:
                g = g.reshape(y_shape)
            if s is not None:
                s = s.reshape(*y_shape, s.shape[-1])
            for name in self.names:
                q = NAMES[name]
                if p is weight and rec.per_example is not None:
                    value = from_per_example(q, layer, rec.per_example)
                else:
                    value = quantity(q, layer, ops, g=g, s=s)
                out[name] = _to_param_shape(q, value, shape, tuple(p.shape))


def layer_einsum_supported(module: torch.nn.Module) -> bool:
    """Whether :func:`track` follows this module."""
    return (callable(getattr(module, "einsum_layer", None))
            or isinstance(module, (torch.nn.Linear, *_CONVS)))


def layer_output_shape(layer: LayerEinsum, ops: list[Any]) -> list[int]:
    """The einsum output's shape (the layer's output, with groups split)."""
    sizes: dict[Any, int] = {}
    for term, op in zip(layer.inputs, ops, strict=True):
        for lab, d in zip(term, op.shape, strict=True):
            sizes[lab] = max(sizes.get(lab, 1), int(d))
    return [sizes[lab] for lab in layer.output]


def _to_param_shape(q: str, value: Any, einsum_shape: tuple[int, ...],
                    shape: tuple[int, ...]) -> Any:
    if q in ("grad", "grad_sq_sum", "ggn_diag"):
        return value.reshape(shape)
    if q == "grad_batch":
        return value.reshape(value.shape[0], *shape)
    return value


def _loss_factor(out: torch.Tensor, loss: str | None, reduction: str) -> torch.Tensor:
    """``S`` with ``d2L/dout2 = S S^T`` per example, as ``(C, *out.shape)`` columns."""
    n = out.shape[0]
    if loss == "mse":
        numel = out.numel() if reduction == "mean" else 1
        scale = math.sqrt(2.0 / numel)
        per = out[0].numel()
        eye = torch.eye(per, dtype=out.dtype, device=out.device) * scale
        return eye.reshape(per, 1, *out.shape[1:]).expand(per, *out.shape).contiguous()
    if loss == "cross_entropy":
        if out.dim() != 2:
            raise EinsumError("cross_entropy tracking takes (N, C) logits")
        p = torch.softmax(out, dim=1)
        sq = p.sqrt()
        scale = 1.0 / math.sqrt(n) if reduction == "mean" else 1.0
        # S = diag(sqrt p) - p sqrt(p)^T, S S^T = diag(p) - p p^T; column c of S per example
        s = torch.diag_embed(sq) - p[:, :, None] * sq[:, None, :]
        return (s * scale).permute(2, 0, 1).contiguous()
    raise EinsumError(f"unknown loss {loss!r}")


@contextmanager
def track(model: torch.nn.Module, quantities: Sequence[str], loss: str | None = None,
          loss_reduction: str = "mean") -> Iterator[Tracker]:
    """Track ``quantities`` of every supported layer of ``model`` during the forward and
    backward passes run inside the block; read them as ``tracker[param][name]``.

    Example:
        >>> import torch, einopt.torch
        >>> model = torch.nn.Linear(3, 2)
        >>> x, y = torch.randn(5, 3), torch.randn(5, 2)
        >>> with einopt.torch.track(model, ["grad_norm2"]) as t:
        ...     torch.nn.functional.mse_loss(model(x), y).backward()
        >>> t[model.weight]["grad_norm2"].shape
        torch.Size([5])
    """
    tracker = Tracker(model, quantities, loss, loss_reduction)
    tracker._attach()
    try:
        yield tracker
    finally:
        tracker._detach()
