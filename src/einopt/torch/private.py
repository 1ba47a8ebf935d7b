"""DP-SGD the einsum way: every example's gradient clipped to a norm bound, summed, and
noised, in one forward and one backward pass.

Each tracked layer's per-example squared norms are the ``grad_norm2`` einsum (the
planner picks the Gram, "ghost", form or materializing by cost), and its clipped sum
``sum_n c_n dL_n/dW`` is one more einsum: the weight's gradient einsum with the
per-example factors ``c`` as an extra operand, over the inputs and output gradients
recorded in the pass ("book-keeping": no second backward pass, and per-example
gradients are never formed where a cheaper order exists, nor where they outsize the
input and output gradient they would replace until the step ends). Privacy is
accounted by ``dp-accounting`` (the ``dp`` extra).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from ..errors import EinsumError
from ..quantities import clipped_sum
from .tracker import Tracker, check_trackable

__all__ = ["DPSGD"]

CLIPPING = ("flat", "per_layer")


class DPSGD:
    """A clipped, noised gradient step for ``model``'s trainable parameters.

    Inside ``with dp.step():`` run the forward pass and ``loss.backward()`` on the
    batch loss (mean of per-example losses, or ``loss_reduction="sum"``); on leaving
    the block every parameter's ``.grad`` is ``(sum_n c_n g_n + noise) / B``: ``g_n``
    each example's gradient of its own loss, ``c_n = min(1, C / ||g_n||)`` with the
    norm over all parameters (``clipping="flat"``) or per parameter
    (``"per_layer"``, each with bound ``C / sqrt(P)`` so the whole stays within
    ``C``, or a sequence of bounds in ``model.parameters()`` order), noise
    ``N(0, (sigma C)^2)`` per coordinate, and ``B`` the expected batch size (the
    batch's size unless given). Then call the optimizer's ``step()``.

    Args:
        model: every trainable parameter must belong to a layer
            :mod:`einopt.torch.layers` writes as an einsum (else an error names it).
        max_grad_norm: the clipping bound ``C``.
        noise_multiplier: ``sigma``.
        sample_rate: the probability an example is in a batch (Poisson sampling),
            for :meth:`epsilon`.
    """

    def __init__(self, model: torch.nn.Module, max_grad_norm: float | Sequence[float],
                 noise_multiplier: float, *, clipping: str = "flat",
                 loss_reduction: str = "mean", expected_batch_size: int | None = None,
                 sample_rate: float | None = None,
                 generator: torch.Generator | None = None) -> None:
        if clipping not in CLIPPING:
            raise EinsumError(f"clipping={clipping!r}: choose 'flat' or 'per_layer'")
        if noise_multiplier < 0:
            raise EinsumError(f"noise_multiplier={noise_multiplier} is negative")
        self.model = model
        self.params = [p for p in model.parameters() if p.requires_grad]
        bounds = _bounds(max_grad_norm, clipping, len(self.params))
        self.bounds = dict(zip(self.params, bounds, strict=True))
        self.max_grad_norm = max_grad_norm
        self.noise_multiplier = float(noise_multiplier)
        self.clipping, self.loss_reduction = clipping, loss_reduction
        self.expected_batch_size = expected_batch_size
        self.sample_rate = sample_rate
        self.generator = generator
        self.steps = 0
        # the noise's scale: the bound on the whole gradient's norm
        self.sensitivity = (float(max_grad_norm) if clipping == "flat"
                            else math.sqrt(sum(b * b for b in bounds)))
        check_trackable(model)

    @contextmanager
    def step(self) -> Iterator[Tracker]:
        """Record one batch's forward and backward pass; on leaving, replace every
        parameter's gradient by the clipped, noised one."""
        tracker = Tracker(self.model, ["grad_norm2"], None, self.loss_reduction,
                          record_only=True)
        tracker._attach()
        try:
            yield tracker
        finally:
            tracker._detach()
        self._apply(tracker)

    def _apply(self, tracker: Tracker) -> None:
        uses = tracker._uses()
        missing = [p for p in self.params if p not in uses]
        if missing:
            raise EinsumError(f"{len(missing)} trainable parameter(s) took no part in the "
                              "recorded pass (their layers did not run, or ran outside "
                              "the block)")
        norms = {p: tracker._value("grad_norm2", uses[p], tuple(p.shape))
                 for p in self.params}
        n = next(iter(norms.values())).shape[0]
        scale = n if self.loss_reduction == "mean" else 1  # recorded g: the batch loss's
        batch = self.expected_batch_size or n
        if self.clipping == "flat":
            total = torch.stack(list(norms.values())).sum(0).sqrt()
            factor = (self.max_grad_norm / (total + 1e-6)).clamp(max=1.0)
            factors = dict.fromkeys(self.params, factor)
        else:
            factors = {p: (self.bounds[p] / (v.sqrt() + 1e-6)).clamp(max=1.0)
                       for p, v in norms.items()}
        sigma = self.noise_multiplier * self.sensitivity
        noises = self._noise() if sigma > 0 else {}
        scaled: dict[tuple[int, torch.dtype], torch.Tensor] = {}  # flat: one for all
        for p in self.params:
            key = (id(factors[p]), p.dtype)
            c = scaled.get(key)
            if c is None:  # 1/B folded into the factors
                c = scaled[key] = (factors[p] * (scale / batch)).to(p.dtype)
            total_grad = None
            for u in uses[p]:
                if u.per_example is not None:  # formed in backward: scale and sum them
                    part = torch.tensordot(c, u.per_example, dims=1).reshape(p.shape)
                else:
                    if u.g is None:
                        continue
                    part = clipped_sum(u.layer, u.operands, u.g, c).reshape(p.shape)
                total_grad = part if total_grad is None else total_grad + part
            if total_grad is None:
                total_grad = torch.zeros_like(p)
            if sigma > 0 and total_grad.is_contiguous():  # a fresh sum: noised in place
                total_grad.add_(noises[p], alpha=sigma / batch)
            elif sigma > 0:
                total_grad = torch.add(total_grad, noises[p], alpha=sigma / batch)
            p.grad = total_grad
        self.steps += 1

    def _noise(self) -> dict[torch.nn.Parameter, torch.Tensor]:
        """Standard Gaussian noise shaped like each parameter: one draw per dtype and
        device, split into views (one sampler call instead of one per tensor)."""
        groups: dict[tuple[torch.dtype, torch.device], list[torch.nn.Parameter]] = {}
        for p in self.params:
            groups.setdefault((p.dtype, p.device), []).append(p)
        noises: dict[torch.nn.Parameter, torch.Tensor] = {}
        for (dtype, device), ps in groups.items():
            flat = torch.randn(sum(p.numel() for p in ps), generator=self.generator,
                               dtype=dtype, device=device)
            for p, part in zip(ps, flat.split([p.numel() for p in ps]), strict=True):
                noises[p] = part.view(p.shape)
        return noises

    def epsilon(self, delta: float) -> float:
        """The privacy spent so far, ``(epsilon, delta)``-DP, by the Renyi DP accountant
        of ``dp-accounting`` (Poisson sampling at ``sample_rate``)."""
        if self.sample_rate is None:
            raise EinsumError("epsilon needs sample_rate (batch size / dataset size)")
        try:
            import dp_accounting
        except ImportError:
            raise EinsumError("privacy accounting needs the 'dp' extra "
                              "(pip install einopt[dp])") from None
        accountant = dp_accounting.rdp.RdpAccountant()
        event = dp_accounting.PoissonSampledDpEvent(
            self.sample_rate, dp_accounting.GaussianDpEvent(self.noise_multiplier))
        accountant.compose(event, self.steps)
        return float(accountant.get_epsilon(delta))


def _bounds(max_grad_norm: float | Sequence[float], clipping: str, count: int) -> list[float]:
    """Each parameter's clipping bound."""
    if isinstance(max_grad_norm, (int, float)):
        if max_grad_norm <= 0:
            raise EinsumError(f"max_grad_norm={max_grad_norm} must be positive")
        if clipping == "flat":
            return [float(max_grad_norm)] * count
        return [float(max_grad_norm) / math.sqrt(max(count, 1))] * count
    bounds = [float(b) for b in max_grad_norm]
    if clipping == "flat" or len(bounds) != count or min(bounds, default=1) <= 0:
        raise EinsumError(f"max_grad_norm: one positive bound per trainable parameter "
                          f"({count}) with clipping='per_layer'; got {len(bounds)}")
    return bounds
