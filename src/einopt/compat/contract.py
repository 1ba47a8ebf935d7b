"""opt_einsum-compatible front end: ``contract``, ``contract_path``, ``contract_expression``.

Same arguments and path format as opt_einsum's functions of those names, evaluated on
einopt plans. opt_einsum's ``use_blas``/``backend`` arguments are accepted; the backend
follows the operands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..api import Plan, einsum, plan
from ..errors import EinsumError, OperandTypeError
from ..parse import sublist_args

__all__ = ["contract", "contract_path", "contract_expression", "PathInfo", "ContractExpression"]


def _optimize(optimize: Any) -> Any:
    return "auto" if optimize is True else optimize


def contract(subscripts: Any, *operands: Any, out: Any = None, dtype: Any = None,
             order: str = "K", casting: str = "safe", use_blas: bool = True,
             optimize: Any = True, memory_limit: Any = None, backend: str = "auto") -> Any:
    """Evaluate an einsum like ``opt_einsum.contract`` (an alias of :func:`einopt.einsum`).

    Example:
        >>> import numpy as np, einopt
        >>> einopt.contract("ij,jk->ik", np.eye(2), np.ones((2, 2)))
        array([[1., 1.],
               [1., 1.]])
    """
    return einsum(subscripts, *operands, optimize=_optimize(optimize), out=out, dtype=dtype,
                  memory_limit=memory_limit, order=order, casting=casting)


@dataclass(frozen=True)
class PathInfo:
    """What ``contract_path`` reports; ``str(info)`` is a readable table."""

    plan: Plan

    @property
    def path(self) -> list[tuple[int, ...]]:
        return self.plan.path

    @property
    def eq(self) -> str:
        return str(self.plan.equation)

    @property
    def opt_cost(self) -> int:
        return self.plan.flops

    @property
    def naive_cost(self) -> int:
        return self.plan.naive_flops

    @property
    def speedup(self) -> float:
        return self.plan.speedup

    @property
    def largest_intermediate(self) -> int:
        return self.plan.max_size

    def __str__(self) -> str:
        return str(self.plan)


def contract_path(subscripts: Any, *operands: Any, use_blas: bool = True, optimize: Any = True,
                  memory_limit: Any = None, shapes: bool = False, **kwargs: Any
                  ) -> tuple[list[tuple[int, ...]], PathInfo]:
    """Plan like ``opt_einsum.contract_path``: ``(path, info)``.

    With ``shapes=True`` the operands are shape tuples.
    """
    if kwargs:
        raise EinsumError(f"contract_path got unknown arguments {sorted(kwargs)}")
    p = plan(subscripts, *operands, optimize=_optimize(optimize), memory_limit=memory_limit)
    return p.path, PathInfo(p)


class ContractExpression:
    """A reusable contraction for fixed shapes, some operands possibly constant."""

    def __init__(self, plan_: Plan, constants: dict[int, Any]) -> None:
        self.plan = plan_
        self.constants = constants
        self.num_args = len(plan_.shapes) - len(constants)

    def __call__(self, *arrays: Any, out: Any = None, backend: str = "auto") -> Any:
        if len(arrays) != self.num_args:
            raise EinsumError(
                f"this expression takes {self.num_args} non-constant operands, got {len(arrays)}"
            )
        it = iter(arrays)
        ops = [self.constants[k] if k in self.constants else next(it)
               for k in range(len(self.plan.shapes))]
        return einsum(*_with_subscripts(self.plan, ops), optimize=self.plan, out=out)

    def __repr__(self) -> str:
        return f"ContractExpression('{self.plan.equation}', constants={sorted(self.constants)})"

    def __str__(self) -> str:
        return str(self.plan)


def _with_subscripts(p: Plan, ops: list[Any]) -> list[Any]:
    eq = p.equation
    if all(isinstance(lab, str) and len(lab) == 1 or lab is ... for t in eq.inputs for lab in t) \
            and all(isinstance(lab, str) and len(lab) == 1 or lab is ... for lab in eq.output):
        return [str(eq), *ops]
    return sublist_args(ops, eq.inputs, eq.output)


def contract_expression(subscripts: str, *shapes: Any, constants: Sequence[int] | None = None,
                        optimize: Any = True, memory_limit: Any = None, **kwargs: Any
                        ) -> ContractExpression:
    """A reusable expression like ``opt_einsum.contract_expression``.

    Positions listed in ``constants`` take arrays in ``shapes`` instead of shapes; the
    expression is then called with the remaining operands only.
    """
    constants = list(constants or ())
    const = {}
    for k in constants:
        if not 0 <= k < len(shapes):
            raise OperandTypeError(f"constant position {k} is not an operand position")
        if not hasattr(shapes[k], "shape"):
            raise OperandTypeError(f"constant operand {k} must be an array, got a shape")
        const[k] = shapes[k]
    p = plan(subscripts, *shapes, optimize=_optimize(optimize), memory_limit=memory_limit)
    return ContractExpression(p, const)
