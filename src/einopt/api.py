"""Stage 8: the public functions, the user's :class:`Plan`, and the plan caches.

Level 1 caches the parse of a subscripts string (:func:`einopt.parse.parse_cached`);
level 2 maps (equation, shapes, dtypes, options) to a :class:`Plan`. Both are bounded
LRUs keyed by the full tuple. A third, tiny front table maps the exact call signature
of numpy calls to the compiled program, so a warm call costs one dict lookup and the
kernel. Every cache is registered in :mod:`einopt.caches`; :func:`clear_caches` empties
them all.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .backends import NumpyBackend, backend_for
from .backends.base import BAD_KINDS
from .backends.numpy import numpy_subscripts
from .caches import BoundedDict, clear_all, memoize
from .codegen import plan_source
from .errors import OptionError, OptionTypeError, PathError, PathTypeError
from .graphs import svg
from .network import build_network, shape_of
from .optimize import Budget, External, get_optimizer, max_time_of, parse_objective
from .optimize.cache import TreeCache, canonical_key
from .optimize.cse import find_twins
from .optimize.slicing import slice_tree
from .parse import (
    NO_OPERANDS,
    Equation,
    call_equation,
    casting_of,
    equation_of,
    order_of,
    sublist_args,
)
from .plan import Plan as PlanValue
from .plan import Shared, build_plan
from .plan.persist import plan_from_json, plan_to_json
from .report import plan_explain, plan_table
from .run import evaluate, run_plan, run_structured
from .run.execute import program_for
from .run.memory import fit_memory, peak_bytes
from .run.schedule import Schedule, build_schedule
from .structured.operands import ConvPattern, Structured
from .structured.rewrite import Rewrite, kind_of, rewrite, spec_of
from .structured.switch import Switch, expansion, pick, signatures
from .tree import ContractionTree, read_path
from .viz import draw_tree

__all__ = ["einsum", "plan", "Plan", "as_handle", "clear_caches", "memory_form", "CACHE_SIZE"]

CACHE_SIZE = 1024


class Plan(PlanValue):
    """A planned einsum: call it on arrays, print it, read its code.

    The plan value of :mod:`einopt.plan` (``path``, ``flops``, ``speedup``,
    ``max_size``, ``sliced``, ``steps``, ``tree``, ``network``, ...) with what a user
    does with one: evaluate it, print its steps, explain it, turn it into source code,
    store it as JSON, draw its tree.
    """

    __slots__ = ()

    def __call__(self, *operands: Any, executor: Any = None) -> Any:
        """Evaluate the plan on ``operands`` (arrays of the planned shapes).

        ``executor`` spreads a sliced plan's slices: ``"threads"``, ``"processes"``,
        ``"serial"``, a ``concurrent.futures.Executor`` or a ``dask.distributed.Client``.
        """
        return run_plan(self, operands, executor)

    def __str__(self) -> str:
        return plan_table(self)

    @property
    def peak_bytes(self) -> int:
        """Peak working memory of a call on numpy, in bytes: intermediates, the result,
        kernel copies and buffers (not the operands); ``memory_limit`` bounds it. Other
        libraries: :func:`einopt.run.memory.peak_bytes`."""
        return peak_bytes(self)

    def to_json(self) -> str:
        """JSON text that :meth:`from_json` turns back into an equal plan."""
        return plan_to_json(self)

    @staticmethod
    def from_json(text: str) -> Plan:
        """The plan stored by :meth:`to_json`."""
        return as_handle(plan_from_json(text))

    def _repr_svg_(self) -> str | None:
        """The contraction tree, for Jupyter (None without matplotlib and networkx)."""
        try:
            return svg(draw_tree(self))
        except ImportError:
            return None

    def explain(self, names: Sequence[str] | None = None, backend: str = "numpy") -> str:
        """The plan in words: its formula in index notation (``Σ_i B[n,i]² · Σ_j
        A[n,j]²``), each step's share of the flops, the speedup over the naive loop,
        and the code."""
        return plan_explain(self, names, backend)

    def code(self, backend: str = "numpy", names: Sequence[str] | None = None) -> str:
        """Python source of a function that evaluates this plan with plain ``backend``
        calls (``"numpy"`` or ``"torch"``); ``names`` name its arguments."""
        return plan_source(self, backend, names)


def as_handle(p: PlanValue) -> Plan:
    """The user's :class:`Plan` for the plan value ``p`` (``p`` itself when it is one)."""
    if isinstance(p, Plan):
        return p
    return Plan(**{f.name: getattr(p, f.name) for f in dataclasses.fields(p)})


#: Exact call signature of a warm numpy call -> its compiled program.
_FRONT: BoundedDict[tuple[Any, ...], Any] = BoundedDict("front", CACHE_SIZE)


def clear_caches() -> None:
    """Forget every cached parse, rewrite, plan, compiled call and executor pool."""
    clear_all()


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
def _plan_cached(eq: Equation, shapes: tuple[tuple[int, ...], ...],
                 dtypes: tuple[Any, ...] | None, dtype: Any, optimize: Any,
                 budget: Budget, aliases: tuple[int, ...] | None = None) -> Plan:
    if aliases is None:
        return _make_plan(eq, shapes, dtypes, dtype, optimize, budget)
    plain = _plan_cached(eq, shapes, dtypes, dtype, optimize, budget)
    return _with_shared(eq, shapes, dtypes, optimize, budget, aliases, plain)


def _aliases(items: Sequence[Any]) -> tuple[int, ...] | None:
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
        inner = _plan_cached(tw.inner, tuple(shapes[k] for k in tw.first), None, None,
                             optimize, budget)
        outer = _plan_cached(tw.outer, (inner.output_shape, inner.output_shape,
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


def _budget(minimize: Any, max_time: Any, seed: Any, memory_limit: Any,
            progress: bool = False) -> Budget:
    if memory_limit is not None:
        try:
            memory_limit = int(memory_limit)
        except (TypeError, ValueError, OverflowError):
            raise PathError(f"memory_limit must be a finite number of elements, got "
                            f"{memory_limit!r}") from None
    return Budget(max_time=max_time_of(max_time), seed=seed, objective=parse_objective(minimize),
                  memory_limit=memory_limit, progress=progress)


def _plan_for(eq: Equation, shapes: tuple[tuple[int, ...], ...],
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
        return _plan_cached(eq, shapes, dtypes, dtype, opt, budget, aliases)
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
    p = _plan_for(rw.equation, rw.shapes, None, None, optimize, budget, cache_dir,
                  _view_aliases(rw, aliases))
    if any(isinstance(k, ConvPattern) for k in kinds) and not isinstance(optimize, tuple):
        # Patterns kept dense: the data may meet each other first (small grids).
        alt = rewrite(eq, specs, kinds, substitute=False)
        if all(math.prod(s) <= _DENSE_PATTERN for s, src in zip(alt.shapes, alt.sources,
                                                                  strict=True) if src.dense):
            q = _plan_for(alt.equation, alt.shapes, None, None, optimize, budget, cache_dir,
                          _view_aliases(alt, aliases))
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


def _view_aliases(rw: Rewrite, aliases: tuple[int, ...] | None) -> tuple[int, ...] | None:
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


def _plan_structured(eq: Equation, items: Sequence[Any], optimize: Any, budget: Budget,
                     cache_dir: Any = None) -> Plan:
    specs = tuple(spec_of(x) for x in items)
    kinds = tuple(kind_of(x) for x in items)
    aliases = _aliases(items)
    if budget.progress or cache_dir is not None or isinstance(optimize, PlanValue) or \
            callable(optimize):  # an external optimizer is called for every plan
        return _structured_plan(eq, specs, kinds, optimize, budget, cache_dir, aliases)
    return _structured_cached(eq, specs, kinds, _optimize_key(optimize), budget, aliases)


def plan(subscripts: Any, *operands_or_shapes: Any, optimize: Any = "auto",
         minimize: str = "flops", max_time: float | None = None,
         memory_limit: int | None = None, seed: int | None = None,
         progress: bool = False, cache_dir: str | None = None) -> Plan:
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
    aliases = _aliases(items) if all(hasattr(x, "shape") for x in items) else None
    cache_dir = _cache_dir(cache_dir)
    if any(isinstance(x, Structured) for x in items):
        budget = _budget(minimize, max_time, seed, memory_limit, progress)
        return _plan_structured(eq, [x if hasattr(x, "shape") else shape_of(x, k)
                                     for k, x in enumerate(items)], optimize, budget, cache_dir)
    shapes = tuple(shape_of(x, k) for k, x in enumerate(items))
    dtypes = None
    dtype = None
    # numpy operands fix the casts now; other libraries convert when the plan runs.
    if items and all(isinstance(x, (np.ndarray, np.generic)) for x in items):
        dtypes = tuple(np.dtype(x.dtype) for x in items)
        dtype = np.result_type(*dtypes)
    budget = _budget(minimize, max_time, seed, memory_limit, progress)
    return _plan_for(eq, shapes, dtypes, dtype, optimize, budget, cache_dir, aliases)


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
            n = len(operands)
            same = (None if n < 2 else ((0, 0) if operands[0] is operands[1] else None)
                    if n == 2 else _aliases(operands))
            key = (subscripts, optimize, same,
                   *[(x.__class__, x.shape, x.dtype) for x in operands])
            prog = _FRONT[key]
        except (KeyError, AttributeError, TypeError):
            pass
        else:
            return prog(*operands)
    return _einsum(subscripts, operands, optimize, out, dtype, memory_limit, casting, executor,
                   order)


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
    budget = _budget("flops", None, None, memory_limit)
    aliases = _aliases(items)
    if aliases is not None:  # the same array stays one object after conversion
        arrays = [arrays[a] for a in aliases]
    limited = memory_form(optimize)
    if limited is None:
        p = _plan_for(eq, shapes, dtypes, common, optimize, budget, aliases=aliases)
    else:
        p = _plan_within(eq, shapes, dtypes, common, limited, budget, aliases)
        if p is None:  # no plan keeps to the limit: one einsum of all operands, as numpy
            if isinstance(be, NumpyBackend):
                return be.loop(numpy_subscripts(eq.inputs, eq.output), arrays, out, dtype,
                               order, casting)
            p = _plan_for(eq, shapes, dtypes, common, False, budget, aliases=aliases)
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
        if isinstance(subscripts, str) and (
                all(type(x) is np.ndarray for x in items) if be.einsum_loops else
                all(x is y for x, y in zip(items, arrays, strict=True))):
            try:
                fkey = (subscripts, optimize, aliases,
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
    p = _plan_for(eq, shapes, dtypes, common, strategy, budget, aliases=aliases)
    if p.max_size <= limit:
        return p
    small = _plan_for(eq, shapes, dtypes, common, "auto",
                      _budget("size", None, None, budget.memory_limit), aliases=aliases)
    return small if small.max_size <= limit else None


def _einsum_structured(eq: Equation, items: Sequence[Any], optimize: Any, out: Any,
                       dtype: Any, memory_limit: Any, casting: Any, executor: Any) -> Any:
    p = _plan_structured(eq, items, optimize, _budget("flops", None, None, memory_limit))
    result = run_structured(p, items, dtype, casting, executor, check=False)  # planned for them
    if out is not None:
        return backend_for([result]).write_out(result, out, casting)
    if not result.shape and isinstance(result, np.ndarray):
        return result[()]
    return result


def _leaves(items: Sequence[Any]) -> list[Any]:
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
        leaves = _leaves(items)
        try:
            key: Any = (eq, sig, optimize, _aliases(leaves),
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
