"""Derivatives of einsums are einsums.

``y = einsum(eq, *ops)`` is linear in each operand, so

- the vector-Jacobian product with respect to operand ``w`` is the einsum of the other
  operands and the output cotangent, producing ``w``'s indices
  (:func:`vjp_equation`);
- the Jacobian-vector product puts the tangent in ``w``'s place
  (:func:`jvp_equation`); along several operands at once it is the sum of those, the
  talk's *extra-index* einsum ``sum_i prod_k h_k(i)`` with ``h_k(i) = t_k if i == k
  else f_k``, which :func:`jvp` evaluates on the primal plan with dual numbers
  (``(P, D)`` pairs: each merge costs at most three primal products, so ``m``
  operands cost O(m) contractions, not m einsums);
- the Jacobian puts deltas in ``w``'s place (:func:`jacobian_equation`).

Where ``w`` repeats an index (a diagonal), takes a broadcast axis, or holds an index
nothing else does, the derivative gets :func:`~einopt.delta` operands, so every
result is again a plain einsum: apply these functions to a :class:`Derivative` for
second derivatives.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from .api import einsum as _einsum
from .api import plan as _plan
from .errors import EinsumError, SubscriptError
from .network import expand_labels
from .parse import Equation, Label, format_equation, parse_cached, sublist_args
from .structured import delta

__all__ = ["Derivative", "vjp_equation", "jvp_equation", "jacobian_equation", "vjp", "jvp",
           "jacobian", "hessian_trace_einsum", "COTANGENT", "TANGENT"]

#: operand reference: the output cotangent (in a VJP)
COTANGENT = "cotangent"
#: operand reference: the tangent of the operand differentiated (in a JVP)
TANGENT = "tangent"


@dataclass(frozen=True)
class Fresh:
    """A label made for a derivative from ``label``: printed as ``label`` + ``tag``."""

    label: Hashable
    tag: str

    def __str__(self) -> str:
        return f"{self.label}{self.tag}"


@dataclass(frozen=True)
class Derivative:
    """An einsum that computes a derivative.

    Attributes:
        inputs: per operand, its labels.
        output: the result's labels.
        operands: per operand what it is: an ``int`` (that operand of the original
            einsum), :data:`COTANGENT`, :data:`TANGENT`, or a structured constant (a
            :func:`~einopt.delta`).
    """

    inputs: tuple[tuple[Label, ...], ...]
    output: tuple[Label, ...]
    operands: tuple[Any, ...]

    @property
    def equation(self) -> Equation:
        """The derivative as an :class:`~einopt.Equation`."""
        return Equation(self.inputs, self.output)

    def __str__(self) -> str:
        return format_equation(self.inputs, self.output)

    def arguments(self, operands: Sequence[Any], extra: Any = None) -> list[Any]:
        """The sublist-form arguments of ``einsum`` for the original ``operands`` and the
        cotangent or tangent ``extra``."""
        arrays: list[Any] = []
        for ref in self.operands:
            if isinstance(ref, int):
                arrays.append(operands[ref])
            elif ref in (COTANGENT, TANGENT):
                if extra is None:
                    raise EinsumError(f"this derivative needs the {ref}")
                arrays.append(extra)
            else:
                arrays.append(ref)
        return sublist_args(arrays, self.inputs, self.output)

    def __call__(self, operands: Sequence[Any], extra: Any = None, **kwargs: Any) -> Any:
        """Evaluate with :func:`einopt.einsum` (keyword arguments pass through)."""
        return _einsum(*self.arguments(operands, extra), **kwargs)


def _terms(eq: Any, shapes: Sequence[Sequence[int]] | None
           ) -> tuple[list[list[Label]], list[Label], dict[Label, int]]:
    """Labels per operand and of the output, ellipses expanded (needs shapes), and the
    index sizes when shapes are known."""
    if isinstance(eq, Derivative):
        eq = eq.equation
    equation = eq if isinstance(eq, Equation) else parse_cached(eq)
    has_ellipsis = any(... in t for t in equation.inputs)
    if shapes is None:
        if has_ellipsis:
            raise SubscriptError("an equation with '...' needs the operand shapes")
        return [list(t) for t in equation.inputs], list(equation.output), {}
    dims = [tuple(int(d) for d in s) for s in shapes]
    expanded, output = expand_labels(equation, dims)
    sizes: dict[Label, int] = {}
    for labs, shape in zip(expanded, dims, strict=True):
        for lab, d in zip(labs, shape, strict=True):
            if sizes.get(lab, 1) == 1:
                sizes[lab] = d
    return [list(t) for t in expanded], output, sizes


def _size_of(lab: Label, sizes: dict[Label, int]) -> int:
    if lab not in sizes:
        raise SubscriptError(f"index {lab!r} needs a size: pass the operand shapes")
    return sizes[lab]


def _own_labels(inputs: list[list[Label]], output: list[Label], wrt: int, shapes: Any,
                sizes: dict[Label, int]) -> tuple[list[Label], list[tuple[tuple[Label, ...],
                                                                          Any]]]:
    """Labels of operand ``wrt``'s axes in a derivative's result, and the delta
    operands (labels, delta) that tie them to the einsum's indices."""
    term = inputs[wrt]
    shape = None if shapes is None else tuple(shapes[wrt])
    others = {lab for k, t in enumerate(inputs) if k != wrt for lab in t} | set(output)
    result: list[Label] = []
    deltas: list[tuple[tuple[Label, ...], Any]] = []
    seen: dict[Label, int] = {}
    for a, lab in enumerate(term):
        broadcast = shape is not None and shape[a] == 1 and sizes.get(lab, 1) != 1
        if broadcast:  # a size-1 axis broadcast against size n: sum it into one entry
            fresh = Fresh(lab, f"~{a}")
            deltas.append(((fresh,), delta(1, 1)))
            result.append(fresh)
        elif lab in seen:  # a repeated index: the result is on its diagonal
            seen[lab] += 1
            fresh = Fresh(lab, "'" * seen[lab])
            n = _size_of(lab, sizes)
            deltas.append(((lab, fresh), delta(n, 2)))
            result.append(fresh)
        else:
            seen[lab] = 0
            result.append(lab)
            if lab not in others:  # only this operand held it: the result is constant
                deltas.append(((lab,), delta(_size_of(lab, sizes), 1)))
    return result, deltas


def vjp_equation(eq: Any, wrt: int, shapes: Sequence[Sequence[int]] | None = None
                 ) -> Derivative:
    """The einsum of the vector-Jacobian product of ``eq`` with respect to operand
    ``wrt``: ``grad_w = einsum(..., other operands, cotangent -> w's indices)``.

    ``shapes`` (of the original operands) are needed for ``...``, broadcast axes and
    indices only ``wrt`` holds.

    Example:
        >>> import einopt
        >>> str(einopt.vjp_equation("ij,jk->ik", 0))
        'jk,ik->ij'
    """
    inputs, output, sizes = _terms(eq, shapes)
    if not 0 <= wrt < len(inputs):
        raise SubscriptError(f"wrt={wrt} is not an operand of an einsum of {len(inputs)}")
    result, deltas = _own_labels(inputs, output, wrt, shapes, sizes)
    terms = [tuple(t) for k, t in enumerate(inputs) if k != wrt] + [tuple(output)]
    refs: list[Any] = [k for k in range(len(inputs)) if k != wrt] + [COTANGENT]
    for labels, d in deltas:
        terms.append(labels)
        refs.append(d)
    if shapes is not None:  # an index the others hold only broadcast keeps its size
        held: dict[Label, int] = {lab: sizes[lab] for lab in output}
        for k, t in enumerate(inputs):
            if k != wrt:
                for lab, d in zip(t, shapes[k], strict=True):
                    held[lab] = max(held.get(lab, 1), int(d))
        for lab in dict.fromkeys(inputs[wrt]):
            if lab in held and held[lab] < sizes[lab]:
                terms.append((lab,))
                refs.append(delta(sizes[lab], 1))
    return Derivative(tuple(terms), tuple(result), tuple(refs))


def jvp_equation(eq: Any, wrt: int, shapes: Sequence[Sequence[int]] | None = None
                 ) -> Derivative:
    """The einsum of the Jacobian-vector product along operand ``wrt``: the tangent in
    its place (an einsum is linear in each operand)."""
    inputs, output, _ = _terms(eq, shapes)
    if not 0 <= wrt < len(inputs):
        raise SubscriptError(f"wrt={wrt} is not an operand of an einsum of {len(inputs)}")
    refs = tuple(TANGENT if k == wrt else k for k in range(len(inputs)))
    return Derivative(tuple(tuple(t) for t in inputs), tuple(output), refs)


def jacobian_equation(eq: Any, wrt: int, shapes: Sequence[Sequence[int]]) -> Derivative:
    """The einsum of the Jacobian ``J[y indices..., w indices...]``: operand ``wrt``
    replaced by deltas from each of its axes to a fresh output index."""
    inputs, output, sizes = _terms(eq, shapes)
    if not 0 <= wrt < len(inputs):
        raise SubscriptError(f"wrt={wrt} is not an operand of an einsum of {len(inputs)}")
    term = inputs[wrt]
    terms = [tuple(t) for k, t in enumerate(inputs) if k != wrt]
    refs: list[Any] = [k for k in range(len(inputs)) if k != wrt]
    fresh = []
    for a, lab in enumerate(term):
        f = Fresh(lab, f"@{a}")
        fresh.append(f)
        d = int(shapes[wrt][a])
        if d == 1 and sizes.get(lab, 1) != 1:  # broadcast: the derivative sums the axis
            terms.append((lab,))
            refs.append(delta(sizes[lab], 1))
            terms.append((f,))
            refs.append(delta(1, 1))
        else:
            terms.append((lab, f))
            refs.append(delta(d, 2))
    return Derivative(tuple(terms), tuple(output) + tuple(fresh), tuple(refs))


def vjp(eq: Any, operands: Sequence[Any], wrt: int, cotangent: Any) -> Any:
    """``d <cotangent, einsum(eq, *operands)> / d operands[wrt]``, as one einsum."""
    shapes = [tuple(x.shape) for x in operands]
    return vjp_equation(eq, wrt, shapes)(operands, cotangent)


def jacobian(eq: Any, operands: Sequence[Any], wrt: int) -> Any:
    """The Jacobian of ``einsum(eq, *operands)`` with respect to ``operands[wrt]``,
    shaped ``output shape + operand shape``."""
    shapes = [tuple(x.shape) for x in operands]
    result = jacobian_equation(eq, wrt, shapes)(operands)
    x = operands[wrt]
    if type(result) is not type(x) and hasattr(x, "shape"):  # deltas only: a constant
        from .backends import backend_for

        result = backend_for([x]).constant(result, x)
    return result


def jvp(eq: Any, operands: Sequence[Any], tangents: dict[int, Any],
        optimize: Any = "auto") -> tuple[Any, Any]:
    """``(y, dy)``: the einsum and its directional derivative along ``tangents``
    (operand position -> tangent), ``dy = sum_k einsum(eq, ops with t_k for op_k)``.

    This is the extra-index einsum ``sum_i prod_k h_k(i)``. It is evaluated on the
    primal plan with dual numbers: each merge of ``(P, D)`` pairs runs the step's
    kernel on ``P*P``, ``P*D`` and ``D*P`` (only where a ``D`` exists), so the cost is
    at most three times the einsum's, whatever the number of operands.
    """
    from .run.execute import dual_program

    if not tangents:
        raise EinsumError("jvp needs at least one tangent")
    for k in tangents:
        if not 0 <= k < len(operands):
            raise SubscriptError(f"tangent for operand {k}, but the einsum has "
                                 f"{len(operands)}")
    # Planned from shapes: the dual pass walks one plan's own steps (no shared parts).
    shapes = [x if getattr(x, "key", None) else tuple(x.shape) for x in operands]
    if isinstance(eq, str):
        p = _plan(eq, *shapes, optimize=optimize)
    else:
        p = _plan(*sublist_args(shapes, eq.inputs, eq.output), optimize=optimize)
    return dual_program(p, operands, tangents)


def hessian_trace_einsum(x: Any, weights: Sequence[Any]) -> Any:
    """``sum_k ||d f / d W_k||^2`` summed over the batch, for the deep linear network
    ``f = x W_1 ... W_m``: the trace of the Gauss-Newton matrix of the squared loss
    (its Hessian, for a network linear in each weight) up to the loss's scale.

    Written as the talk's one einsum with an extra index ``i`` over the layers: the
    network times its copy, ``x[n,p0] x[n,p0'] prod_k h_k(i)``, where layer ``k``'s
    switch ``h_k`` is ``W_k[p,q] W_k[p',q']`` away from ``i == k`` and ``delta(p,p')
    delta(q,q')`` (the parameter's own entry, in both copies) at it. The planner sees
    each copy's products as the same arrays twice and forms each once.
    """
    eq, ops = trace_arguments(x, weights)
    return _einsum(*sublist_args(ops, eq.inputs, ()))


def trace_arguments(x: Any, weights: Sequence[Any]) -> tuple[Equation, list[Any]]:
    """The equation and operands of :func:`hessian_trace_einsum`'s einsum."""
    from .structured.switch import switch

    m = len(weights)
    inputs: list[tuple[Label, ...]] = [("n", "p0"), ("n", "p0'")]
    ops: list[Any] = [x, x]
    for k, w in enumerate(weights):
        a, b = f"p{k}", f"p{k + 1}"
        a2 = f"{a}'"
        b2 = f"{b}'" if k < m - 1 else b  # the outputs are shared by the two copies
        rows, cols = int(w.shape[0]), int(w.shape[1])
        own = [a, b, a2] + ([b2] if b2 != b else [])
        ops.append(switch(own, primal=[(w, [a, b]), (w, [a2, b2])],
                          derivative=[(delta(rows, 2), [a, a2]), (delta(cols, 2), [b, b2])],
                          at=k, size=m))
        inputs.append((*own, "i"))
    return Equation(tuple(inputs), ()), ops
