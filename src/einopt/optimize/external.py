"""Optimizers of other libraries as einopt searches (``optimize=`` given an object).

opt_einsum's path-optimizer protocol is ``optimizer(inputs, output, size_dict,
memory_limit=None) -> path``: opt_einsum's optimizers (``RandomGreedy``,
``DynamicProgramming``, ...), its path functions (``opt_einsum.paths.greedy``),
cotengra's optimizers and any function of that signature follow it. Here a network is
put to such an object exactly as ``opt_einsum.contract_path`` does (one frozenset of
single-character symbols per tensor, a frozenset for the output, a dict of sizes) and
the linear path it returns becomes a :class:`ContractionTree`, checked, with a
:class:`PathError` naming the object when the path is not one for these tensors.

The object keeps its own options: einopt's ``max_time``, ``minimize`` and ``seed`` do
not reach it, and it is not given einopt's ``memory_limit`` (einopt slices the tree it
returns to meet that afterwards). cotengra's optimizers are asked for their tree, whose
sliced indices the plan keeps. Plans made with an external optimizer are not cached, so
a stateful optimizer (cotengra's ``ReusableHyperOptimizer``, say) is called for each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import PathError
from ..network import Network, bits
from ..tree import ContractionTree
from .objective import Budget

__all__ = ["External", "describe", "external_tree", "protocol_arguments", "symbol"]

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def symbol(i: int) -> str:
    """The ``i``-th symbol of opt_einsum's ``get_symbol``: ASCII letters, then code
    points from 192 on, skipping the surrogates."""
    if i < 52:
        return _LETTERS[i]
    if i >= 55296:
        return chr(i + 2048)
    return chr(i + 140)


def describe(optimizer: Any) -> str:
    """A name for ``optimizer`` in messages: a function's qualified name, else its type's."""
    if hasattr(optimizer, "__qualname__") and hasattr(optimizer, "__module__"):
        return f"{optimizer.__module__}.{optimizer.__qualname__}"
    cls = type(optimizer)
    return f"{cls.__module__}.{cls.__qualname__} object"


def protocol_arguments(network: Network
                       ) -> tuple[list[frozenset[str]], frozenset[str], dict[str, int]]:
    """``(inputs, output, size_dict)`` of the protocol for ``network``'s tensors (after
    its simplifications), index id ``i`` named ``symbol(i)``."""
    inputs = [frozenset(symbol(i) for i in term) for term in network.terms]
    output = frozenset(symbol(i) for i in bits(network.output_mask))
    used = {i for term in network.terms for i in term}
    size_dict = {symbol(i): network.sizes[i] for i in sorted(used)}
    return inputs, output, size_dict


def _is_cotengra(optimizer: Any) -> bool:
    """Whether ``optimizer`` is (of a subclass of) one of cotengra's, which can give a tree."""
    return hasattr(optimizer, "search") and any(
        cls.__module__.split(".")[0] == "cotengra" for cls in type(optimizer).__mro__)


def external_tree(network: Network, optimizer: Callable[..., Any],
                  budget: Budget | None = None) -> ContractionTree:
    """The tree of the path that ``optimizer`` finds for ``network`` (see the module
    doc). ``budget`` is accepted for the optimizer signature and not used."""
    n = network.num_tensors
    if n <= 2:  # one order only (opt_einsum does not ask its optimizer either)
        return ContractionTree.left_to_right(n)
    inputs, output, size_dict = protocol_arguments(network)
    sliced: tuple[int, ...] = ()
    who = describe(optimizer)
    if _is_cotengra(optimizer):
        found = optimizer.search(inputs, output, size_dict)
        path = found.get_path()
        ids = {symbol(i): i for i in range(network.num_indices)}
        sliced = tuple(sorted(ids[s] for s in getattr(found, "sliced_inds", ()) if s in ids))
    else:
        path = optimizer(inputs, output, size_dict, None)
    tree = tree_of_path(n, path, who)
    return tree.with_sliced(sliced) if sliced else tree


def tree_of_path(n: int, path: Any, who: str) -> ContractionTree:
    """``path``, a linear path for ``n`` tensors returned by ``who``, as a tree; a
    :class:`PathError` saying what is wrong with it otherwise."""
    if isinstance(path, (str, bytes)) or not hasattr(path, "__iter__"):
        raise PathError(
            f"the optimizer {who} returned {_short(path)}, not a path (a list of tuples "
            f"of operand positions) for {n} operands"
        )
    entries = list(path)
    if entries and isinstance(entries[0], str) and entries[0] == "einsum_path":
        entries = entries[1:]  # numpy's form
    for k, entry in enumerate(entries):
        if isinstance(entry, (str, bytes)) or not hasattr(entry, "__iter__"):
            raise PathError(
                f"the optimizer {who} returned a path whose entry {k} is {_short(entry)}, "
                f"not a tuple of operand positions"
            )
    try:
        return ContractionTree.from_linear_path(n, entries)
    except PathError as e:  # the same class (an incomplete path's, say), named
        raise type(e)(f"the optimizer {who} returned an invalid path for {n} operands "
                      f"({_short(entries)}): {e}") from None


def _short(x: Any, limit: int = 80) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class External:
    """Another library's optimizer as the ``optimize`` option of a plan.

    Deliberately unhashable: a plan made with it is never cached, so the optimizer is
    called for every plan (it may be stateful, or random).
    """

    __slots__ = ("optimizer",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, optimizer: Callable[..., Any]) -> None:
        self.optimizer = optimizer

    def __eq__(self, other: object) -> bool:
        return isinstance(other, External) and other.optimizer is self.optimizer

    def __repr__(self) -> str:
        return f"External({describe(self.optimizer)})"

    def tree(self, network: Network, budget: Budget | None = None) -> ContractionTree:
        """The optimizer's tree for ``network`` (an einopt optimizer's signature)."""
        return external_tree(network, self.optimizer, budget)
