"""opt_einsum's ``contract_expression``: an einsum compiled once for operands of given
shapes (some of them constants, folded in once per backend), called many times.

Arguments, errors and the path follow opt_einsum's; the calls run on einopt's plans, and
within :func:`einopt.shared_intermediates` they share intermediates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..api import einsum
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
from ..parse import Equation, Label, call_equation
from ..run.sharing import currently_sharing
from ..tree import ContractionTree
from .contract import (
    EINSUM_KEYWORDS,
    Path,
    convert_operands,
    find_path,
    limited_of,
    plan_of,
    read_operands,
    run_limited,
    run_path,
    strategy_of,
    text_of,
    to_numpy,
)
from .path_info import contraction_list, network_symbols

__all__ = ["ContractExpression", "contract_expression"]


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
        self._order = limited_of(len(shapes), path) if limited else None
        self._folded: dict[str, tuple[list[Any], list[list[Label]], Path | None]] = {}
        self._contraction_list: list[Any] | None = None
        # A plain expression on the operands' own library is one einsum call along the
        # path (text subscripts and a tuple path: einsum's warm-call table takes it).
        self._direct = text_of(eq.inputs, eq.output) \
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
            arrays = convert_operands(be, arrays)
        else:
            arrays = read_operands(arrays)
        for k, x in zip(self._variables(), arrays, strict=True):
            if len(x.shape) != len(self.shapes[k]):
                raise ShapeError(
                    f"operand {k} has {len(x.shape)} dimensions (shape {tuple(x.shape)}), "
                    f"but the expression was made for {len(self.shapes[k])} "
                    f"(shape {self.shapes[k]})")
        options = dict(self.kwargs)
        if back_to_numpy:
            result = to_numpy(self._evaluate(arrays, be, None, options))
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
            return run_limited(self.network, self._order, be, ops, out, options)
        if not self.constants:
            return run_path(be, arrays, eq.inputs, eq.output, self._tuple_path, out, options)
        folded, terms, path = self._constants_for(be, arrays)
        if path is None:  # every operand is constant: the result is kept
            result = folded[0]
            if out is not None:
                (be or backend_for([result])).write_out(result, out, "unsafe")
                return out
            return result
        return run_path(be, [*arrays, *folded], terms, self._out_labels(), path, out, options)

    def _out_labels(self) -> list[Label]:
        labels = self.network.labels
        return [labels[i] for i in self.network.output]

    def _fill(self, arrays: list[Any], be: Backend | None) -> list[Any]:
        it = iter(arrays)
        consts = {k: v for k, v in self.constants.items()}
        if be is not None:
            consts = dict(zip(consts, convert_operands(be, list(consts.values())), strict=True))
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
            consts = dict(zip(consts, convert_operands(be, list(consts.values())), strict=True))
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
            value = run_path(be, [consts[k] for k in ls], [[labels[i] for i in raw[k]] for k in ls],
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

    Example:
        >>> import numpy as np, einopt
        >>> expr = einopt.contract_expression("ij,jk->ik", (2, 3), (3, 2))
        >>> expr(np.ones((2, 3)), np.ones((3, 2)))  # planned once, called many times
        array([[3., 3.],
               [3., 3.]])
    """
    if optimize is False or optimize is None or (
            isinstance(optimize, (list, tuple)) and len(optimize) == 0):
        raise OptionError("Can only generate expressions for optimized contractions "
                          f"(optimize={optimize!r}).")
    for arg in ("out", "backend"):
        if kwargs.get(arg) is not None:
            raise OptionError(f"'{arg}' should only be specified when calling a "
                              f"`ContractExpression`, not when building it.")
    extra = sorted(k for k in kwargs if k not in (*EINSUM_KEYWORDS, "out", "backend"))
    if extra:
        raise OptionTypeError(f"contract_expression got unexpected keyword arguments {extra}")
    einsum_kwargs = {k: kwargs[k] for k in EINSUM_KEYWORDS if kwargs.get(k) is not None}
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
    path = find_path(network, strategy_of(optimize), memory_limit)
    p = plan_of(eq, dims, path)
    text = subscripts if isinstance(subscripts, str) else str(eq)
    limited = memory_limit is not None and (isinstance(optimize, str) or callable(optimize))
    return ContractExpression(text, eq, network, dims, path, p, const, use_blas, einsum_kwargs,
                              limited, not isinstance(subscripts, str))
