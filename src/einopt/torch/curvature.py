"""The curvature the tracker carries back: the loss Hessian's factor at the model output
(``S`` with ``d2L/dout2 = S S^T`` per example) and the model's own second derivatives by
double backward (for the exact Hessian quantities)."""

from __future__ import annotations

import math

import torch

from ..errors import EinsumError

__all__ = ["loss_factor", "double_backward"]


def loss_factor(out: torch.Tensor, loss: str | None, reduction: str) -> torch.Tensor:
    """``S`` with ``d2L/dout2 = S S^T`` per example, as ``(C, *out.shape)`` columns.

    ``cross_entropy`` takes logits ``(N, ..., K)``, classes last, with one loss term
    per position (as a language model's ``(N, T, V)``): the Hessian is block diagonal
    over positions, so ``S`` has a column per position and class.
    """
    n = out.shape[0]
    if loss == "mse":
        numel = out.numel() if reduction == "mean" else 1
        scale = math.sqrt(2.0 / numel)
        per = out[0].numel()
        eye = torch.eye(per, dtype=out.dtype, device=out.device) * scale
        return eye.reshape(per, 1, *out.shape[1:]).expand(per, *out.shape).contiguous()
    if loss == "cross_entropy":
        if out.dim() < 2:
            raise EinsumError(f"cross_entropy tracking takes (N, ..., K) logits, got shape "
                              f"{tuple(out.shape)}")
        k = out.shape[-1]
        positions = out.shape[1:-1]
        count = math.prod(positions)
        p = torch.softmax(out.reshape(n, count, k), dim=-1)
        sq = p.sqrt()
        scale = 1.0 / math.sqrt(n * count) if reduction == "mean" else 1.0
        # S = diag(sqrt p) - p sqrt(p)^T per position, S S^T = diag(p) - p p^T
        s = (torch.diag_embed(sq) - p[..., :, None] * sq[..., None, :]) * scale  # n t k c
        eye = torch.eye(count, dtype=out.dtype, device=out.device)
        cols = torch.einsum("ntkc,tu->tcnuk", s, eye)  # column (t, c) holds position t only
        return cols.reshape(count * k, *out.shape).contiguous()
    raise EinsumError(f"unknown loss {loss!r}")


def double_backward(u: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
    """``d(u . e_k)/dy`` for every basis direction ``e_k`` of one example's entries (the
    same entry of every example at once): batched, or one by one where an operation's
    double backward cannot be batched."""
    n, size = y.shape[0], y[0].numel()
    basis = torch.eye(size, dtype=y.dtype, device=y.device)
    basis = basis[:, None, :].expand(size, n, size).reshape(size, *y.shape)
    try:
        (rows,) = torch.autograd.grad(u, y, grad_outputs=basis, retain_graph=True,
                                      is_grads_batched=True, allow_unused=True)
        return rows
    except RuntimeError:
        found = [torch.autograd.grad(u, y, grad_outputs=b, retain_graph=True,
                                     allow_unused=True)[0] for b in basis]
        if found[0] is None:
            return None
        return torch.stack(found)
