"""``nn.MultiheadAttention`` tracked through its projections.

While tracked, the module runs a forward pass of the same value whose input projections
are einsum layers of their own: ``q[n, t, o] = sum_{s, i} x[n, t, i] sel[s] W[s, o, i]``
with ``W`` the packed ``in_proj_weight`` viewed ``(3, E, E)`` and ``sel`` picking the
query, key or value block (and the bias alike); with ``kdim``/``vdim`` each has its own
weight. The attention itself then runs as torch's with identity projections, and the
output projection as the module's own ``out_proj`` (a tracked ``Linear``). A record of
each projection (its einsums and output) goes to the tracker through ``record``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..errors import EinsumError
from ..quantities import LayerEinsum
from .layers import Entry, linear_entries

__all__ = ["attention_forward", "attention_params"]

_WEIGHT = LayerEinsum((("n", "t", "i"), ("s", "o", "i"), ("s",)), ("n", "t", "o"), 0, 1)
_BIAS = LayerEinsum((("n", "t"), ("s", "o"), ("s",)), ("n", "t", "o"), 0, 1)


def attention_forward(module: torch.nn.MultiheadAttention,
                      record: Callable[[torch.Tensor, list[Entry]], torch.Tensor],
                      query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                      attn_mask: torch.Tensor | None = None,
                      average_attn_weights: bool = True, is_causal: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``module(query, key, value, ...)`` with its projections recorded (see above)."""
    if query.dim() != 3:
        raise EinsumError("tracking MultiheadAttention needs batched inputs (3-d): "
                          "per-example quantities need the batch axis")
    if not module.batch_first:  # (L, N, E) -> (N, L, E) for the records
        query, key, value = (t.transpose(0, 1) for t in (query, key, value))
    e = module.embed_dim
    projected = []
    for s, x in enumerate((query, key, value)):
        projected.append(record(_project(module, s, x), _entries(module, s, x)))
    q, k, v = (p.transpose(0, 1) for p in projected)  # torch's (L, N, E)
    eye = torch.eye(e, dtype=q.dtype, device=q.device)
    out, weights = torch.nn.functional.multi_head_attention_forward(
        q, k, v, e, module.num_heads, None, None, None, None, module.add_zero_attn,
        module.dropout, eye, None, training=module.training,
        key_padding_mask=key_padding_mask, need_weights=need_weights, attn_mask=attn_mask,
        use_separate_proj_weight=True, q_proj_weight=eye, k_proj_weight=eye,
        v_proj_weight=eye, average_attn_weights=average_attn_weights, is_causal=is_causal)
    out = out.transpose(0, 1)  # (N, L, E)
    out = module.out_proj(out)  # a tracked Linear
    return (out if module.batch_first else out.transpose(0, 1)), weights


def _weights(module: torch.nn.MultiheadAttention, s: int) -> tuple[Any, Any]:
    """The projection ``s``'s weight and bias as the module holds them (packed or not)."""
    bias = module.in_proj_bias
    if module._qkv_same_embed_dim:
        return module.in_proj_weight, bias
    return (module.q_proj_weight, module.k_proj_weight, module.v_proj_weight)[s], bias


def _project(module: torch.nn.MultiheadAttention, s: int, x: torch.Tensor) -> torch.Tensor:
    e = module.embed_dim
    weight, bias = _weights(module, s)
    if module._qkv_same_embed_dim:
        weight = weight[s * e:(s + 1) * e]
    b = None if bias is None else bias[s * e:(s + 1) * e]
    return torch.nn.functional.linear(x, weight, b)


def _entries(module: torch.nn.MultiheadAttention, s: int, x: torch.Tensor) -> list[Entry]:
    """The einsums of projection ``s`` (query 0, key 1, value 2) on ``x`` ``(N, L, in)``."""
    e = module.embed_dim
    weight, bias = _weights(module, s)
    sel = torch.zeros(3, dtype=x.dtype, device=x.device)
    sel[s] = 1
    found: list[Entry] = []
    if not module._qkv_same_embed_dim:  # its own weight (the bias is still packed)
        found += linear_entries(weight, None, x)
    elif weight.requires_grad:
        w = weight.view(3, e, e)
        found.append((weight, _WEIGHT, [x, w, sel], tuple(w.shape)))
    if bias is not None and bias.requires_grad:
        ones = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device)
        b = bias.view(3, e)
        found.append((bias, _BIAS, [ones, b, sel], tuple(b.shape)))
    return found


def attention_params(module: torch.nn.MultiheadAttention) -> list[torch.nn.Parameter]:
    """The input projections' trainable parameters (``out_proj`` is a Linear of its own)."""
    found = [module.in_proj_weight, module.in_proj_bias, module.q_proj_weight,
             module.k_proj_weight, module.v_proj_weight]
    return [p for p in found if isinstance(p, torch.nn.Parameter) and p.requires_grad]
