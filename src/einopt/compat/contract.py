"""opt_einsum-compatible front end: ``contract``, ``contract_path``, ``contract_expression``.

Same arguments, path format, errors and meanings as opt_einsum's functions of those
names, evaluated on einopt plans:

- ``optimize``: a strategy name (every one of opt_einsum's, see
  :mod:`einopt.optimize`), an explicit path, a path optimizer, ``True``/``None``
  (``"auto"``) or ``False`` (no search).
- ``memory_limit``: the most elements any intermediate of the path may hold (``None`` or
  ``-1``: no limit; ``"max_input"``: the largest operand's size, the output's included).
  The path search respects it without slicing; where no pairwise order fits, the path
  ends with one step over every operand left, run by the backend's ``einsum``
  (:mod:`einopt.optimize.limited`). ``einopt.plan``'s ``memory_limit`` slices instead.
- ``backend``: ``"auto"`` follows the operands; an array library's name (``"numpy"``,
  ``"torch"``, ``"jax"``, ``"cupy"``, ``"dask"``) converts the operands to it; any other
  name is a module whose ``einsum`` runs every step (semiring modules such as
  ``funsor.einsum.numpy_log``; :mod:`einopt.backends.module`). A compiled expression
  called on numpy arrays with an array library's name computes there and returns numpy
  arrays, as opt_einsum's does.
- ``use_blas`` only marks the steps of ``PathInfo.contraction_list``.
- Inside :func:`einopt.shared_intermediates`, repeated steps are computed once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..api import Plan, einsum, plan
from ..backends import Backend, backend_for, named_backend
from ..backends.module import ModuleBackend
from ..errors import (
    OperandTypeError,
    OptionError,
    OptionTypeError,
    SubscriptError,
)
from ..network import Network, build_network, shape_of
from ..optimize import Budget, get_optimizer
from ..optimize.external import protocol_arguments, tree_of_path
from ..optimize.limited import LimitedOrder, limited_order
from ..parse import Equation, Label, call_equation, format_equation, sublist_args
from ..run.execute import program_for
from ..run.sharing import currently_sharing, get_sharing_cache, shared_call, sharing_program
from ..tree import ContractionTree, read_path
from .path_info import PathInfo

__all__ = ["contract", "contract_path", "PathInfo", "memory_arg", "EINSUM_KEYWORDS"]

Path = list[tuple[int, ...]]

#: opt_einsum's einsum keywords that ``contract`` forwards (``out`` is its own).
EINSUM_KEYWORDS = ("dtype", "order", "casting")


def strategy_of(optimize: Any) -> Any:
    """opt_einsum reads ``True`` and ``None`` as ``"auto"``."""
    return "auto" if optimize is True or optimize is None else optimize


def memory_arg(memory_limit: Any, sizes: Sequence[int]) -> int | None:
    """opt_einsum's ``memory_limit`` as a number of elements (None: no limit); ``sizes``
    are the operands' and the output's sizes, for ``"max_input"``."""
    if isinstance(memory_limit, str):
        if memory_limit == "max_input":
            return max(sizes, default=1)
        raise OptionError(f"memory_limit must be None, a number of elements or 'max_input', "
                          f"got {memory_limit!r}")
    if memory_limit is None:
        return None
    try:
        limit = int(memory_limit)
    except (ValueError, OverflowError):  # nan, inf
        raise OptionError(f"memory_limit must be a finite number of elements, or -1 for no "
                          f"limit, got {memory_limit!r}") from None
    except TypeError:
        raise OptionTypeError(f"memory_limit must be None, a number of elements or "
                              f"'max_input', got {type(memory_limit).__name__}") from None
    if memory_limit < 1:
        if memory_limit == -1:
            return None
        raise OptionError(f"memory_limit must be at least 1 element, or -1 for no limit, "
                          f"got {memory_limit!r}")
    return limit


def _io_sizes(network: Network) -> list[int]:
    """Elements of each operand and of the output, as opt_einsum counts them for
    ``"max_input"`` (broadcast sizes; a repeated index counts twice)."""
    sizes = network.sizes
    out = [math.prod(sizes[i] for i in raw) for raw in network.raw]
    out.append(math.prod(sizes[i] for i in network.output))
    return out


def text_of(inputs: Sequence[Sequence[Label]], output: Sequence[Label]) -> str | None:
    """The equation as text subscripts when every label is one letter, else None."""
    if all(lab is ... or (isinstance(lab, str) and len(lab) == 1 and lab.isalpha())
           for term in [*inputs, output] for lab in term):
        return format_equation(inputs, output)
    return None


def _text_or_sublist(ops: Sequence[Any], inputs: Sequence[Sequence[Label]],
                     output: Sequence[Label]) -> list[Any]:
    """einsum arguments for ``ops``: text subscripts where every label is one letter
    (fast repeated calls), else the sublist form."""
    text = text_of(inputs, output)
    return [text, *ops] if text is not None else sublist_args(ops, inputs, output)


def read_operands(items: Sequence[Any]) -> list[Any]:
    """Operands as opt_einsum reads them: arrays as they are, anything else (scalars,
    nested lists) through ``numpy.asarray``."""
    out = []
    for k, x in enumerate(items):
        if hasattr(x, "shape"):
            out.append(x)
            continue
        if isinstance(x, (str, bytes, dict, set)) or x is None:
            raise OperandTypeError(f"operand {k} is a {type(x).__name__}, not an array")
        try:
            out.append(np.asarray(x))
        except Exception as e:
            raise OperandTypeError(f"operand {k} ({type(x).__name__}) cannot be read as an "
                                   f"array: {e}") from None
    return out


def _shapes(items: Sequence[Any], as_shapes: bool) -> list[tuple[int, ...]]:
    if as_shapes:
        return [shape_of(x, k) if not hasattr(x, "shape") else tuple(int(d) for d in x.shape)
                for k, x in enumerate(items)]
    return [tuple(int(d) for d in x.shape) for x in items]


# ---- finding the path ----


def find_path(network: Network, optimize: Any, memory_limit: Any) -> Path:
    """The linear path opt_einsum's ``contract_path`` would give for these options."""
    n = network.num_tensors
    limit = memory_arg(memory_limit, _io_sizes(network))  # checked first, as opt_einsum does
    if optimize is False:
        return [tuple(range(n))]
    if isinstance(optimize, Plan):
        return optimize.path
    if not isinstance(optimize, str) and not callable(optimize):
        return list(read_path(optimize))  # positions checked by the plan
    if n <= 2:
        return [tuple(range(n))]
    if callable(optimize) and not isinstance(optimize, str):
        inputs, output, size_dict = protocol_arguments(network)
        path = optimize(inputs, output, size_dict, limit)
        tree_of_path(n, path, type(optimize).__name__)  # a clear error for a bad one
        return list(read_path(path))
    search = get_optimizer(optimize)
    if limit is None:
        return search(network, Budget()).linear_path()
    return limited_order(network, search, Budget(), limit).linear_path()


def plan_of(eq: Equation, shapes: Sequence[tuple[int, ...]], path: Path) -> Any:
    """einopt's plan of ``path`` (a step over several operands as a chain of pairs)."""
    return plan(*sublist_args(list(shapes), eq.inputs, eq.output), optimize=path)


def contract_path(subscripts: Any, *operands: Any, use_blas: bool = True, optimize: Any = True,
                  memory_limit: Any = None, shapes: bool = False, **kwargs: Any
                  ) -> tuple[Path, PathInfo]:
    """Plan like ``opt_einsum.contract_path``: ``(path, info)``.

    Operands are arrays (anything without a ``shape`` is read by ``numpy.asarray``:
    scalars are 0-d), or shape tuples with ``shapes=True``. ``str(info)`` is opt_einsum's
    table; ``info.plan`` is einopt's plan.
    """
    einsum_call = kwargs.pop("einsum_call", False)  # opt_einsum's hidden option
    if kwargs:
        raise OptionTypeError(f"contract_path got unexpected keyword arguments "
                              f"{sorted(kwargs)}")
    eq, items = call_equation(subscripts, operands)
    if not shapes:
        items = read_operands(items)
    dims = _shapes(items, shapes)
    network = build_network(eq, dims)
    path = find_path(network, strategy_of(optimize), memory_limit)
    p = plan_of(eq, dims, path)
    info = PathInfo(network, dims, path, p, use_blas, not isinstance(subscripts, str))
    if einsum_call:  # what opt_einsum's contract (and jax's einsum) read: operands, steps
        return items, info.contraction_list  # type: ignore[return-value]
    return path, info


# ---- evaluating ----


def convert_operands(be: Backend, items: Sequence[Any]) -> list[Any]:
    """The operands as ``be``'s arrays (converted once per array inside a sharing
    context, so that repeated contractions see the same objects)."""
    if not currently_sharing():
        return be.prepare(items)
    cache = get_sharing_cache()
    return [shared_call(cache, ("convert", be.name, id(x)), (x,),
                        lambda x=x: be.prepare([x])[0]) for x in items]


def run_path(be: Backend | None, ops: Sequence[Any], inputs: Sequence[Sequence[Label]],
         output: Sequence[Label], optimize: Any, out: Any = None,
         options: dict[str, Any] | None = None) -> Any:
    """The einsum of ``ops`` (already ``be``'s arrays; ``be`` None: their own library)
    along ``optimize``: einopt's ``einsum`` where it can, else the plan's program run by
    the module backend and/or the sharing cache."""
    options = options or {}
    sharing = currently_sharing()
    if not sharing and not isinstance(be, ModuleBackend):
        return einsum(*_text_or_sublist(ops, inputs, output), optimize=optimize, out=out,
                      **options)
    if options.get("dtype") is not None:
        ops = [x.astype(options["dtype"]) for x in ops]
    dims = [tuple(int(d) for d in x.shape) for x in ops]
    p = plan(*sublist_args(dims, inputs, output), optimize=optimize)
    if be is None:
        be = backend_for(ops)
        ops = be.prepare(ops)
    result = (sharing_program(p, be) if sharing else program_for(p, be))(*ops)
    if p.output_shape == ():
        result = be.scalar(result)
    return result if out is None else be.write_out(result, out, options.get("casting", "safe"))


def _letters(ids: Sequence[int]) -> dict[int, str]:
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    if len(ids) > len(letters):
        raise SubscriptError(
            f"the last step of this memory-limited path is over {len(ids)} indices, more "
            f"than an einsum can name ({len(letters)})")
    return {i: letters[k] for k, i in enumerate(ids)}


def run_limited(network: Network, order: LimitedOrder, be: Backend | None,
                 ops: Sequence[Any], out: Any, options: dict[str, Any]) -> Any:
    """Evaluate an incomplete memory-limited order: each group of fitting merges as one
    einsum along its own tree, then one einsum over the groups and the operands left,
    by the backend's ``einsum`` (no intermediates)."""
    labels = network.labels
    raw = network.raw
    if options.get("dtype") is not None:
        ops = [x.astype(options["dtype"]) for x in ops]
    grouped: set[int] = set()
    parts: list[tuple[Any, list[int]]] = []
    for _, leaves, merges in order.groups():
        grouped.update(leaves)
        inside = set(leaves)
        held = {i for k in range(len(raw)) if k not in inside for i in raw[k]}
        held.update(network.output)
        kept = sorted({i for k in leaves for i in raw[k]} & held)
        sub = ContractionTree(len(leaves), merges).linear_path() if len(leaves) > 2 else \
            [tuple(range(len(leaves)))]
        value = run_path(be, [ops[k] for k in leaves],
                         [[labels[i] for i in raw[k]] for k in leaves],
                         [labels[i] for i in kept], sub)
        parts.append((value, kept))
    rest = [(ops[k], list(raw[k])) for k in range(len(raw)) if k not in grouped]
    operands = [x for x, _ in rest] + [x for x, _ in parts]
    terms = [t for _, t in rest] + [t for _, t in parts]
    ids = sorted({i for t in terms for i in t} | set(network.output))
    name = _letters(ids)
    subs = ",".join("".join(name[i] for i in t) for t in terms) + "->" + \
        "".join(name[i] for i in network.output)
    engine = be if be is not None else backend_for(operands)
    operands = engine.prepare(operands) if be is None else operands
    if currently_sharing():
        cache = get_sharing_cache()
        result = shared_call(cache, ("einsum", engine.name, subs, tuple(id(x) for x in operands)),
                             tuple(operands), lambda: engine.einsum(subs, *operands))
    else:
        result = engine.einsum(subs, *operands)
    if not network.output and hasattr(result, "shape") and result.shape == ():
        result = engine.scalar(result)
    return result if out is None else engine.write_out(result, out,
                                                        options.get("casting", "safe"))


def contract(subscripts: Any, *operands: Any, out: Any = None, dtype: Any = None,
             order: str = "K", casting: str = "safe", use_blas: bool = True,
             optimize: Any = True, memory_limit: Any = None, backend: Any = "auto",
             **kwargs: Any) -> Any:
    """Evaluate an einsum like ``opt_einsum.contract`` (see the module doc for
    ``optimize``, ``memory_limit`` and ``backend``).

    Example:
        >>> import numpy as np, einopt
        >>> einopt.contract("ij,jk->ik", np.eye(2), np.ones((2, 2)))
        array([[1., 1.],
               [1., 1.]])
    """
    if kwargs:
        raise OptionTypeError(f"contract got unexpected keyword arguments {sorted(kwargs)}")
    optimize = strategy_of(optimize)
    if backend == "object":  # a 0-d result stays an array, as opt_einsum's object einsum's
        args = _object_arrays(subscripts, operands)
        result = contract(*args, out=out, dtype=dtype, order=order, casting=casting,
                          optimize=optimize, memory_limit=memory_limit)
        return result if isinstance(result, np.ndarray) else np.asarray(result, dtype=object)
    be = named_backend(backend)
    if be is None and memory_limit is None and not currently_sharing():
        return einsum(subscripts, *operands, optimize=optimize, out=out, dtype=dtype,
                      order=order, casting=casting)
    eq, items = call_equation(subscripts, operands)
    ops = convert_operands(be, items) if be is not None else read_operands(items)
    options = {"dtype": dtype, "order": order, "casting": casting}
    if memory_limit is not None and (isinstance(optimize, str) or callable(optimize)):
        network = build_network(eq, _shapes(ops, False))
        path = find_path(network, optimize, memory_limit)
        limited = limited_of(network.num_tensors, path)
        if limited is not None:
            return run_limited(network, limited, be, ops, out, options)
        optimize = tuple(path)
    return run_path(be, ops, eq.inputs, eq.output, optimize, out, options)


def _object_arrays(subscripts: Any, operands: Sequence[Any]) -> list[Any]:
    """opt_einsum's ``backend="object"``: the einsum's arguments with its operands as
    arrays of Python objects (numpy's einsum loop multiplies and adds them with ``*``
    and ``+``)."""
    eq, items = call_equation(subscripts, operands)
    return _text_or_sublist([np.asarray(x, dtype=object) for x in items], eq.inputs,
                            eq.output)


def limited_of(n: int, path: Path) -> LimitedOrder | None:
    """A memory-limited path's fitting pairs, when it ends with one step over three or
    more operands (None otherwise: every step is pairwise)."""
    if not path or len(path[-1]) <= 2 or any(len(entry) != 2 for entry in path[:-1]):
        return None
    live = list(range(n))
    merges: list[tuple[int, int]] = []
    for entry in path[:-1]:
        x, y = (live[p] for p in entry)
        for p in sorted(entry, reverse=True):
            del live[p]
        merges.append((x, y))
        live.append(n + len(merges) - 1)
    return LimitedOrder(n, tuple(merges))


# ---- compiled expressions ----


def to_numpy(x: Any) -> Any:
    """A result of another library as a numpy array."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):  # torch
        x = x.detach()
        return x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)
    if type(x).__module__.split(".")[0] == "cupy":
        return x.get()
    return np.asarray(x)
