"""A recorded layer call's parameter uses, and what backward reads of them and lets go.

A :class:`~.rewired.Record` holds one call of a tracked layer; :func:`uses_of` views it
per parameter (the weight's einsum and the bias's, their operands and output gradient,
and the per-example gradients where they are formed). :func:`settle` and
:func:`let_go` are the backward-time steps that form an elementwise weight's
per-example gradients and let go of what a read no longer needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..quantities import LayerEinsum, quantity
from .layers import bias_gradient, bias_layer, channel_axes, layer_output_shape
from .rewired import Record

__all__ = ["Use", "uses_of", "elementwise", "let_go", "settle", "weights_of"]


@dataclass(frozen=True)
class Use:
    """One use of a parameter in a forward pass: the einsum it is ``W`` of, that
    einsum's operands and output gradient (and loss Hessian factor), and the per-example
    gradients where backward formed them."""

    layer: LayerEinsum
    operands: list[Any]
    g: torch.Tensor | None
    s: torch.Tensor | None
    per_example: torch.Tensor | None
    shape: tuple[int, ...]  # the parameter's shape in the einsum
    h: torch.Tensor | None = None
    reduced: dict[str, Any] | None = None  # first-order quantities read in backward
    batch: int | None = None  # the batch size, where the input was let go

    @property
    def batch_size(self) -> int:
        if self.per_example is not None:  # the input may have been let go (DP-SGD)
            return int(self.per_example.shape[0])
        if self.batch is not None:
            return self.batch
        return int(self.operands[self.layer.x].shape[0])



def uses_of(rec: Record) -> list[tuple[torch.nn.Parameter, Use]]:
    """The weight's and the bias's uses in one recorded call of a layer."""
    rec.input_ready()
    found: list[tuple[torch.nn.Parameter, Use]] = []
    module = rec.module
    weight = getattr(module, "weight", None)
    entries: list[tuple[Any, LayerEinsum, list[Any], tuple[int, ...], Any]] = []
    if rec.entries is not None:
        entries = [(p, layer, ops, shape, None) for p, layer, ops, shape in rec.entries]
    elif isinstance(weight, torch.nn.Parameter) and weight.requires_grad:
        entries.append((weight, rec.layer, rec.operands, rec.w_shape, rec.per_example))
    reduced = rec.reduced if rec.entries is None else None
    bias = getattr(module, "bias", None)
    if rec.entries is None and isinstance(bias, torch.nn.Parameter) and bias.requires_grad:
        layer, ops = bias_layer(bias, rec.y_shape, channel_axes(module, rec.y_shape))
        entries.append((bias, layer, ops, tuple(bias.shape), rec.bias_per_example))
    for p, layer, ops, shape, per in entries:
        ops = [o.detach() if isinstance(o, torch.Tensor) else o for o in ops]
        if rec.g is None and rec.s is None and rec.h is None:
            found.append((p, Use(layer, ops, None, None, per, shape, None,
                                  reduced if p is weight else None,
                                  rec.y_shape[0] if rec.y_shape else None)))
            continue  # nothing to reshape (and the input may be let go: DP-SGD)
        y_shape = tuple(layer_output_shape(layer, ops))
        g = None if rec.g is None else rec.g.reshape(y_shape)
        if per is None and g is not None and rec.entries is None and elementwise(layer):
            # An elementwise weight (a bias, a norm's affine weight): its per-example
            # gradients, no larger than the output gradient, take one pass over it.
            # Formed once here, every first-order quantity (DP-SGD's clipped sum too)
            # reads them.
            per = (bias_gradient(layer, g, per_example=True) if p is bias
                   else quantity("grad_batch", layer, ops, g=g))
        s = None if rec.s is None else rec.s.reshape(*y_shape, rec.s.shape[-1])
        h = None if rec.h is None else rec.h.reshape(*y_shape, *y_shape[1:])
        found.append((p, Use(layer, ops, g, s, per, shape, h,
                              reduced if p is weight else None)))
    return found


def elementwise(layer: LayerEinsum) -> bool:
    """Whether ``layer``'s weight is elementwise (a bias, a norm's affine weight): the
    output keeps its every index, so its per-example gradients are no larger than a row
    of the output gradient."""
    return set(layer.inputs[layer.w]) <= set(layer.output)


def let_go(rec: Record, uses: dict[torch.nn.Parameter, Use] | None = None) -> None:
    """Let go of ``rec``'s input and output gradient once its weight's quantities are
    read in backward; a tracked bias first forms its per-example gradients from the
    output gradient (one reduction, no larger than a row of it per example), which its
    quantities then read. ``uses``: ``uses_of(rec)``, where the caller has them."""
    bias = getattr(rec.module, "bias", None)
    if (rec.bias_per_example is None and rec.g is not None
            and isinstance(bias, torch.nn.Parameter) and bias.requires_grad):
        use = (uses if uses is not None else dict(uses_of(rec))).get(bias)
        rec.bias_per_example = None if use is None else use.per_example
    rec.keep_per_example_only()


def settle(rec: Record) -> None:
    """In backward, as ``rec``'s output gradient arrives, with first-order quantities
    only: a layer whose every tracked parameter is elementwise (a norm's affine weight
    and bias) forms their per-example gradients now, one reduction each and no larger
    than a row of the output gradient per example, and lets go of the output gradient
    and the input (the normalized one: as large as the output), which would otherwise
    be held until the quantities are read."""
    if (rec.entries is not None or rec.per_example is not None
            or torch.is_grad_enabled()):  # create_graph: more passes may follow
        return
    weight = getattr(rec.module, "weight", None)
    if (isinstance(weight, torch.nn.Parameter) and weight.requires_grad
            and not elementwise(rec.layer)):
        return  # told before forming the bias's per-example gradients
    found = uses_of(rec)
    if not found or any(u.per_example is None for _, u in found):
        return
    bias = getattr(rec.module, "bias", None)
    for p, use in found:
        if p is bias:
            rec.bias_per_example = use.per_example
        else:
            rec.per_example = use.per_example
    rec.keep_per_example_only()


def weights_of(rec: Record) -> set[int]:
    """The ids of the parameters ``rec``'s einsums hold as their weight."""
    if rec.entries is not None:
        return {id(p) for p, *_ in rec.entries}
    weight = getattr(rec.module, "weight", None)
    return set() if weight is None else {id(weight)}
