"""Each parameterized layer of ``torch.nn`` written as the einsum linear in its weight.

A tracked layer is ``y = einsum(terms, x, W, constants...)`` (:class:`LayerEinsum`)
plus, where it has one, a bias ``y[n, ..., o, ...] = 1[n, ...] b[o, ...]``:

=========================  ================================================================
``Linear``                 ``x[n, t..., i] W[o, i]``
``Conv{1,2,3}d``           input, kernel and one index pattern per spatial dimension (every
                           padding mode: a non-zero mode pads the input first)
``ConvTranspose{1,2,3}d``  the convolution's patterns with the output position summed
``Embedding``              ``onehot[n, t..., v] W[v, o]``: a selector einsum
``EmbeddingBag``           ``counts[n, v] W[v, o]``: each bag's (weighted) counts
``LayerNorm``, ``RMSNorm``  ``xhat[n, t..., f...] w[f...]`` (``xhat`` the normalized input)
``GroupNorm``              ``xhat[n, c, s...] w[c]``
``BatchNorm`` (eval)       ``xhat[n, c, s...] w[c]`` with the running statistics
=========================  ================================================================

``MultiheadAttention`` (:mod:`.attention`, through its projections) and ``RNN``,
``LSTM``, ``GRU`` (:mod:`.recurrent`, over their time steps) run a rewritten forward
pass while tracked. A module of one's own joins by an ``einsum_layer(x)`` method.
Modules that hold parameters and are none of these are named by :func:`unsupported`
before tracking starts.
"""

from __future__ import annotations

from typing import Any

import torch

from ..api import einsum
from ..nn.functional import conv_einsum, conv_transpose_einsum
from ..quantities import LayerEinsum

__all__ = ["layer_einsum", "supported", "unsupported", "bias_layer", "bias_gradient",
           "channel_axes", "layer_output_shape", "linear_layer", "linear_entries", "Entry",
           "normalized_input", "NORMS"]

#: one parameter's einsum in a rewritten module: (parameter, layer, operands, the
#: parameter's shape in the einsum)
Entry = tuple[torch.nn.Parameter, LayerEinsum, list[Any], tuple[int, ...]]

_CONVS = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
_TRANSPOSED = (torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)
_BATCH_NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
_RMS_NORM = getattr(torch.nn, "RMSNorm", ())
_INSTANCE_NORMS = (torch.nn.InstanceNorm1d, torch.nn.InstanceNorm2d, torch.nn.InstanceNorm3d)
#: the norms: an affine weight and bias on the normalized input
NORMS = (torch.nn.LayerNorm, torch.nn.GroupNorm, *_BATCH_NORMS, *_INSTANCE_NORMS)
if _RMS_NORM:
    NORMS = (*NORMS, _RMS_NORM)
#: the modules whose weight and bias :func:`layer_einsum` writes as einsums
SUPPORTED = (torch.nn.Linear, *_CONVS, *_TRANSPOSED, torch.nn.Embedding, torch.nn.EmbeddingBag,
             *NORMS)


def supported(module: torch.nn.Module) -> bool:
    """Whether :func:`layer_einsum` writes this module's weight as an einsum."""
    return callable(getattr(module, "einsum_layer", None)) or isinstance(module, SUPPORTED)


def unsupported(module: torch.nn.Module) -> str | None:
    """Why this module's own trainable parameters cannot be tracked, or None when they can
    (or it holds none)."""
    own = [name for name, p in module.named_parameters(recurse=False) if p.requires_grad]
    if not own:
        return None
    if isinstance(module, _BATCH_NORMS) and _batch_statistics(module):
        return ("BatchNorm in training mode mixes the examples through the batch's "
                "statistics, so per-example gradients are not defined; use GroupNorm or "
                "LayerNorm, put the module in eval mode, or freeze its parameters")
    if isinstance(module, _INSTANCE_NORMS) and module.track_running_stats and module.training:
        return "InstanceNorm with track_running_stats is tracked in eval mode only"
    if isinstance(module, torch.nn.RNNBase):  # rewritten over time steps while tracked
        return None
    if isinstance(module, torch.nn.MultiheadAttention):
        if module.bias_k is not None:
            return ("MultiheadAttention with add_bias_kv: its extra key and value rows "
                    "are added after the projections; they are not tracked")
        return None
    if isinstance(module, torch.nn.EmbeddingBag) and module.mode == "max":
        return "EmbeddingBag with mode='max' is not linear in its weight"
    if isinstance(module, (torch.nn.Embedding, torch.nn.EmbeddingBag)) and (
            module.scale_grad_by_freq or module.max_norm is not None):
        return ("Embedding with scale_grad_by_freq or max_norm changes its gradient with "
                "the batch; per-example gradients are not its einsum's")
    if supported(module):
        extra = [name for name in own if name not in ("weight", "bias")]
        if extra:
            return f"its parameter {extra[0]!r} is not a weight or bias of its einsum"
        return None
    return (f"{type(module).__name__} holds parameters ({', '.join(own)}) and is not a "
            "supported layer; freeze them (requires_grad_(False)) or give the module an "
            "einsum_layer(x) method")


def _batch_statistics(module: torch.nn.Module) -> bool:
    """Whether a BatchNorm normalizes by the batch's own statistics."""
    return bool(module.training or module.running_mean is None)


def layer_einsum(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor | None = None,
                 inputs: tuple[Any, ...] = (), normalized: bool = True
                 ) -> tuple[LayerEinsum, list[Any], tuple[int, ...]] | None:
    """``(layer, operands, weight shape in the einsum)`` of a supported module on input
    ``x`` (and output ``y``, which a transposed convolution reads its size from, and
    all positional ``inputs``, which an EmbeddingBag reads its offsets from), or None
    when it is not one or has no trainable weight. With ``normalized=False`` a norm's
    einsum gets its raw input in place of the normalized one, for the caller to
    normalize (:func:`normalized_input`) when it needs it."""
    custom = getattr(module, "einsum_layer", None)
    if callable(custom):
        return custom(x)  # type: ignore[no-any-return]
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        return None
    if isinstance(module, torch.nn.Linear):
        return linear_layer(x.dim()), [x, weight], tuple(weight.shape)
    if isinstance(module, _CONVS):
        padding: Any = module.padding
        if module.padding_mode != "zeros":  # pad as torch does, then a valid convolution
            x = torch.nn.functional.pad(x, module._reversed_padding_repeated_twice,
                                        mode=module.padding_mode)
            padding = 0
        operands, terms, output = conv_einsum(x, weight, module.stride, padding,
                                              module.dilation, module.groups)
        return LayerEinsum(tuple(terms), output, 0, 1), operands, tuple(operands[1].shape)
    if isinstance(module, _TRANSPOSED):
        nd = x.dim() - 2
        extra = list(module.output_padding)
        if y is not None:  # forward(x, output_size=...) picks its own output padding
            base = [(x.shape[2 + t] - 1) * module.stride[t] - 2 * module.padding[t]
                    + module.dilation[t] * (weight.shape[2 + t] - 1) + 1 for t in range(nd)]
            extra = [int(y.shape[2 + t]) - base[t] for t in range(nd)]
        operands, terms, output = conv_transpose_einsum(x, weight, module.stride,
                                                        module.padding, extra,
                                                        module.groups, module.dilation)
        return LayerEinsum(tuple(terms), output, 0, 1), operands, tuple(operands[1].shape)
    if isinstance(module, torch.nn.Embedding):
        hot = torch.nn.functional.one_hot(x.long(), module.num_embeddings).to(weight.dtype)
        if module.padding_idx is not None:  # that row gets no gradient in torch
            hot[..., module.padding_idx] = 0
        labels = ["n", *(f"t{k}" for k in range(x.dim() - 1))]
        layer = LayerEinsum(((*labels, "v"), ("v", "o")), (*labels, "o"), 0, 1)
        return layer, [hot, weight], tuple(weight.shape)
    if isinstance(module, torch.nn.EmbeddingBag):
        counts = _bag_counts(module, x, *inputs[1:3])
        layer = LayerEinsum((("n", "v"), ("v", "o")), ("n", "o"), 0, 1)
        return layer, [counts.to(weight.dtype), weight], tuple(weight.shape)
    if isinstance(module, NORMS):
        xhat = normalized_input(module, x) if normalized else x
        axes = channel_axes(module, tuple(xhat.shape))
        labels = ["n", *(f"d{k}" for k in range(1, xhat.dim()))]
        w_labels = tuple(labels[a] for a in axes)
        layer = LayerEinsum((tuple(labels), w_labels), tuple(labels), 0, 1)
        return layer, [xhat, weight], tuple(weight.shape)
    return None


def linear_layer(ndim: int) -> LayerEinsum:
    """``nn.Linear``'s einsum on an input of ``ndim`` axes ``(N, *, in)``: the axes
    between the batch and the features are positions."""
    labels = ["n", *(f"t{k}" for k in range(ndim - 2))]
    return LayerEinsum(((*labels, "i"), ("o", "i")), (*labels, "o"), 0, 1)


def linear_entries(weight: Any, bias: Any, x: torch.Tensor) -> list[Entry]:
    """The einsums of ``linear(x, weight, bias)`` that hold trainable parameters."""
    found: list[Entry] = []
    if weight.requires_grad:
        found.append((weight, linear_layer(x.dim()), [x, weight], tuple(weight.shape)))
    if bias is not None and bias.requires_grad:
        shape = (*x.shape[:-1], weight.shape[0])
        layer, ops = bias_layer(bias, shape, (len(shape) - 1,))
        found.append((bias, layer, ops, tuple(bias.shape)))
    return found


def _bag_counts(module: torch.nn.EmbeddingBag, x: torch.Tensor, offsets: Any = None,
                weights: Any = None) -> torch.Tensor:
    """``(bags, num_embeddings)``: how much of each row each bag sums (its weights,
    divided by the bag's size for ``mode='mean'``), padding rows left out."""
    if x.dim() == 2:
        bags, size = x.shape
        bag = torch.arange(bags, device=x.device).repeat_interleave(size)
        x = x.reshape(-1)
        weights = None if weights is None else weights.reshape(-1)
    else:
        ends = torch.cat([offsets[1:], offsets.new_tensor([x.numel()])])
        if module.include_last_offset:
            ends = offsets[1:]
            offsets = offsets[:-1]
        bag = torch.repeat_interleave(torch.arange(len(offsets), device=x.device),
                                      ends - offsets)
        bags = len(offsets)
    w = (torch.ones(x.shape, dtype=torch.float64, device=x.device) if weights is None
         else weights.detach().to(torch.float64))
    if module.padding_idx is not None:
        w = w * (x != module.padding_idx)
    counts = torch.zeros(bags, module.num_embeddings, dtype=torch.float64, device=x.device)
    counts.index_put_((bag, x.long()), w, accumulate=True)
    if module.mode == "mean":
        sizes = torch.bincount(bag, weights=(x != module.padding_idx).double()
                               if module.padding_idx is not None else None, minlength=bags)
        counts = counts / sizes.clamp(min=1)[:, None]
    return counts


def normalized_input(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The normalized input, before the norm's affine weight and bias."""
    f = torch.nn.functional
    if isinstance(module, torch.nn.LayerNorm):
        return f.layer_norm(x, module.normalized_shape, eps=module.eps)
    if _RMS_NORM and isinstance(module, _RMS_NORM):
        return f.rms_norm(x, module.normalized_shape, eps=module.eps)
    if isinstance(module, torch.nn.GroupNorm):
        return f.group_norm(x, module.num_groups, eps=module.eps)
    if isinstance(module, _INSTANCE_NORMS):
        use_input = module.training or not module.track_running_stats
        return f.instance_norm(x, module.running_mean, module.running_var,
                               use_input_stats=use_input, eps=module.eps)
    return f.batch_norm(x, module.running_mean, module.running_var, training=False,
                        eps=module.eps)


def channel_axes(module: torch.nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The output axes a bias (or a norm's weight) runs along: the trailing normalized
    axes of LayerNorm and RMSNorm, the channel axis of convolutions and the other norms,
    else the last axis."""
    if isinstance(module, torch.nn.LayerNorm) or (_RMS_NORM and isinstance(module, _RMS_NORM)):
        k = len(module.normalized_shape)
        return tuple(range(len(shape) - k, len(shape)))
    if isinstance(module, (*_CONVS, *_TRANSPOSED, *_BATCH_NORMS, *_INSTANCE_NORMS,
                           torch.nn.GroupNorm)):
        return (1,)
    return (len(shape) - 1,)


def bias_layer(bias: torch.Tensor, shape: tuple[int, ...], axes: tuple[int, ...]
               ) -> tuple[LayerEinsum, list[Any]]:
    """``y[n, ..., o, ...] = 1[n, ...] b[o, ...]``: a bias along ``axes`` of an output of
    ``shape``, as an einsum layer, and its operands."""
    labels = ["n", *(f"d{k}" for k in range(1, len(shape)))]
    others = [lab for k, lab in enumerate(labels) if k not in axes]
    ones = torch.ones([shape[k] for k in range(len(shape)) if k not in axes],
                      dtype=bias.dtype, device=bias.device)
    layer = LayerEinsum((tuple(others), tuple(labels[a] for a in axes)), tuple(labels), 0, 1)
    return layer, [ones, bias]


def bias_gradient(layer: LayerEinsum, g: Any, per_example: bool) -> Any:
    """The gradient of a :func:`bias_layer` einsum's bias from the output gradient ``g``:
    ``g`` summed over the positions (and the batch, unless ``per_example``), one
    reduction instead of a product with the all-ones operand."""
    w_labels = list(layer.inputs[layer.w])
    return einsum(g, list(layer.output), [layer.batch, *w_labels] if per_example else w_labels)


def layer_output_shape(layer: LayerEinsum, ops: list[Any]) -> list[int]:
    """The einsum output's shape (the layer's output, with groups split)."""
    sizes: dict[Any, int] = {}
    for term, op in zip(layer.inputs, ops, strict=True):
        for lab, d in zip(term, op.shape, strict=True):
            sizes[lab] = max(sizes.get(lab, 1), int(d))
    return [sizes[lab] for lab in layer.output]
