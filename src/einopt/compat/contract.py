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

from ..api import Plan, call_equation, einsum, plan
from ..backends import Backend, backend_for, named_backend
from ..backends.module import ModuleBackend
from ..errors import (
    OperandTypeError,
    OptionError,
    OptionTypeError,
    ShapeError,
    SubscriptError,
)
from ..network import Network, build_network, shape_of
from ..optimize import Budget, get_optimizer
from ..optimize.external import protocol_arguments, tree_of_path
from ..optimize.limited import LimitedOrder, limited_order
from ..parse import Equation, Label, format_equation, sublist_args
from ..run.execute import program_for
from ..run.sharing import currently_sharing, get_sharing_cache, shared_call, sharing_program
from ..tree import ContractionTree
from .path_info import PathInfo, contraction_list, network_symbols

__all__ = ["contract", "contract_path", "contract_expression", "PathInfo", "ContractExpression",
           "memory_arg"]

Path = list[tuple[int, ...]]

#: opt_einsum's einsum keywords that ``contract`` forwards (``out`` is its own).
_EINSUM_KEYWORDS = ("dtype", "order", "casting")


def _strategy(optimize: Any) -> Any:
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
    except (TypeError, ValueError):
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


def _text_of(inputs: Sequence[Sequence[Label]], output: Sequence[Label]) -> str | None:
    """The equation as text subscripts when every label is one letter, else None."""
    if all(lab is ... or (isinstance(lab, str) and len(lab) == 1 and lab.isalpha())
           for term in [*inputs, output] for lab in term):
        return format_equation(inputs, output)
    return None


def _text_or_sublist(ops: Sequence[Any], inputs: Sequence[Sequence[Label]],
                     output: Sequence[Label]) -> list[Any]:
    """einsum arguments for ``ops``: text subscripts where every label is one letter
    (fast repeated calls), else the sublist form."""
    text = _text_of(inputs, output)
    return [text, *ops] if text is not None else sublist_args(ops, inputs, output)


def _read(items: Sequence[Any]) -> list[Any]:
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


def _find_path(network: Network, optimize: Any, memory_limit: Any) -> Path:
    """The linear path opt_einsum's ``contract_path`` would give for these options."""
    n = network.num_tensors
    limit = memory_arg(memory_limit, _io_sizes(network))  # checked first, as opt_einsum does
    if optimize is False:
        return [tuple(range(n))]
    if isinstance(optimize, Plan):
        return optimize.path
    if not isinstance(optimize, str) and not callable(optimize):
        return [tuple(int(p) for p in entry) for entry in optimize]  # checked by the plan
    if n <= 2:
        return [tuple(range(n))]
    if callable(optimize) and not isinstance(optimize, str):
        inputs, output, size_dict = protocol_arguments(network)
        path = optimize(inputs, output, size_dict, limit)
        tree_of_path(n, path, type(optimize).__name__)  # a clear error for a bad one
        return [tuple(int(p) for p in entry) for entry in path]
    search = get_optimizer(optimize)
    if limit is None:
        return search(network, Budget()).linear_path()
    return limited_order(network, search, Budget(), limit).linear_path()


def _plan_of(eq: Equation, shapes: Sequence[tuple[int, ...]], path: Path) -> Any:
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
        items = _read(items)
    dims = _shapes(items, shapes)
    network = build_network(eq, dims)
    path = _find_path(network, _strategy(optimize), memory_limit)
    p = _plan_of(eq, dims, path)
    info = PathInfo(network, dims, path, p, use_blas, not isinstance(subscripts, str))
    if einsum_call:  # what opt_einsum's contract (and jax's einsum) read: operands, steps
        return items, info.contraction_list  # type: ignore[return-value]
    return path, info


# ---- evaluating ----


def _convert(be: Backend, items: Sequence[Any]) -> list[Any]:
    """The operands as ``be``'s arrays (converted once per array inside a sharing
    context, so that repeated contractions see the same objects)."""
    if not currently_sharing():
        return be.prepare(items)
    cache = get_sharing_cache()
    return [shared_call(cache, ("convert", be.name, id(x)), (x,),
                        lambda x=x: be.prepare([x])[0]) for x in items]


def _run(be: Backend | None, ops: Sequence[Any], inputs: Sequence[Sequence[Label]],
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


def _run_limited(network: Network, order: LimitedOrder, be: Backend | None,
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
        value = _run(be, [ops[k] for k in leaves], [[labels[i] for i in raw[k]] for k in leaves],
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
    optimize = _strategy(optimize)
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
    ops = _convert(be, items) if be is not None else _read(items)
    options = {"dtype": dtype, "order": order, "casting": casting}
    if memory_limit is not None and (isinstance(optimize, str) or callable(optimize)):
        network = build_network(eq, _shapes(ops, False))
        path = _find_path(network, optimize, memory_limit)
        limited = _order_of(network.num_tensors, path)
        if limited is not None:
            return _run_limited(network, limited, be, ops, out, options)
        optimize = tuple(path)
    return _run(be, ops, eq.inputs, eq.output, optimize, out, options)


def _object_arrays(subscripts: Any, operands: Sequence[Any]) -> list[Any]:
    """opt_einsum's ``backend="object"``: the einsum's arguments with its operands as
    arrays of Python objects (numpy's einsum loop multiplies and adds them with ``*``
    and ``+``)."""
    eq, items = call_equation(subscripts, operands)
    return _text_or_sublist([np.asarray(x, dtype=object) for x in items], eq.inputs,
                            eq.output)


def _order_of(n: int, path: Path) -> LimitedOrder | None:
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


def _to_numpy(x: Any) -> Any:
    """A result of another library as a numpy array."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):  # torch
        x = x.detach()
        return x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)
    if type(x).__module__.split(".")[0] == "cupy":
        return x.get()
    return np.asarray(x)


class ContractExpression:
    """A contraction for fixed operand ranks, planned once, as opt_einsum's.

    Call it with the non-constant operands: ``expr(*arrays, out=None, backend="auto")``.
    Steps over constant operands only are computed once per backend (on the first call,
    or by :meth:`evaluate_constants`) and kept. Arrays of other sizes than planned (same
    ranks) are contracted along the same path.
    """

    def __init__(self, contraction: str, eq: Equation, network: Network,
                 shapes: Sequence[tuple[int, ...]], path: Path, plan_: Any,
                 constants: dict[int, Any], use_blas: bool, kwargs: dict[str, Any],
                 limited: bool = False, sublist: bool = False) -> None:
        self.contraction = _bracket_constants(contraction, constants)
        self.equation = eq
        self.network = network
        self.shapes = tuple(shapes)
        self.path = path
        self.plan = plan_
        self.constants = constants
        self.kwargs = kwargs
        self.use_blas = use_blas
        self.sublist = sublist
        self._full_num_args = len(shapes)
        self.num_args = len(shapes) - len(constants)
        self._order = _order_of(len(shapes), path) if limited else None
        self._folded: dict[str, tuple[list[Any], list[list[Label]], Path | None]] = {}
        self._contraction_list: list[Any] | None = None
        # A plain expression on the operands' own library is one einsum call along the
        # path (text subscripts and a tuple path: einsum's warm-call table takes it).
        self._direct = _text_of(eq.inputs, eq.output) \
            if not constants and self._order is None else None
        self._tuple_path = tuple(path)

    @property
    def contraction_list(self) -> list[Any]:
        """opt_einsum's contraction list of the path (see :class:`PathInfo`)."""
        if self._contraction_list is None:
            terms, output, size_dict = network_symbols(self.network, self.sublist)
            self._contraction_list = contraction_list(
                terms, output, self.shapes, self.path, size_dict, self.use_blas)[0]
        return self._contraction_list

    def __call__(self, *arrays: Any, out: Any = None, backend: Any = "auto") -> Any:
        """Evaluate with the non-constant ``arrays``; ``out`` receives the result."""
        if len(arrays) != self.num_args:
            raise SubscriptError(
                f"This `ContractExpression` takes exactly {self.num_args} array arguments "
                f"but received {len(arrays)}.")
        try:
            if self._direct is not None and (backend == "auto" or backend is None) and \
                    not currently_sharing():
                return einsum(self._direct, *arrays, optimize=self._tuple_path, out=out,
                              **self.kwargs)
            return self._contract(list(arrays), out, backend)
        except ValueError as err:
            text = str(err.args[0]) if err.args else ""
            err.args = (
                "Internal error while evaluating `ContractExpression`. Note that few checks "
                "are performed - the number and rank of the array arguments must match the "
                f"original expression. The internal error was: '{text}'",)
            raise

    def _contract(self, arrays: list[Any], out: Any, backend: Any) -> Any:
        if backend == "object":
            arrays = [np.asarray(x, dtype=object) for x in arrays]
            result = self._contract(arrays, out, "auto")
            return result if isinstance(result, np.ndarray) else \
                np.asarray(result, dtype=object)
        be = named_backend(backend)
        back_to_numpy = be is not None and not isinstance(be, ModuleBackend) and \
            be.name != "numpy" and bool(arrays) and \
            all(isinstance(x, np.ndarray) for x in arrays)
        if be is not None:
            arrays = _convert(be, arrays)
        else:
            arrays = _read(arrays)
        for k, x in zip(self._variables(), arrays, strict=True):
            if len(x.shape) != len(self.shapes[k]):
                raise ShapeError(
                    f"operand {k} has {len(x.shape)} dimensions (shape {tuple(x.shape)}), "
                    f"but the expression was made for {len(self.shapes[k])} "
                    f"(shape {self.shapes[k]})")
        options = dict(self.kwargs)
        if back_to_numpy:
            result = _to_numpy(self._evaluate(arrays, be, None, options))
            if out is not None:
                out[...] = result
                return out
            return result
        return self._evaluate(arrays, be, out, options)

    def _variables(self) -> list[int]:
        return [k for k in range(self._full_num_args) if k not in self.constants]

    def _evaluate(self, arrays: list[Any], be: Backend | None, out: Any,
                  options: dict[str, Any]) -> Any:
        eq = self.equation
        if self._order is not None:
            ops = self._fill(arrays, be)
            return _run_limited(self.network, self._order, be, ops, out, options)
        if not self.constants:
            return _run(be, arrays, eq.inputs, eq.output, self._tuple_path, out, options)
        folded, terms, path = self._constants_for(be, arrays)
        if path is None:  # every operand is constant: the result is kept
            result = folded[0]
            if out is not None:
                (be or backend_for([result])).write_out(result, out, "unsafe")
                return out
            return result
        return _run(be, [*arrays, *folded], terms, self._out_labels(), path, out, options)

    def _out_labels(self) -> list[Label]:
        labels = self.network.labels
        return [labels[i] for i in self.network.output]

    def _fill(self, arrays: list[Any], be: Backend | None) -> list[Any]:
        it = iter(arrays)
        consts = {k: v for k, v in self.constants.items()}
        if be is not None:
            consts = dict(zip(consts, _convert(be, list(consts.values())), strict=True))
        return [consts[k] if k in consts else next(it) for k in range(self._full_num_args)]

    def evaluate_constants(self, backend: Any = "auto") -> None:
        """Contract the constant operands as far as they go without the others, for
        ``backend`` (``"auto"``: numpy, the constants' own library), and keep the result."""
        be = named_backend(backend)
        self._constants_for(be, [])

    def _constants_for(self, be: Backend | None, arrays: Sequence[Any]
                       ) -> tuple[list[Any], list[list[Label]], Path | None]:
        """The folded constants for the backend of this call, the terms of the reduced
        einsum (the variables', then the folded constants') and its path."""
        if be is not None:
            key = be.name
        else:
            key = backend_for(arrays).name if arrays else "numpy"
        found = self._folded.get(key)
        if found is None:
            target = be if be is not None else (backend_for(arrays) if arrays else None)
            found = self._fold(target)
            self._folded[key] = found
        return found

    def _fold(self, be: Backend | None) -> tuple[list[Any], list[list[Label]], Path | None]:
        net = self.network
        n = net.num_tensors
        labels, raw = net.labels, net.raw
        tree = self.plan.tree
        const = [k in self.constants for k in range(n)]
        leaves: list[tuple[int, ...]] = [(k,) for k in range(n)]
        for x, y in tree.merges:
            const.append(const[x] and const[y])
            leaves.append(leaves[x] + leaves[y])
        parent = {}
        for k, (x, y) in enumerate(tree.merges):
            parent[x] = parent[y] = n + k
        root = n + len(tree.merges) - 1 if tree.merges else 0
        groups = [v for v in range(n, len(const)) if const[v]
                  and (v == root or not const[parent[v]])]
        consts = dict(self.constants)
        if be is not None:
            consts = dict(zip(consts, _convert(be, list(consts.values())), strict=True))
        variables = self._variables()
        var_terms = [[labels[i] for i in raw[k]] for k in variables]
        folded: list[Any] = []
        terms: list[list[Label]] = []
        new_id: dict[int, int] = {k: j for j, k in enumerate(variables)}
        folded_leaves: set[int] = set()
        for v in groups:
            ls = tuple(sorted(leaves[v]))
            folded_leaves.update(ls)
            inside = set(ls)
            held = {i for k in range(n) if k not in inside for i in raw[k]} | set(net.output)
            kept = sorted({i for k in ls for i in raw[k]} & held) if v != root else \
                list(net.output)
            sub_tree = _subtree(tree, n, v, ls)
            value = _run(be, [consts[k] for k in ls], [[labels[i] for i in raw[k]] for k in ls],
                         [labels[i] for i in kept], tuple(sub_tree))
            if v == root:
                return [value], [], None
            new_id[v] = len(variables) + len(folded)
            folded.append(value)
            terms.append([labels[i] for i in kept])
        lone = [k for k in range(n) if const[k] and k not in folded_leaves]
        for k in lone:
            new_id[k] = len(variables) + len(folded)
            folded.append(consts[k])
            terms.append([labels[i] for i in raw[k]])
        m = len(variables) + len(folded)
        merges: list[tuple[int, int]] = []
        for k, (x, y) in enumerate(tree.merges):
            if const[n + k]:
                continue
            merges.append((new_id[x], new_id[y]))
            new_id[n + k] = m + len(merges) - 1
        path = ContractionTree(m, tuple(merges)).linear_path() if m > 2 else [tuple(range(m))]
        return folded, [*var_terms, *terms], path

    def __repr__(self) -> str:
        extra = f", constants={sorted(self.constants)}" if self.constants else ""
        return f"<ContractExpression('{self.contraction}'{extra})>"

    def __str__(self) -> str:
        s = [self.__repr__()]
        for i, c in enumerate(self.contraction_list):
            s.append(f"\n  {i + 1}.  ")
            s.append(f"'{c[2]}'" + (f" [{c[-1]}]" if c[-1] else ""))
        s.append(f"\neinsum_kwargs={self.kwargs}")
        return "".join(s)


def _subtree(tree: ContractionTree, n: int, v: int, leaves: tuple[int, ...]) -> Path:
    """The linear path, over ``leaves`` in order, of ``tree``'s subtree rooted at ``v``."""
    local = {leaf: j for j, leaf in enumerate(leaves)}
    merges: list[tuple[int, int]] = []
    inside = set(leaves)
    node_leaves: dict[int, set[int]] = {k: {k} for k in range(n)}
    for k, (x, y) in enumerate(tree.merges):
        node_leaves[n + k] = node_leaves[x] | node_leaves[y]
        if n + k <= v and node_leaves[n + k] <= inside:
            merges.append((local[x], local[y]))
            local[n + k] = len(leaves) + len(merges) - 1
    if len(leaves) <= 2:
        return [tuple(range(len(leaves)))]
    return ContractionTree(len(leaves), tuple(merges)).linear_path()


def _bracket_constants(text: str, constants: Any) -> str:
    """opt_einsum's display of an equation with constant operands in brackets."""
    if not constants:
        return text
    if "->" in text:
        lhs, rhs = text.split("->")
        arrow = "->"
    else:
        lhs, rhs, arrow = text, "", ""
    terms = [f"[{t}]" if i in constants else t for i, t in enumerate(lhs.split(","))]
    return (",".join(terms) + arrow + rhs).replace("],[", ",")


def contract_expression(subscripts: Any, *shapes: Any, constants: Any = None,
                        use_blas: bool = True, optimize: Any = True, memory_limit: Any = None,
                        **kwargs: Any) -> ContractExpression:
    """A reusable expression like ``opt_einsum.contract_expression``.

    Positions listed in ``constants`` take arrays in ``shapes`` instead of shapes; the
    expression is then called with the remaining operands only, and the steps over
    constants alone are computed once. ``dtype``, ``order`` and ``casting`` are kept for
    every call; ``out`` and ``backend`` belong to the call.
    """
    if optimize is False or optimize is None or (
            isinstance(optimize, (list, tuple)) and len(optimize) == 0):
        raise OptionError("Can only generate expressions for optimized contractions "
                          f"(optimize={optimize!r}).")
    for arg in ("out", "backend"):
        if kwargs.get(arg) is not None:
            raise OptionError(f"'{arg}' should only be specified when calling a "
                              f"`ContractExpression`, not when building it.")
    extra = sorted(k for k in kwargs if k not in (*_EINSUM_KEYWORDS, "out", "backend"))
    if extra:
        raise OptionTypeError(f"contract_expression got unexpected keyword arguments {extra}")
    einsum_kwargs = {k: kwargs[k] for k in _EINSUM_KEYWORDS if kwargs.get(k) is not None}
    eq, items = call_equation(subscripts, shapes)
    const: dict[int, Any] = {}
    for k in sorted(set(constants or ())):
        if not 0 <= k < len(items):
            raise OperandTypeError(f"constant position {k} is not an operand position "
                                   f"(there are {len(items)} operands)")
        if not hasattr(items[k], "shape"):
            raise OperandTypeError(f"constant operand {k} must be an array, got a shape")
        const[k] = items[k]
    dims = [tuple(int(d) for d in x.shape) if hasattr(x, "shape") else shape_of(x, k)
            for k, x in enumerate(items)]
    network = build_network(eq, dims)
    path = _find_path(network, _strategy(optimize), memory_limit)
    p = _plan_of(eq, dims, path)
    text = subscripts if isinstance(subscripts, str) else str(eq)
    limited = memory_limit is not None and (isinstance(optimize, str) or callable(optimize))
    return ContractExpression(text, eq, network, dims, path, p, const, use_blas, einsum_kwargs,
                              limited, not isinstance(subscripts, str))
