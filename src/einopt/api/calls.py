"""Calls: :func:`einsum`, numpy's semantics on an optimized plan.

A tiny front table maps the exact call signature of numpy calls to the compiled
program, so a warm call costs one dict lookup and the kernel; einsums with switches
keep their schedules in :data:`SWITCH_RUNS`. Both are registered in :mod:`einopt.caches`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backends import NumpyBackend, backend_for
from ..backends.base import BAD_KINDS
from ..backends.numpy import numpy_subscripts
from ..caches import BoundedDict
from ..errors import OptionTypeError
from ..network import build_network
from ..optimize import Budget
from ..parse import (
    NO_OPERANDS,
    Equation,
    call_equation,
    casting_of,
    order_of,
    sublist_args,
)
from ..plan import Plan as PlanValue
from ..run import evaluate, run_structured
from ..run.execute import program_for
from ..run.schedule import Schedule, build_schedule
from ..structured.operands import Structured
from ..structured.switch import Switch, expansion, pick, signatures
from .handle import CACHE_SIZE, Plan
from .planning import aliases_of, budget_of, memory_form, plan, plan_for, plan_structured

__all__ = ["einsum", "leaves_of", "SWITCH_RUNS"]

#: Exact call signature of a warm numpy call -> its compiled program.
_FRONT: BoundedDict[tuple[Any, ...], Any] = BoundedDict("front", CACHE_SIZE)



def _numpy_dtype(dtype: Any) -> Any:
    """``dtype`` as a numpy dtype (None stays None)."""
    if dtype is None:
        return None
    try:
        found = np.dtype(dtype)
    except TypeError as e:
        raise OptionTypeError(f"dtype={dtype!r} is not a numpy dtype: {e}") from None
    if found.kind in BAD_KINDS - {"O"}:  # Python objects run in numpy's own loop
        raise OptionTypeError(f"dtype={found} is not a number type: einsum cannot multiply "
                              f"in it")
    return found


def einsum(subscripts: Any = NO_OPERANDS, *operands: Any, optimize: Any = "auto",
           out: Any = None, dtype: Any = None, memory_limit: int | None = None,
           order: str = "K", casting: Any = "safe", executor: Any = None) -> Any:
    """Evaluate an einsum exactly as ``numpy.einsum`` does, on an optimized plan.

    Args:
        subscripts: ``"ij,jk->ik"``, implicit ``"ij,jk"``, with ``...`` and repeated
            indices; or the sublist form ``einsum(a, [0, 1], b, [1, 2], [0, 2])``.
        *operands: numpy, torch, jax, cupy or dask arrays (one library per call; numpy
            arrays and Python scalars mix with any), or anything ``numpy.asarray`` reads.
        optimize: ``"auto"`` (default), ``"optimal"``, ``"greedy"``, a linear path, or a
            Plan; numpy's forms too: a path ``["einsum_path", (0, 2), (0, 1)]``, or
            ``("greedy", limit)``: no intermediate larger than ``limit`` elements (one
            einsum of all operands, as numpy runs it, when no plan keeps to that).
        out: array to write the result into.
        dtype: dtype to compute in (operands are cast under ``casting``).
        memory_limit: most elements any intermediate may hold.
        order: memory layout of a numpy result, as numpy's: ``"K"`` (default: as the plan
            leaves it), ``"C"``, ``"F"``, or ``"A"`` (``"F"`` when every operand is).
        casting: numpy's rule for casting the operands (and the result to ``out``):
            ``"no"``, ``"equiv"``, ``"safe"`` (default), ``"same_kind"`` or ``"unsafe"``.
        executor: where a sliced plan's slices run: ``"threads"``, ``"processes"``,
            ``"serial"``, a ``concurrent.futures.Executor`` or a ``dask.distributed.Client``
            (default: a local thread pool for numpy arrays, serial otherwise).

    Returns:
        The result, an array of the operands' library on their device, of their
        result dtype (or ``dtype``); numpy's 0-d results are scalars, as in numpy.
        Object arrays are multiplied with Python's ``*`` and ``+`` by numpy's own einsum.

    Example:
        >>> import numpy as np, einopt
        >>> a = np.arange(6.0).reshape(2, 3)
        >>> einopt.einsum("ij,ij->i", a, a)  # (a * a).sum(axis=1)
        array([ 5., 50.])
    """
    if out is None and dtype is None and memory_limit is None and executor is None and \
            order == "K" and casting == "safe":
        try:
            sig, ops = ((subscripts, operands) if isinstance(subscripts, str)
                        else _sublist_signature(subscripts, operands))
            n = len(ops)
            same = (None if n < 2 else ((0, 0) if ops[0] is ops[1] else None)
                    if n == 2 else aliases_of(ops))
            key = (sig, optimize, same, *[(x.__class__, x.shape, x.dtype) for x in ops])
            prog = _FRONT[key]
        except (KeyError, AttributeError, TypeError):
            pass
        else:
            return prog(*ops)
    return _einsum(subscripts, operands, optimize, out, dtype, memory_limit, casting, executor,
                   order)


#: Marks a front-table key made from the sublist form.
_SUBLIST = object()


def _sublist_signature(first: Any, rest: Sequence[Any]) -> tuple[Any, Sequence[Any]]:
    """A sublist-form call ``(op0, sub0, op1, sub1, ..., [out])`` as the front table's
    key part (its label lists as tuples) and its operands; ``TypeError`` unless every
    label list is a list or tuple of hashables (other calls take the checked path)."""
    args = (first, *rest)
    subs = args[1::2] + ((args[-1],) if len(args) % 2 else ())
    if any(type(sub) is not list and type(sub) is not tuple for sub in subs):
        raise TypeError("not a plain sublist call")
    labels = tuple(tuple(sub) for sub in subs)
    hash(labels)
    return (_SUBLIST, labels, len(args) % 2), args[0:len(args) - len(args) % 2:2]


def _einsum(subscripts: Any, operands: Sequence[Any], optimize: Any, out: Any, dtype: Any,
            memory_limit: Any, casting: Any, executor: Any, order: Any = "K") -> Any:
    order, casting = order_of(order), casting_of(casting)
    eq, items = call_equation(subscripts, operands)
    if any(isinstance(x, Switch) for x in items):
        return _einsum_switches(eq, items, optimize, out, dtype, memory_limit)
    if any(isinstance(x, Structured) for x in items):
        return _einsum_structured(eq, items, optimize, out, dtype, memory_limit, casting,
                                  executor)
    be = backend_for(items)
    dtypes: tuple[Any, ...] | None = None
    common = None  # other libraries: operands already converted to one dtype
    if isinstance(be, NumpyBackend):  # the plan casts, exactly as numpy.einsum does
        dtype = _numpy_dtype(dtype)
        arrays = be.prepare(items, dtype, casting, objects=True)
        if be.needs_loop(arrays, dtype):  # Python objects: numpy's own loop
            build_network(eq, [x.shape for x in arrays])  # errors that name the operand
            return be.loop(numpy_subscripts(eq.inputs, eq.output), arrays, out, dtype, order,
                           casting)
        dtypes = tuple(x.dtype for x in arrays)
        common = be.common_dtype(arrays, dtype, casting)
    else:
        arrays = be.prepare(items, dtype, casting)
    shapes = tuple(tuple(int(d) for d in x.shape) for x in arrays)
    budget = budget_of("flops", None, None, memory_limit)
    aliases = aliases_of(items)
    if aliases is not None:  # the same array stays one object after conversion
        arrays = [arrays[a] for a in aliases]
    limited = memory_form(optimize)
    if limited is None:
        p = plan_for(eq, shapes, dtypes, common, optimize, budget, aliases=aliases)
    else:
        p = _plan_within(eq, shapes, dtypes, common, limited, budget, aliases)
        if p is None:  # no plan keeps to the limit: one einsum of all operands, as numpy
            if isinstance(be, NumpyBackend):
                return be.loop(numpy_subscripts(eq.inputs, eq.output), arrays, out, dtype,
                               order, casting)
            p = plan_for(eq, shapes, dtypes, common, False, budget, aliases=aliases)
    if p.tree.sliced:
        if executor is None and isinstance(be, NumpyBackend):
            executor = "threads"  # BLAS releases the GIL: slices overlap
        result = evaluate(p, be, arrays, executor)
        if p.output_shape == ():
            result = be.scalar(result)
        elif out is None and order != "K" and isinstance(be, NumpyBackend):
            result = be.in_order(result, order, arrays)
        return result if out is None else be.write_out(result, out, casting)
    prog = program_for(p, be)
    if p.output_shape == ():
        inner, scalar = prog, be.scalar

        def prog(*ops: Any) -> Any:
            return scalar(inner(*ops))

    result = prog(*arrays)
    if out is None and dtype is None and memory_limit is None and \
            not isinstance(optimize, PlanValue) and not callable(optimize):
        if (all(type(x) is np.ndarray for x in items) if be.einsum_loops else
                all(x is y for x, y in zip(items, arrays, strict=True))):
            try:
                sig = (subscripts if isinstance(subscripts, str)
                       else _sublist_signature(subscripts, operands)[0])
                fkey = (sig, optimize, aliases,
                        *[(x.__class__, x.shape, x.dtype) for x in items])
                _FRONT[fkey] = prog
            except TypeError:
                pass
    if out is None:
        if order != "K" and isinstance(be, NumpyBackend):
            return be.in_order(result, order, arrays)
        return result
    return be.write_out(result, out, casting)


def _plan_within(eq: Equation, shapes: tuple[tuple[int, ...], ...],
                 dtypes: tuple[Any, ...] | None, common: Any, limited: tuple[str, int],
                 budget: Budget, aliases: tuple[int, ...] | None) -> Plan | None:
    """A plan by strategy ``limited[0]`` whose steps make no tensor larger than
    ``limited[1]`` elements (numpy's memory limit: a bound on the search, not slicing),
    else the plan of least largest tensor if that one keeps to it, else None."""
    strategy, limit = limited
    p = plan_for(eq, shapes, dtypes, common, strategy, budget, aliases=aliases)
    if p.max_size <= limit:
        return p
    small = plan_for(eq, shapes, dtypes, common, "auto",
                      budget_of("size", None, None, budget.memory_limit), aliases=aliases)
    return small if small.max_size <= limit else None


def _einsum_structured(eq: Equation, items: Sequence[Any], optimize: Any, out: Any,
                       dtype: Any, memory_limit: Any, casting: Any, executor: Any) -> Any:
    p = plan_structured(eq, items, optimize, budget_of("flops", None, None, memory_limit))
    result = run_structured(p, items, dtype, casting, executor, check=False)  # planned for them
    if out is not None:
        return backend_for([result]).write_out(result, out, casting)
    if not result.shape and isinstance(result, np.ndarray):
        return result[()]
    return result


def leaves_of(items: Sequence[Any]) -> list[Any]:
    """The arrays an einsum with switches reads: its plain operands, then each switch's
    primal and derivative factors."""
    out: list[Any] = []
    for x in items:
        if isinstance(x, Switch):
            out += [f for f, _ in x.primal] + [f for f, _ in x.derivative]
        else:
            out.append(x)
    return out


def _einsum_switches(eq: Equation, items: Sequence[Any], optimize: Any, out: Any, dtype: Any,
                     memory_limit: Any) -> Any:
    """An einsum with product-rule switches: the sum of its expansion's einsums, run as
    one schedule that forms each product the terms share once (:mod:`einopt.run.schedule`).
    The schedule is kept and run again on later calls of the same structure."""
    sig = signatures(items)
    if dtype is not None or memory_limit is not None or isinstance(optimize, PlanValue):
        total = None  # options the schedule's plans do not take: the terms one by one
        for term_eq, picks, factor in expansion(eq, sig):
            part = einsum(*sublist_args([pick(items, p) for p in picks], term_eq.inputs,
                                        term_eq.output), optimize=optimize, dtype=dtype,
                          memory_limit=memory_limit) * factor
            total = part if total is None else total + part
    else:
        leaves = leaves_of(items)
        try:
            key: Any = (eq, sig, optimize, aliases_of(leaves),
                        *[(x.__class__, tuple(x.shape), x.dtype) for x in leaves])
            hash(key)
        except (AttributeError, TypeError):
            key = None
        sched = SWITCH_RUNS.get(key) if key is not None else None
        if sched is None:
            sched = build_schedule(eq, items, sig, leaves, functools.partial(
                plan, optimize=optimize))
            if key is not None:
                SWITCH_RUNS[key] = sched
        total = sched.run(leaves, einsum)
    if out is not None:
        out[...] = total
        return out
    return total


#: Schedules of einsums with switches, by structure and operand signature.
SWITCH_RUNS: BoundedDict[Any, Schedule] = BoundedDict("switch schedules", CACHE_SIZE)
