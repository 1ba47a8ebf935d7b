"""Per-example and curvature quantities of a layer ``y = einsum(eq, ..., x, ..., W, ...)``,
each written as the naive einsum and left to the planner.

Given the layer's operands (the input ``x``, whose first index is the batch index, the
parameter ``W``, and any constants such as convolution patterns), the output gradient
``g = dL/dy``, and for second order a factor ``S`` of the loss Hessian with respect to
``y`` (``d2L/dy2 = S S^T`` per example, ``S`` shaped ``y.shape + (C,)``):

=====================  ==================================================================
``grad``               ``sum_n dL/dW``: the VJP einsum of ``W``
``grad_batch``         per-example gradients: the same einsum keeping ``n``
``grad_norm2``         ``||dL_n/dW||^2``: the gradient einsum twice, sharing ``n`` and
                       ``W``'s indices (the planner picks materialize-then-square or the
                       Gram form, "ghost norms", by cost)
``grad_sq_sum``        ``sum_n (dL_n/dW)^2`` (for the gradient variance)
``ggn_diag``           ``diag(J^T S S^T J)``: the gradient einsum with ``S`` for ``g``,
                       twice, sharing ``C`` too
``ggn_trace``          its trace; ``ggn_trace_batch`` per example.
``hessian_diag``       ``diag(J^T H J)`` with ``H = d2L_n/dy2`` whole (``h``, shaped
                       ``y.shape + y.shape[1:]``): the Hessian's diagonal with respect
                       to ``W``, exact because ``y`` is linear in ``W``; ``hessian_trace``
                       and ``hessian_trace_batch`` likewise. With ``H = S S^T`` (the
                       loss's own curvature only) they are the GGN's.
``hvp``                ``J^T S S^T J v``: the JVP einsum of ``v``, then ``S S^T``, then the
                       VJP einsum
``kfac``               ``(A, G)``: the input-side and output-side Kronecker factors,
                       summed over the batch (and positions): each the einsum of one side
                       twice
=====================  ==================================================================

Every function takes ``layer`` (:class:`LayerEinsum`) and the operands in the layer's
order; arrays may be numpy or torch.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from .api import einsum as _einsum
from .api import plan as _plan
from .errors import EinsumError
from .parse import Label, parse_cached, sublist_args

__all__ = ["LayerEinsum", "QUANTITIES", "FIRST_ORDER", "quantity", "first_order_plan",
           "from_per_example", "shared_quantity", "clipped_sum"]

QUANTITIES = ("grad", "grad_batch", "grad_norm2", "grad_sq_sum", "ggn_diag", "ggn_trace",
              "hessian_diag", "hessian_trace", "hessian_trace_batch",
              "ggn_trace_batch", "hvp", "kfac")
#: the quantities of the per-example gradients alone (each a function of them)
FIRST_ORDER = ("grad", "grad_batch", "grad_norm2", "grad_sq_sum")


@dataclass(frozen=True)
class Copy:
    """A label of the second copy of an einsum (printed with a prime)."""

    label: Hashable

    def __str__(self) -> str:
        return f"{self.label}'"


@dataclass(frozen=True)
class LayerEinsum:
    """A layer ``y = einsum(equation, *operands)``: which operand is the input ``x``
    (batch index first) and which the parameter ``W``.

    Attributes:
        inputs, output: the equation's labels (no ``...``).
        x, w: positions of the input and of the parameter.
    """

    inputs: tuple[tuple[Label, ...], ...]
    output: tuple[Label, ...]
    x: int
    w: int

    @classmethod
    def of(cls, equation: str, x: int = 0, w: int = 1) -> LayerEinsum:
        """From text, e.g. ``LayerEinsum.of("ni,oi->no")`` for ``nn.Linear``."""
        eq = parse_cached(equation)
        if any(... in t for t in eq.inputs):
            raise EinsumError("name the layer's indices (no '...')")
        layer = cls(eq.inputs, eq.output, x, w)
        if not layer.inputs[x] or layer.inputs[x][0] not in layer.output:
            raise EinsumError("the input's first index (the batch) must be in the output")
        if layer.batch in layer.inputs[w]:
            raise EinsumError("the parameter must not hold the batch index")
        return layer

    @property
    def batch(self) -> Label:
        """The batch index: the input's first."""
        return self.inputs[self.x][0]

    def grad_terms(self) -> tuple[list[tuple[Label, ...]], list[int]]:
        """The VJP einsum of ``W`` without the cotangent: terms and operand positions."""
        pos = [k for k in range(len(self.inputs)) if k != self.w]
        return [self.inputs[k] for k in pos], pos


def _copy(term: Sequence[Label], keep: set[Label]) -> tuple[Label, ...]:
    return tuple(lab if lab in keep else Copy(lab) for lab in term)


def _twice(terms: list[tuple[Label, ...]], arrays: list[Any], keep: set[Label],
           output: Sequence[Label]) -> Any:
    """``einsum(terms, terms') -> output`` where ``terms'`` renames all but ``keep``."""
    return _einsum(*_twice_args(terms, arrays, keep, output))


def _twice_args(terms: list[tuple[Label, ...]], arrays: list[Any], keep: set[Label],
                output: Sequence[Label]) -> list[Any]:
    second = [_copy(t, keep) for t in terms]
    return sublist_args(arrays + arrays, terms + second, output)


def _first_order_args(name: str, layer: LayerEinsum, operands: Sequence[Any], g: Any
                      ) -> list[Any]:
    """The sublist arguments of a first-order quantity's naive einsum."""
    terms, pos = layer.grad_terms()
    t, a = terms + [tuple(layer.output)], [operands[k] for k in pos] + [g]
    w_labels, n = layer.inputs[layer.w], layer.batch
    if name == "grad":
        return sublist_args(a, t, w_labels)
    if name == "grad_batch":
        return sublist_args(a, t, (n, *w_labels))
    return _twice_args(t, a, {n, *w_labels}, (n,) if name == "grad_norm2" else w_labels)


def clipped_sum(layer: LayerEinsum, operands: Sequence[Any], g: Any, c: Any) -> Any:
    """``sum_n c[n] dL_n/dW``: the gradient einsum of ``W`` with the per-example factors
    ``c`` (shaped ``(N,)``) as one more operand, which the planner applies to whichever
    operand is cheapest (DP-SGD's clipped sum, without per-example gradients)."""
    args = _first_order_args("grad", layer, operands, g)
    return _einsum(*args[:-1], c, [layer.batch], args[-1])


def first_order_plan(name: str, layer: LayerEinsum, operands: Sequence[Any], g: Any) -> Any:
    """The plan of first-order quantity ``name`` (see :data:`FIRST_ORDER`); ``g`` may be
    any object of the output gradient's shape."""
    return _plan(*_first_order_args(name, layer, operands, g))


def from_per_example(name: str, layer: LayerEinsum, grads: Any) -> Any:
    """First-order quantity ``name`` from the per-example gradients ``grads`` (shaped
    ``(batch, *W)`` in the layer's einsum), when they are at hand: each quantity's naive
    einsum with its repeated half, the per-example gradient, already formed."""
    if name not in FIRST_ORDER:
        raise EinsumError(f"{name} is not a function of the per-example gradients")
    labels = (layer.batch, *layer.inputs[layer.w])
    if name == "grad_batch":
        return grads
    if name == "grad":
        return _einsum(grads, list(labels), list(labels[1:]))
    out = labels[:1] if name == "grad_norm2" else labels[1:]
    return _einsum(grads, list(labels), grads, list(labels), list(out))


def quantity(name: str, layer: LayerEinsum, operands: Sequence[Any], g: Any = None,
             s: Any = None, v: Any = None, h: Any = None) -> Any:
    """Quantity ``name`` (one of :data:`QUANTITIES`) of ``layer`` on ``operands``.

    Args:
        g: ``dL/dy`` (first-order quantities).
        s: ``S``, shaped ``y.shape + (C,)`` with ``d2L/dy2 = S S^T`` per example
            (second-order quantities).
        v: a direction shaped like ``W`` (``hvp``).
        h: ``d2L_n/dy2`` per example, shaped ``y.shape + y.shape[1:]`` (``hessian_*``).
    """
    terms, pos = layer.grad_terms()
    arrays = [operands[k] for k in pos]
    w_labels = layer.inputs[layer.w]
    n = layer.batch
    y = tuple(layer.output)
    if name in FIRST_ORDER:
        if g is None:
            raise EinsumError(f"{name} needs the output gradient g")
        return _einsum(*_first_order_args(name, layer, operands, g))
    if name in ("ggn_diag", "ggn_trace", "ggn_trace_batch", "hvp"):
        if s is None:
            raise EinsumError(f"{name} needs the loss Hessian factor s")
        c = _Column()
        t, a = terms + [(*y, c)], arrays + [s]
        keep = {n, c, *w_labels}
        if name == "ggn_diag":
            return _twice(t, a, keep, w_labels)
        if name == "ggn_trace":
            return _twice(t, a, keep, ())
        if name == "ggn_trace_batch":
            return _twice(t, a, keep, (n,))
        if v is None:
            raise EinsumError("hvp needs the direction v")
        jv = _einsum(*sublist_args([v if k == layer.w else x for k, x in enumerate(operands)],
                                   layer.inputs, y))
        sjv = _einsum(s, [*y, c], jv, list(y), [n, c])  # S^T J v, per example and column
        hs = _einsum(s, [*y, c], sjv, [n, c], list(y))  # S S^T J v
        return _einsum(*sublist_args(arrays + [hs], terms + [y], w_labels))
    if name in ("hessian_diag", "hessian_trace", "hessian_trace_batch"):
        if h is None:
            raise EinsumError(f"{name} needs the Hessian h of the loss in the layer output")
        keep = {n, *w_labels}
        second = [_copy(t, keep) for t in terms]
        # y's second copy: the parameter's own indices stay shared (J is a selector in
        # them, so H is read on their diagonal)
        h_term = (*y, *_copy([lab for lab in y if lab != n], keep))
        output = {"hessian_diag": w_labels, "hessian_trace": (),
                  "hessian_trace_batch": (n,)}[name]
        return _einsum(*sublist_args(arrays + [h] + arrays, terms + [h_term] + second,
                                     output))
    if name == "kfac":
        if g is None:
            raise EinsumError("kfac needs the output gradient g")
        x_side = pos  # every operand but W and the cotangent
        shared = set(y)  # indices the two sides share: batch and positions
        in_labels = [lab for lab in w_labels if any(lab in layer.inputs[k] for k in x_side)]
        out_labels = [lab for lab in w_labels if lab in y]
        keep_a = shared - set(w_labels)
        a_out = (*in_labels, *(Copy(lab) for lab in in_labels))
        factor_a = _twice([layer.inputs[k] for k in x_side], [operands[k] for k in x_side],
                          keep_a, a_out)
        g_out = (*out_labels, *(Copy(lab) for lab in out_labels))
        keep_g = {lab for lab in y if lab not in w_labels and
                  any(lab in layer.inputs[k] for k in x_side)}
        factor_g = _twice([y], [g], keep_g, g_out)
        return factor_a, factor_g
    raise EinsumError(f"unknown quantity {name!r}; choose from {', '.join(QUANTITIES)}")


#: quantities that are sums of products of two per-example gradients (or GGN columns)
PAIRED = {"grad_norm2": "n", "grad_sq_sum": "w", "ggn_diag": "w", "ggn_trace": "",
          "ggn_trace_batch": "n"}


def _side(name: str, layer: LayerEinsum, operands: Sequence[Any], t: Any
          ) -> tuple[list[tuple[Any, ...]], list[Any]]:
    """One use's half of a paired quantity: the VJP terms of ``W`` with the cotangent
    ``g`` (first order) or the loss Hessian factor ``S`` (second order, column ``C``)."""
    terms, pos = layer.grad_terms()
    y = tuple(layer.output)
    last = y if name in FIRST_ORDER else (*y, _Column())
    return terms + [last], [operands[k] for k in pos] + [t]


def shared_quantity(name: str, uses: Sequence[tuple[LayerEinsum, Sequence[Any], Any]]) -> Any:
    """Quantity ``name`` of a parameter that several einsums use: a layer called more
    than once in a forward pass, or weights tied across layers.

    Each example's gradient is the sum over uses, so a squared norm (or a diagonal, or a
    trace) is ``sum_{r,s} <G_r, G_s>``: every pair of uses' cross term, each one einsum
    over both uses' operands, planned like the single-use quantity (which is the term
    ``r = s``). ``uses`` holds ``(layer, operands, t)`` with ``t`` the output gradient
    ``g`` (first order) or the factor ``S`` (second order); the uses' parameters must
    have the same shape in their einsums (their labels may differ).
    """
    if name in ("grad", "grad_batch"):
        total = None
        for layer, ops, g in uses:
            part = quantity(name, layer, ops, g=g)
            total = part if total is None else total + part
        return total
    if name not in PAIRED:
        raise EinsumError(f"{name} of a parameter used several times is not offered")
    first = uses[0][0]
    w_labels, n = first.inputs[first.w], first.batch
    output = {"n": (n,), "w": w_labels, "": ()}[PAIRED[name]]
    sides = []
    for layer, ops, t in uses:
        terms, arrays = _side(name, layer, ops, t)
        sides.append((_relabel(terms, layer, n, w_labels), arrays))
    total = None
    for r, (terms_a, arrays_a) in enumerate(sides):
        for s_ in range(r, len(sides)):
            terms_b, arrays_b = sides[s_]
            terms_b = [tuple(Copy(lab) if isinstance(lab, _Own) else lab for lab in term)
                       for term in terms_b]
            part = _einsum(*sublist_args(arrays_a + arrays_b, terms_a + terms_b, output))
            part = part if s_ == r else 2 * part
            total = part if total is None else total + part
    return total


@dataclass(frozen=True)
class _Own:
    """A label of one use's own (neither the batch, nor the parameter's, nor ``C``)."""

    label: Hashable

    def __str__(self) -> str:
        return str(self.label)


def _relabel(terms: list[tuple[Any, ...]], layer: LayerEinsum, n: Label,
             w_labels: tuple[Label, ...]) -> list[tuple[Any, ...]]:
    """``terms`` with the batch named ``n``, the parameter's labels ``w_labels`` (by
    position) and every other label its use's own."""
    names = {layer.batch: n, **dict(zip(layer.inputs[layer.w], w_labels, strict=True))}
    return [tuple(names[lab] if lab in names else lab if isinstance(lab, _Column)
                  else _Own(lab) for lab in term) for term in terms]


@dataclass(frozen=True)
class _Column:
    """The label of ``S``'s column index."""

    def __str__(self) -> str:
        return "C"
