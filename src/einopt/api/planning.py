"""Planning: :func:`plan`, from an equation and shapes (or structured operands) and the
options to a cached :class:`~einopt.api.handle.Plan`.

The plan cache maps (equation, shapes, dtypes, options) to a plan; it is a bounded LRU
registered in :mod:`einopt.caches`. Repeated operand objects may be computed once
(:func:`plan_for` with ``aliases``) and ``memory_limit`` slices the plan to fit.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..caches import memoize
from ..errors import OptionError, OptionTypeError, PathError, PathTypeError
from ..network import build_network, shape_of
from ..optimize import Budget, External, get_optimizer, max_time_of, parse_objective, workers_of
from ..optimize.cache import TreeCache, canonical_key
from ..optimize.cse import find_twins
from ..optimize.slicing import slice_tree
from ..parse import (
    Equation,
    equation_of,
)
from ..plan import Plan as PlanValue
from ..plan import Shared, build_plan
from ..run.memory import fit_memory
from ..structured.operands import ConvPattern, Structured
from ..structured.rewrite import Rewrite, kind_of, rewrite, spec_of
from ..structured.switch import Switch
from ..tree import ContractionTree, read_path
from .handle import CACHE_SIZE, Plan, as_handle

__all__ = ["plan", "plan_cached", "plan_for", "plan_structured", "memory_form", "aliases_of",
           "budget_of"]


def _optimize_key(optimize: Any) -> Any:
    if isinstance(optimize, (str, bool)) or optimize is None:
        return optimize
    if isinstance(optimize, PlanValue):
        return None
    if callable(optimize):  # another library's optimizer: unhashable, so never cached
        return External(optimize)
    if _numpy_path(optimize):  # ["einsum_path", (0, 2), (0, 1)]: numpy's explicit path
        optimize = optimize[1:]
    elif memory_form(optimize) is not None:
        raise PathError(
            f"optimize={tuple(optimize)!r} is numpy's (strategy, largest intermediate) form, "
            f"which einsum and einsum_path take; a plan bounds intermediates by slicing: "
            f"give memory_limit={optimize[1]!r} instead")
    if isinstance(optimize, (bytes, dict)) or not hasattr(optimize, "__iter__"):
        raise PathTypeError(
            f"optimize must be a strategy name, a path (list of tuples), a Plan or a path "
            f"optimizer (opt_einsum's protocol), got {type(optimize).__name__}")
    return ("path", read_path(optimize))


def _numpy_path(optimize: Any) -> bool:
    """Whether ``optimize`` is numpy's explicit path: a list ``["einsum_path", ...]``."""
    return isinstance(optimize, (list, tuple)) and len(optimize) > 0 and \
        isinstance(optimize[0], str) and optimize[0] == "einsum_path"


def memory_form(optimize: Any) -> tuple[str, int] | None:
    """``(strategy, limit)`` when ``optimize`` is numpy's ``(strategy, memory_limit)`` form
    (the largest intermediate its path search may make), else None."""
    if isinstance(optimize, (list, tuple)) and len(optimize) == 2 and \
            isinstance(optimize[0], str) and optimize[0] != "einsum_path" and \
            isinstance(optimize[1], (int, float, np.integer, np.floating)) and \
            not isinstance(optimize[1], bool):
        if not math.isfinite(optimize[1]):
            raise PathError(f"optimize={tuple(optimize)!r}: the largest intermediate must be "
                            f"a finite number of elements")
        return optimize[0], int(optimize[1])
    return None


@memoize("plans", CACHE_SIZE)
def plan_cached(eq: Equation, shapes: tuple[tuple[int, ...], ...],
                 dtypes: tuple[Any, ...] | None, dtype: Any, optimize: Any,
                 budget: Budget, aliases: tuple[int, ...] | None = None) -> Plan:
    if aliases is None:
        return _make_plan(eq, shapes, dtypes, dtype, optimize, budget)
    plain = plan_cached(eq, shapes, dtypes, dtype, optimize, budget)
    return _with_shared(eq, shapes, dtypes, optimize, budget, aliases, plain)


def aliases_of(items: Sequence[Any]) -> tuple[int, ...] | None:
    """Per operand, the first position holding the same object (None when all differ)."""
    if len(items) > 64:
        first: dict[int, int] = {}
        aliases = tuple(first.setdefault(id(x), k) for k, x in enumerate(items))
        return aliases if len(first) < len(aliases) else None
    # Identity tests, which tracers (torch.compile) follow; ids they would guard on.
    found = None
    for k in range(1, len(items)):
        x = items[k]
        for j in range(k):
            if items[j] is x:
                if found is None:
                    found = list(range(len(items)))
                found[k] = found[j]
                break
    return None if found is None else tuple(found)


def _with_shared(eq: Equation, shapes: tuple[tuple[int, ...], ...],
                 dtypes: tuple[Any, ...] | None, optimize: Any, budget: Budget,
                 aliases: tuple[int, ...], plain: Plan) -> Plan:
    """``plain``, or a plan that computes a repeated subexpression once, if cheaper."""
    if (plain.tree.sliced or budget.memory_limit is not None or isinstance(optimize, tuple)
            or (dtypes is not None and len(set(dtypes)) > 1)):
        return plain
    net = plain.network  # its labels are the equation's, ellipses expanded
    expanded = [[net.labels[i] for i in raw] for raw in net.raw]
    output = [net.labels[i] for i in net.output]
    best = plain
    for tw in find_twins(expanded, output, aliases):
        inner = plan_cached(tw.inner, tuple(shapes[k] for k in tw.first), None, None,
                             optimize, budget)
        outer = plan_cached(tw.outer, (inner.output_shape, inner.output_shape,
                                        *(shapes[k] for k in tw.rest)), None, None,
                             optimize, budget)
        flops = inner.flops + outer.flops
        if flops < best.flops:
            best = dataclasses.replace(
                outer, flops=flops, unsliced_flops=flops, naive_flops=plain.naive_flops,
                max_size=max(inner.max_size, outer.max_size), programs={},
                shared=Shared(inner, tw.first, tw.rest, shapes))
    return best


def _make_plan(eq: Equation, shapes: tuple[tuple[int, ...], ...],
               dtypes: tuple[Any, ...] | None, dtype: Any, optimize: Any,
               budget: Budget, cache_dir: Any = None) -> Plan:
    network = build_network(eq, shapes)
    if isinstance(optimize, tuple) and optimize and optimize[0] == "path":
        tree = ContractionTree.from_linear_path(network.num_tensors, optimize[1])
    elif cache_dir is not None and not isinstance(optimize, External):
        cache = TreeCache(cache_dir)
        key = canonical_key(network, (optimize, budget.objective, budget.memory_limit,
                                      budget.max_time, budget.seed))
        found = cache.get(key)
        tree = found if found is not None else get_optimizer(optimize)(network, budget)
        if found is None:
            cache.put(key, tree)
    else:
        tree = get_optimizer(optimize)(network, budget)
    if budget.memory_limit is None:
        return as_handle(build_plan(eq, network, tree, shapes, dtype, dtypes))
    tree = slice_tree(network, tree, budget.memory_limit)
    return fit_memory(as_handle(build_plan(eq, network, tree, shapes, dtype, dtypes)),
                      budget.memory_limit,
                      lambda t: as_handle(build_plan(eq, network, t, shapes, dtype, dtypes)))


def budget_of(minimize: Any, max_time: Any, seed: Any, memory_limit: Any,
              progress: bool = False, parallel: Any = False) -> Budget:
    if memory_limit is not None:
        try:
            memory_limit = int(memory_limit)
        except (TypeError, ValueError, OverflowError):
            raise PathError(f"memory_limit must be a finite number of elements, got "
                            f"{memory_limit!r}") from None
    return Budget(max_time=max_time_of(max_time), seed=seed, objective=parse_objective(minimize),
                  memory_limit=memory_limit, progress=progress, workers=workers_of(parallel))


def plan_for(eq: Equation, shapes: tuple[tuple[int, ...], ...],
              dtypes: tuple[Any, ...] | None, dtype: Any, optimize: Any,
              budget: Budget, cache_dir: Any = None,
              aliases: tuple[int, ...] | None = None) -> Plan:
    if isinstance(optimize, PlanValue):
        same = (optimize.equation.inputs, optimize.equation.output) == (eq.inputs, eq.output)
        if optimize.shapes != shapes or not same:
            raise PathError(
                f"the Plan passed as optimize was made for {optimize.equation} with shapes "
                f"{optimize.shapes}, not {eq} with shapes {shapes}"
            )
        return optimize
    opt = _optimize_key(optimize)
    if budget.progress or cache_dir is not None:  # side effects: do not memoize
        return _make_plan(eq, shapes, dtypes, dtype, opt, budget, cache_dir)
    try:
        return plan_cached(eq, shapes, dtypes, dtype, opt, budget, aliases)
    except TypeError as e:  # unhashable option: plan without the cache
        if "unhashable" not in str(e):
            raise
        return _make_plan(eq, shapes, dtypes, dtype, opt, budget)


@memoize("structured plans", CACHE_SIZE)
def _structured_cached(eq: Equation, specs: tuple[Any, ...], kinds: tuple[Any, ...],
                       optimize: Any, budget: Budget,
                       aliases: tuple[int, ...] | None = None) -> Plan:
    return _structured_plan(eq, specs, kinds, optimize, budget, None, aliases)


def _structured_plan(eq: Equation, specs: tuple[Any, ...], kinds: tuple[Any, ...],
                     optimize: Any, budget: Budget, cache_dir: Any = None,
                     aliases: tuple[int, ...] | None = None) -> Plan:
    """The plan of an einsum with structured operands: its rewrite, planned as usual
    (views of the same operand alike are the same array to the planner)."""
    rw = rewrite(eq, specs, kinds)
    if isinstance(optimize, PlanValue):
        if optimize.structure is None or optimize.structure.specs != specs:
            raise PathError("the Plan passed as optimize was made for other operands")
        return optimize
    p = plan_for(rw.equation, rw.shapes, None, None, optimize, budget, cache_dir,
                  _viewaliases_of(rw, aliases))
    if any(isinstance(k, ConvPattern) for k in kinds) and not isinstance(optimize, tuple):
        # Patterns kept dense: the data may meet each other first (small grids).
        alt = rewrite(eq, specs, kinds, substitute=False)
        if all(math.prod(s) <= _DENSE_PATTERN for s, src in zip(alt.shapes, alt.sources,
                                                                  strict=True) if src.dense):
            q = plan_for(alt.equation, alt.shapes, None, None, optimize, budget, cache_dir,
                          _viewaliases_of(alt, aliases))
            if q.flops < p.flops:
                p, rw = q, alt
    p = dataclasses.replace(p, structure=rw, programs={})
    if budget.memory_limit is None:
        return p
    # the views and native kernels of the operands take memory of their own
    net, shapes = p.network, p.shapes
    return fit_memory(p, budget.memory_limit, lambda t: dataclasses.replace(
        as_handle(build_plan(p.equation, net, t, shapes)), structure=rw, programs={}))


#: most entries of a pattern kept dense as the alternative to substituting it
_DENSE_PATTERN = 1 << 16


def _viewaliases_of(rw: Rewrite, aliases: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """Aliases among a rewrite's operands: alike views of one array, equal constants."""
    first: dict[Any, int] = {}
    out = []
    for k, src in enumerate(rw.sources):
        if src.const is not None:
            key: Any = ("const", src.const.shape, src.const.tobytes(), src.views)
        else:
            origin = src.operand if aliases is None else aliases[src.operand]
            key = (origin, src.views, src.dense)
        out.append(first.setdefault(key, k))
    return tuple(out) if len(first) < len(out) else None


def plan_structured(eq: Equation, items: Sequence[Any], optimize: Any, budget: Budget,
                     cache_dir: Any = None) -> Plan:
    specs = tuple(spec_of(x) for x in items)
    kinds = tuple(kind_of(x) for x in items)
    aliases = aliases_of(items)
    if budget.progress or cache_dir is not None or isinstance(optimize, PlanValue) or \
            callable(optimize):  # an external optimizer is called for every plan
        return _structured_plan(eq, specs, kinds, optimize, budget, cache_dir, aliases)
    return _structured_cached(eq, specs, kinds, _optimize_key(optimize), budget, aliases)


def plan(subscripts: Any, *operands_or_shapes: Any, optimize: Any = "auto",
         minimize: str = "flops", max_time: float | None = None,
         memory_limit: int | None = None, seed: int | None = None,
         progress: bool = False, cache_dir: str | None = None,
         parallel: bool | int = False) -> Plan:
    """Plan an einsum for arrays or shapes, without evaluating it.

    Args:
        subscripts: ``"ij,jk->ik"`` text, or the first operand of the sublist form.
        *operands_or_shapes: arrays, or shape tuples (sublists interleaved in that form).
        optimize: strategy name (``"auto"``, ``"optimal"``, ``"greedy"``, ``"hyper"``), a
            path in opt_einsum's linear format, or a Plan.
        minimize: ``"flops"``, ``"size"``, ``"write"``, ``"combo"`` or ``"combo-F"``
            (see :mod:`einopt.optimize.objective` for the formulas).
        max_time: seconds ``"hyper"`` spends searching (default 1 s); others finish sooner.
        memory_limit: most elements any intermediate may hold; indices are sliced to fit.
        seed: seed of randomized strategies (same seed, same plan).
        progress: show a progress bar while ``"hyper"`` searches (needs ``tqdm``).
        cache_dir: a directory where found trees are kept, keyed by the network's
            label-independent structure and these options (opt-in; also
            ``EINOPT_CACHE_DIR``), so an expensive search runs once.
        parallel: processes ``"hyper"`` may use (``True``: one per CPU): it runs
            independent searches in worker processes and keeps the best tree, which is
            far steadier than one search's on large networks. A script using it needs
            the ``if __name__ == "__main__":`` guard (each worker imports it).

    Returns:
        A :class:`Plan`; ``plan.flops``, ``plan.speedup``, ``print(plan)``, ``plan(*arrays)``.

    Example:
        >>> import einopt
        >>> p = einopt.plan("ni,ni,nj,nj->n", (256, 1024), (256, 1024), (256, 1024), (256, 1024))
        >>> p.path
        [(0, 1), (0, 1), (0, 1)]
    """
    eq, items = equation_of(subscripts, operands_or_shapes)
    if any(isinstance(x, Switch) for x in items):
        raise PathError("an einsum with switches is a sum of einsums (one per value of the "
                        "extra index): evaluate it with einopt.einsum, or plan the terms of "
                        "einopt.structured.switch.expand")
    aliases = aliases_of(items) if all(hasattr(x, "shape") for x in items) else None
    cache_dir = _cache_dir(cache_dir)
    if any(isinstance(x, Structured) for x in items):
        budget = budget_of(minimize, max_time, seed, memory_limit, progress, parallel)
        return plan_structured(eq, [x if hasattr(x, "shape") else shape_of(x, k)
                                     for k, x in enumerate(items)], optimize, budget, cache_dir)
    shapes = tuple(shape_of(x, k) for k, x in enumerate(items))
    dtypes = None
    dtype = None
    # numpy operands fix the casts now; other libraries convert when the plan runs.
    if items and all(isinstance(x, (np.ndarray, np.generic)) for x in items):
        dtypes = tuple(np.dtype(x.dtype) for x in items)
        dtype = np.result_type(*dtypes)
    budget = budget_of(minimize, max_time, seed, memory_limit, progress, parallel)
    return plan_for(eq, shapes, dtypes, dtype, optimize, budget, cache_dir, aliases)


def _cache_dir(value: Any) -> Any:
    """``cache_dir`` (else ``EINOPT_CACHE_DIR``; None: no cache), checked to be a path
    that is not a file."""
    value = value or os.environ.get("EINOPT_CACHE_DIR") or None
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise OptionTypeError(f"cache_dir must be a directory path, got {type(value).__name__}")
    if os.path.exists(value) and not os.path.isdir(value):
        raise OptionError(f"cache_dir {os.fspath(value)!r} exists and is not a directory")
    return value

