"""The tracker: hooks that record each supported layer's einsum operands and output
gradients during the forward and backward passes, and the quantities read from them.

Second-order quantities need ``loss="mse"`` or ``"cross_entropy"`` (mean reduction,
torch's default; ``loss_reduction="sum"`` for sums). ``ggn_*``: the loss Hessian's
factor ``S`` at the model output is backpropagated to every layer's output in one
batched autograd call while the backward pass runs (the generalized Gauss-Newton).
``hessian_*``: exact; each layer output's whole per-example Hessian adds the model's
own curvature by double backward, one direction per entry of an example's output
(meant for small models), and the weight's Hessian is that between the einsum's
Jacobians, exactly, since every tracked layer is linear in its weight.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from ..caches import BoundedDict
from ..errors import EinsumError
from ..quantities import (
    FIRST_ORDER,
    LayerEinsum,
    first_order_plan,
    from_per_example,
    quantity,
    shared_quantity,
)
from ..structured.rewrite import spec_of
from .attention import attention_forward, attention_params
from .curvature import double_backward, loss_factor
from .layers import (
    NORMS,
    Entry,
    layer_einsum,
    layer_output_shape,
    normalized_input,
    supported,
    unsupported,
)
from .recurrent import RECURRENT, recurrent_forward, recurrent_params
from .rewired import (
    LINEAR_OR_CONV,
    FromExamples,
    Record,
    Recorded,
    input_grad_only,
)
from .uses import Use, let_go, settle, uses_of, weights_of

__all__ = ["track", "Tracker", "NAMES", "CONVENTIONS", "check_trackable"]

#: quantity names: the einopt.quantities ones, and a torch-style alias
NAMES = {
    "grad": "grad", "grad_batch": "grad_batch", "grad_norm2": "grad_norm2",
    "grad_sq_sum": "grad_sq_sum", "variance": "grad_sq_sum",
    "ggn_diag": "ggn_diag", "ggn_trace": "ggn_trace", "ggn_trace_batch": "ggn_trace_batch",
    "hessian_diag": "hessian_diag", "hessian_trace": "hessian_trace",
    "hessian_trace_batch": "hessian_trace_batch", "kfac": "kfac",
}
_HESSIAN = {"hessian_diag", "hessian_trace", "hessian_trace_batch"}
_SECOND = {"ggn_diag", "ggn_trace", "ggn_trace_batch", *_HESSIAN}
#: how each per-example quantity scales with the per-example loss convention: the power
#: of the batch size it is multiplied by when the loss is the batch mean
_PER_EXAMPLE_POWER = {"grad_batch": 1, "grad_norm2": 2, "grad_sq_sum": 2, "ggn_trace_batch": 1,
                      "hessian_trace_batch": 1}
#: ``"example"``: per-example quantities are those of each example's own loss (as DP-SGD
#: clips them); ``"batch"``: those of its share of the loss as backpropagated
CONVENTIONS = ("example", "batch")
#: per (layer, operand shapes, quantities): whether backward forms per-example gradients
FORMS: BoundedDict[Any, bool] = BoundedDict("tracked backward forms", 1024)


class Tracker:
    """Collects, per tracked parameter, the requested quantities (see :func:`track`)."""

    def __init__(self, model: torch.nn.Module, names: Sequence[str], loss: str | None,
                 loss_reduction: str, convention: str = "example",
                 record_only: bool = False) -> None:
        for q in names:
            if q not in NAMES:
                raise EinsumError(f"unknown quantity {q!r}; choose from "
                                  f"{', '.join(sorted(NAMES))}")
        if convention not in CONVENTIONS:
            raise EinsumError(f"convention={convention!r}: choose 'example' (each example's "
                              "own loss) or 'batch' (its share of the batch loss)")
        if loss_reduction not in ("mean", "sum"):
            raise EinsumError(f"loss_reduction={loss_reduction!r}: choose 'mean' or 'sum'")
        self.names = list(names)
        self.model = model
        self.loss, self.reduction, self.convention = loss, loss_reduction, convention
        self.record_only = record_only  # weights' gradients are the caller's to set
        self._wanted = frozenset(NAMES[q] for q in names)  # the canonical names
        self._second = any(NAMES[q] in _SECOND for q in names)
        self._first_order_only = self._wanted <= set(FIRST_ORDER)
        self._hessian = any(NAMES[q] in _HESSIAN for q in names)
        if self._second and loss not in ("mse", "cross_entropy"):
            raise EinsumError("second-order quantities need loss='mse' or 'cross_entropy'")
        self.records: list[Record] = []
        self._output: torch.Tensor | None = None
        self._handles: list[Any] = []
        self._restore: list[Any] = []
        self._results: dict[torch.nn.Parameter, dict[str, Any]] = {}
        self._tracked: set[torch.nn.Parameter] = set()
        self._propagating = False
        # (records counted, per weight id the records holding it): counted once per set
        # of records, not per layer in backward (a sum over the records per layer was
        # quadratic in the layers)
        self._holders: tuple[int, dict[int, int]] = (-1, {})

    # Hooks.
    def _attach(self) -> None:
        check_trackable(self.model)
        for module in self.model.modules():
            if isinstance(module, torch.nn.MultiheadAttention):
                self._rewrite(module, functools.partial(attention_forward, module, self._virtual))
                self._tracked.update(attention_params(module))
            elif isinstance(module, RECURRENT):
                if self._second:
                    raise EinsumError(f"second-order quantities of {type(module).__name__} "
                                      "are not offered")
                self._rewrite(module, functools.partial(recurrent_forward, module,
                                                        self._virtual, self._virtual_steps))
                self._tracked.update(recurrent_params(module))
            elif supported(module):
                self._handles.append(module.register_forward_hook(self._forward,
                                                                  with_kwargs=True))
                self._tracked.update(p for p in _params(module) if p.requires_grad)
        self._handles.append(self.model.register_forward_pre_hook(self._new_pass))
        if self._second:
            self._handles.append(self.model.register_forward_hook(self._model_output))

    def _new_pass(self, module: torch.nn.Module, inputs: Any) -> None:
        """A forward pass after a backward pass starts afresh (a training loop inside
        the block); calls before any backward (a model run on two inputs for one loss)
        add uses to the same pass."""
        if any(r.seen for r in self.records):
            for r in self.records:
                r.y = None
            self.records.clear()
            self._results.clear()
            self._holders = (-1, {})

    def _rewrite(self, module: torch.nn.Module, forward: Any) -> None:
        """Run ``module`` by ``forward`` (which records its einsums) until the block ends."""
        old = module.__dict__.get("forward")
        module.forward = forward

        def restore() -> None:
            if old is None:
                del module.forward
            else:
                module.forward = old

        self._restore.append(restore)

    def _virtual(self, y: torch.Tensor, entries: list[Entry]) -> torch.Tensor:
        """Record ``y``, the output of a rewritten module's einsums ``entries``."""
        if not entries or not y.requires_grad:
            return y
        _, layer, operands, shape = entries[0]
        self._watch(Record(None, layer, operands, shape, y, entries))  # type: ignore[arg-type]
        return y

    def _watch(self, rec: Record) -> None:
        """Keep ``rec`` and, in backward, its output's gradient."""
        self.records.append(rec)
        self._results.clear()  # a new forward pass: quantities are read afresh

        def keep(g: torch.Tensor) -> None:
            if not self._propagating:  # not the batched pass of the Hessian factor
                rec.arrive()
                rec.g = g.detach()
                if self._first_order_only:
                    settle(rec)
                    self._read_at_once(rec)

        assert rec.y is not None
        self._handles.append(rec.y.register_hook(keep))  # kept by its graph node
        if not self._second:  # only the Hessian factor's pass reads the outputs again
            rec.y = None  # (held, it would keep an output autograd lets go of)

    def _virtual_steps(self, steps: list[tuple[int, torch.Tensor]], entries: list[Entry]
                       ) -> None:
        """Record a weight used once per time step: ``steps`` holds each step's output
        ``(t, z)``; the einsums ``entries`` have the steps as positions, and their output
        gradient is gathered from every step's."""
        if not entries or not steps or not steps[0][1].requires_grad:
            return
        z0 = steps[0][1]
        shape = (z0.shape[0], len(steps), *z0.shape[1:])
        _, layer, operands, w_shape = entries[0]
        rec = Record(None, layer, operands, w_shape, None, entries,  # type: ignore[arg-type]
                      y_shape=shape)
        self.records.append(rec)
        self._results.clear()
        buffer = z0.new_zeros(shape)

        def keep(t: int, g: torch.Tensor) -> None:
            if not self._propagating:
                buffer[:, t] = g.detach()
                rec.g, rec.seen = buffer, True  # (its entries' inputs are kept)

        for t, z in steps:
            self._handles.append(z.register_hook(functools.partial(keep, t)))

    def _detach(self) -> None:
        """Remove every hook and let go of the outputs (and so of the graph)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for restore in self._restore:
            restore()
        self._restore.clear()
        self._output = None
        for r in self.records:
            r.y = None

    def _forward(self, module: torch.nn.Module, inputs: tuple[Any, ...],
                 kwargs: dict[str, Any], y: Any) -> Any:
        x = inputs[0] if inputs else next(iter(kwargs.values()))
        if isinstance(module, torch.nn.EmbeddingBag):  # offsets, per_sample_weights
            inputs = (x, *(inputs[k] if len(inputs) > k else kwargs.get(name)
                           for k, name in ((1, "offsets"), (2, "per_sample_weights"))))
        if (not isinstance(y, torch.Tensor) or not y.requires_grad
                or not any(p.requires_grad for p in _params(module))):
            return None  # nothing of it to track (frozen): nothing to hold
        # A norm's normalized input is formed in backward, where first-order
        # quantities read it at once (not held from the forward pass on).
        defer = (self._first_order_only and isinstance(module, NORMS)
                 and not callable(getattr(module, "einsum_layer", None)))
        found = layer_einsum(module, x, y, inputs, normalized=not defer)
        if found is None:
            return None
        layer, operands, w_shape = found
        rec = Record(module, layer, operands, w_shape, y)
        if defer:
            rec.normalize = functools.partial(normalized_input, module)
        # Either backward runs through one of these (which keeps the gradient itself) ...
        rewired: Any = None
        if self._from_examples(module, layer, operands, y):
            rewired = FromExamples
        elif self.record_only and not self._second and input_grad_only(module):
            rewired = Recorded
        if rewired is not None:
            if rewired is FromExamples:
                rec.reduce = self._reduce
                rec.weight_grads = not self.record_only
            self.records.append(rec)
            self._results.clear()
            rec.y = None  # the rewired output replaces it
            bias = getattr(module, "bias", None)
            return rewired.apply(y.detach(), x, module.weight,
                                 bias if isinstance(bias, torch.nn.Parameter) else None, rec)
        self._watch(rec)  # ... or a hook on the output keeps it
        return None

    def _from_examples(self, module: torch.nn.Module, layer: LayerEinsum,
                       operands: list[Any], y: torch.Tensor) -> bool:
        """Whether to form the per-example gradients in backward and the weight's
        gradient from them: only first-order quantities are tracked, and forming them
        costs less than what it replaces (torch's weight gradient and the quantities'
        own plans; each quantity then reads the per-example gradients, a reduction), or
        ``grad_batch`` is asked for.

        On a layer applied at every position of a sequence (``Linear`` on ``(N, T,
        D)``), the per-example gradients cost the weight gradient's flops, while a
        norm's own plan (two ``T x T`` Gram matrices per example) adds to it. But that
        batched product writes an ``I x O`` matrix per example from two ``T``-row
        operands: where those are larger than its inputs (``N I O`` elements against the
        input's and output gradient's ``N T (I + O)``) it is bound by memory traffic, not
        flops (a GPT's 128-to-512 MLP layers: 1.9 ms in a step against 0.8 ms for the
        weight gradient), and the Gram norms, read in backward, measured faster: so a
        ``Linear`` forms them only where they are smaller (at a tie, a GPT's attention
        projections, the Gram form measured 2-3% faster over three A/B runs of its norms
        step). A convolution's weight-gradient kernel is slow enough that forming pays
        there regardless.

        Under DP-SGD (``record_only``) what backward keeps is held until the step ends:
        the per-example gradients where they are formed, else the input and the output
        gradient. A ``Linear``'s are formed only where they are the smaller, so a GPT's
        layers keep their inputs and output gradients instead (where both are equal, as
        for its attention projections, forming measured slower: a step 2.0x the plain
        one against 1.6x; the clipped sum from them is one matrix product). A
        convolution's are formed up to twice the size of its input and output gradient:
        the clipped sum from those is another pass of the slow weight-gradient kernel,
        after the norms' plan formed them anyway (a ResNet's 64-channel convolutions,
        1.125x: the step 1.45x the plain one against 1.59x)."""
        wanted = self._wanted
        weight = getattr(module, "weight", None)
        if (not self._first_order_only or layer.x != 0
                or not isinstance(module, LINEAR_OR_CONV)
                or getattr(module, "padding_mode", "zeros") != "zeros"
                or not isinstance(weight, torch.nn.Parameter) or not weight.requires_grad):
            return False
        if "grad_batch" in wanted:
            return True
        key = (layer, tuple(spec_of(o) for o in operands), wanted, self.record_only)
        found = FORMS.get(key)
        if found is None:  # planned once per layer and shapes, not every forward
            ops = [o.detach() if isinstance(o, torch.Tensor) else o for o in operands]
            g = y.detach().reshape(layer_output_shape(layer, ops))
            each = first_order_plan("grad_batch", layer, ops, g).flops
            plans = [first_order_plan(q, layer, ops, g).flops for q in wanted - {"grad"}]
            weight_grad = first_order_plan("grad", layer, ops, g)
            elements = int(ops[layer.x].shape[0]) * math.prod(weight_grad.output_shape)
            found = bool(plans) and (
                any(f >= 0.9 * each for f in plans)
                or each + elements * len(plans) <= weight_grad.flops + sum(plans))
            traffic = ops[layer.x].numel() + y.numel()  # what they are formed from
            if isinstance(module, torch.nn.Linear):  # see above
                found = found and elements < traffic
            elif self.record_only:  # held to the step's end (see above)
                found = found and elements <= 2 * traffic
            FORMS[key] = found
        return bool(found)

    def _reduce(self, rec: Record) -> None:
        """In backward, once ``rec``'s per-example gradients are formed: read the tracked
        quantities from them and let them go (a sequence model's would otherwise all be
        held at once), unless they are needed later: DP-SGD's clipped sums,
        ``grad_batch``, or another use of the weight (whose quantities are those of the
        sum over its uses)."""
        if rec.per_example is None or not self._read_in_backward(rec):
            return
        rec.reduced = {q: from_per_example(q, rec.layer, rec.per_example)
                       for q in self._wanted}
        rec.per_example = None
        if not torch.is_grad_enabled():  # (create_graph: more passes may follow)
            let_go(rec)

    def _read_in_backward(self, rec: Record) -> bool:
        """Whether backward may read ``rec``'s quantities and let go of what they come
        from: not where a later read needs it (DP-SGD's clipped sums, ``grad_batch``,
        or another use of the weight, whose quantities are those of the sum over its
        uses)."""
        if self.record_only or "grad_batch" in self._wanted:
            return False
        counted, holders = self._holders
        if counted != len(self.records):  # records are only added within a pass
            holders = {}
            for r in self.records:
                for w in weights_of(r):
                    holders[w] = holders.get(w, 0) + 1
            self._holders = (len(self.records), holders)
        return holders.get(id(getattr(rec.module, "weight", None)), 0) <= 1

    def _read_at_once(self, rec: Record) -> None:
        """In backward, as a layer's output gradient arrives: with first-order
        quantities only, read them now from its input and output gradient (the plans
        that do not form per-example gradients, a norm's Gram form) and let both go.
        Held until the quantities were read after backward, they added a sequence
        model's every input and output gradient to the step's peak memory (autograd
        lets go of each once the layer's backward has run). Not where a later read needs
        them: ``grad_batch``, DP-SGD, a weight used several times (whose quantities are
        those of the sum over its uses), or a pass with ``create_graph`` (another may
        follow). A second backward pass through the same graph (``retain_graph``) then
        raises (:meth:`.rewired.Record.arrive`)."""
        weight = getattr(rec.module, "weight", None)
        if (rec.entries is not None or rec.per_example is not None
                or rec.reduced is not None or rec.g is None
                or not isinstance(weight, torch.nn.Parameter) or not weight.requires_grad
                or torch.is_grad_enabled()  # create_graph: more passes may follow
                or not self._read_in_backward(rec)):
            return
        uses = dict(uses_of(rec))
        use = uses[weight]
        rec.reduced = {q: quantity(q, use.layer, use.operands, g=use.g) for q in self._wanted}
        let_go(rec, uses)

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
        s_out = loss_factor(out.detach(), self.loss, self.reduction)  # (C, *out.shape)
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
        if self._hessian:
            self._exact(out, grad, live)

    def _exact(self, out: torch.Tensor, grad: torch.Tensor, live: list[Record]) -> None:
        """Each layer output's whole per-example Hessian ``d2L/dy2``: the loss's own
        curvature carried back (``S S^T``) plus the model's, ``sum_k dL/dout_k
        d2out_k/dy2``, by double backward with a basis direction per output entry
        (batched over the examples, which the model does not mix)."""
        self._propagating = True
        try:
            for r in live:
                y = r.y
                assert y is not None
                (u,) = torch.autograd.grad(out, y, grad_outputs=grad.detach(),
                                           retain_graph=True, create_graph=True,
                                           allow_unused=True)
                n, size = y.shape[0], y[0].numel()
                h = y.new_zeros(n, size, size)
                if r.s is not None:  # the loss's curvature carried back
                    s = r.s.reshape(n, size, -1)
                    h += s @ s.transpose(1, 2)
                rows = double_backward(u, y) if u is not None and u.requires_grad else None
                if rows is not None:  # the model's own
                    h += rows.reshape(size, n, size).transpose(0, 1).detach()
                r.h = h
        finally:
            self._propagating = False

    # Results.
    def __getitem__(self, param: torch.nn.Parameter) -> dict[str, Any]:
        if param not in self._tracked:
            raise EinsumError("that parameter belongs to no tracked layer (or is frozen)")
        if param not in self._results:
            self._compute()
        try:
            return self._results[param]
        except KeyError:
            raise EinsumError("that parameter's layer did not run in a tracked forward "
                              "pass") from None

    def _uses(self) -> dict[torch.nn.Parameter, list[Use]]:
        """Every tracked parameter's uses in the recorded pass."""
        uses: dict[torch.nn.Parameter, list[Use]] = {}
        for rec in self.records:
            for p, use in uses_of(rec):
                uses.setdefault(p, []).append(use)
        return uses

    def _compute(self) -> None:
        for p, us in self._uses().items():
            self._results[p] = {name: self._value(NAMES[name], us, tuple(p.shape))
                                for name in self.names}

    def _value(self, q: str, uses: list[Use], shape: tuple[int, ...]) -> Any:
        """Quantity ``q`` of a parameter from its uses, in the tracker's convention."""
        if len(uses) == 1:
            u = uses[0]
            if u.reduced is not None and q in u.reduced:
                value = u.reduced[q]
            elif u.per_example is not None and q in FIRST_ORDER:
                value = from_per_example(q, u.layer, u.per_example)
            else:
                value = quantity(q, u.layer, u.operands, g=u.g, s=u.s, h=u.h)
            value = _to_param_shape(q, value, shape)
        elif q in _HESSIAN:
            raise EinsumError(f"{q} of a parameter used several times is not offered (its "
                              "uses' outputs depend on each other through it); ggn_* is")
        elif q == "kfac":  # every use's factors summed (as for extra positions)
            parts = [quantity(q, u.layer, u.operands, g=u.g) for u in uses]
            value = tuple(sum(f[k] for f in parts) for k in range(2))
        elif len({u.shape for u in uses}) > 1 or (
                q in FIRST_ORDER and any(u.per_example is not None for u in uses)):
            # the einsums hold it differently shaped, or backward formed some uses'
            # per-example gradients (and let their inputs go): those of the sum
            if q not in FIRST_ORDER:
                raise EinsumError(f"{q} of a parameter shaped differently in its uses' "
                                  "einsums is not offered")
            per = sum((quantity("grad_batch", u.layer, u.operands, g=u.g)
                       if u.per_example is None else u.per_example)
                      .reshape(u.batch_size, *shape) for u in uses)
            assert isinstance(per, torch.Tensor)
            value = {"grad": lambda: per.sum(0), "grad_batch": lambda: per,
                     "grad_norm2": lambda: per.flatten(1).square().sum(1),
                     "grad_sq_sum": lambda: per.square().sum(0)}[q]()
        else:
            second = q not in FIRST_ORDER
            value = _to_param_shape(q, shared_quantity(
                q, [(u.layer, u.operands, u.s if second else u.g) for u in uses]), shape)
        power = _PER_EXAMPLE_POWER.get(q, 0)
        if power and self.convention == "example" and self.reduction == "mean":
            value = value * uses[0].batch_size ** power
        return value


def check_trackable(model: torch.nn.Module) -> None:
    """Raise, naming it, on the first module whose trainable parameters cannot be
    tracked."""
    for name, module in model.named_modules():
        reason = unsupported(module)
        if reason is not None:
            raise EinsumError(f"cannot track module {name or '(the model)'!r} "
                              f"({type(module).__name__}): {reason}")


def _params(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The module's own weight and bias (those its einsum layers hold)."""
    return [p for p in (getattr(module, "weight", None), getattr(module, "bias", None))
            if isinstance(p, torch.nn.Parameter)]


def _to_param_shape(q: str, value: Any, shape: tuple[int, ...]) -> Any:
    if q in ("grad", "grad_sq_sum", "ggn_diag", "hessian_diag"):
        return value.reshape(shape)
    if q == "grad_batch":
        return value.reshape(value.shape[0], *shape)
    return value


@contextmanager
def track(model: torch.nn.Module, quantities: Sequence[str], loss: str | None = None,
          loss_reduction: str = "mean", convention: str = "example") -> Iterator[Tracker]:
    """Track ``quantities`` of every supported layer of ``model`` during the forward and
    backward passes run inside the block; read them as ``tracker[param][name]``.

    Per-example quantities (``grad_batch``, ``grad_norm2``, ``grad_sq_sum``,
    ``ggn_trace_batch``) are those of each example's own loss by default
    (``convention="example"``, as DP-SGD clips them): with ``loss_reduction="mean"``
    (the loss is the batch mean of per-example losses) the gradients are scaled by the
    batch size. ``convention="batch"`` gives those of each example's share of the loss
    as backpropagated. ``grad``, ``ggn_diag``, ``ggn_trace`` and ``kfac`` are always of
    the loss as backpropagated. A parameter used several times in the forward pass
    (a layer called twice, weights tied across layers) gets the quantities of the sum
    over its uses.

    Raises :class:`~einopt.EinsumError` at once when a module holds trainable
    parameters that cannot be tracked (naming it), such as BatchNorm in training mode.

    Example:
        >>> import torch, einopt.torch
        >>> model = torch.nn.Linear(3, 2)
        >>> x, y = torch.randn(5, 3), torch.randn(5, 2)
        >>> with einopt.torch.track(model, ["grad_norm2"]) as t:
        ...     torch.nn.functional.mse_loss(model(x), y).backward()
        >>> t[model.weight]["grad_norm2"].shape
        torch.Size([5])
    """
    tracker = Tracker(model, quantities, loss, loss_reduction, convention)
    tracker._attach()
    try:
        yield tracker
    finally:
        tracker._detach()
