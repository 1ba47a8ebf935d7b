"""``einopt.PathOptimizer``: einopt's search behind opt_einsum's path-optimizer protocol.

opt_einsum (``contract``, ``contract_path``, ``contract_expression``), ``jax.numpy.einsum``,
quimb and cotengra accept as ``optimize=`` an object called as ``optimizer(inputs,
output, size_dict, memory_limit=None)`` that returns a path in the linear format. This
one builds the network of the call, runs einopt's search on it and returns the path of
the tree found.

Where opt_einsum is installed, ``PathOptimizer(...)`` is also an instance of
``opt_einsum.paths.PathOptimizer``, the class opt_einsum and jax test for: the first
instance made creates, once, a subclass of both classes, and every instance is made of
it. ``import einopt`` does not import opt_einsum; making an optimizer does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from ..errors import PathError
from ..network import Network, assemble
from ..optimize import (
    OPTIMIZERS,
    Budget,
    get_optimizer,
    max_time_of,
    parse_objective,
    workers_of,
)
from ..optimize.limited import limited_order

__all__ = ["PathOptimizer", "protocol_class", "protocol_network"]

Path = list[tuple[int, ...]]

#: opt_einsum's values of ``memory_limit`` that mean no limit.
_UNLIMITED = (None, -1, float("inf"))


class PathOptimizer:
    """einopt's contraction-path search as an opt_einsum path optimizer.

    ``PathOptimizer(optimize="auto", max_time=None, minimize="flops", seed=None)`` is
    called as ``optimizer(inputs, output, size_dict, memory_limit=None) -> path``, so
    that opt_einsum, jax and quimb use einopt's search::

        opt_einsum.contract("ab,bc,cd->ad", x, y, z, optimize=einopt.PathOptimizer())
        jax.numpy.einsum("ab,bc,cd->ad", x, y, z, optimize=einopt.PathOptimizer("hyper"))
        tn.contract(..., optimize=einopt.PathOptimizer(max_time=2))  # quimb

    Args:
        optimize: einopt's strategy name (``"auto"``, ``"optimal"``, ``"greedy"``,
            ``"hyper"``, or an opt_einsum alias of one).
        max_time: seconds ``"hyper"`` spends searching (default 1 s).
        minimize: ``"flops"``, ``"size"``, ``"write"``, ``"combo"`` or ``"combo-F"``.
        seed: seed of the randomized strategies (same seed, same path).
        parallel: processes ``"hyper"`` may use (``True``: one per CPU; see
            :func:`einopt.plan`).

    ``inputs`` are one collection of index symbols per operand (strings, tuples or sets;
    a symbol repeated within one is a diagonal, a symbol in three or more is a
    hyperedge), ``output`` the output's symbols and ``size_dict`` each symbol's size.
    ``memory_limit`` means what it means to opt_einsum: no pairwise step before the last
    may produce more elements. The path cannot slice (its executor would not), so when
    no tree of einopt's fits, the path contracts what fits pairwise and then all the
    remaining operands in one step, as opt_einsum's own optimizers do.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> PathOptimizer:
        if cls is PathOptimizer:
            cls = protocol_class()
        return super().__new__(cls)

    def __init__(self, optimize: str | bool = "auto", max_time: float | None = None,
                 minimize: str = "flops", seed: int | None = None,
                 parallel: bool | int = False) -> None:
        if not isinstance(optimize, (str, bool)):
            raise PathError(
                f"PathOptimizer takes a strategy name as optimize (one of "
                f"{', '.join(OPTIMIZERS)}), got {type(optimize).__name__}"
            )
        self._search = get_optimizer(optimize)
        self._budget = Budget(max_time=max_time_of(max_time), seed=seed,
                              objective=parse_objective(minimize),
                              workers=workers_of(parallel))
        self.optimize, self.max_time, self.minimize, self.seed = optimize, max_time, minimize, seed
        self.parallel = parallel

    def __call__(self, inputs: Iterable[Iterable[Hashable]], output: Iterable[Hashable],
                 size_dict: Mapping[Hashable, int], memory_limit: Any = None) -> Path:
        """The linear path einopt finds for the contraction (see the class doc)."""
        budget = replace(self._budget, started=time.perf_counter())  # set-up counts too
        network = protocol_network(inputs, output, size_dict)
        n = network.num_tensors
        if n <= 2:
            return [tuple(range(n))] if n else []
        if memory_limit in _UNLIMITED:
            return self._search(network, budget).linear_path()
        try:
            limit = int(memory_limit)
        except (TypeError, ValueError, OverflowError):
            raise PathError(f"memory_limit must be a number of elements, got {memory_limit!r}") \
                from None
        return limited_order(network, self._search, budget, limit).linear_path()

    def __repr__(self) -> str:
        return (f"einopt.PathOptimizer(optimize={self.optimize!r}, max_time={self.max_time!r}, "
                f"minimize={self.minimize!r}, seed={self.seed!r}, parallel={self.parallel!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        # Instances are of a class made at run time: pickle them by their options.
        return (PathOptimizer, (self.optimize, self.max_time, self.minimize, self.seed))


_PROTOCOL: list[type[PathOptimizer]] = []
_PROTOCOL_LOCK = threading.Lock()


def protocol_class() -> type[PathOptimizer]:
    """The class of every :class:`PathOptimizer`: a subclass of it and of
    ``opt_einsum.paths.PathOptimizer`` where opt_einsum is installed (made on first use,
    once), else :class:`PathOptimizer` itself."""
    if not _PROTOCOL:
        with _PROTOCOL_LOCK:
            if not _PROTOCOL:
                try:
                    from opt_einsum.paths import PathOptimizer as Protocol
                except ImportError:
                    _PROTOCOL.append(PathOptimizer)
                else:
                    _PROTOCOL.append(type(PathOptimizer.__name__, (PathOptimizer, Protocol), {
                        "__module__": PathOptimizer.__module__,
                        "__qualname__": PathOptimizer.__qualname__,
                        "__doc__": PathOptimizer.__doc__,
                    }))
    return _PROTOCOL[0]


def _ordered(term: Iterable[Hashable]) -> list[Hashable]:
    """A term's symbols in a fixed order: sets sorted (their order varies from run to run
    with string hashing), sequences as given (a repeat is a diagonal)."""
    if isinstance(term, (set, frozenset)):
        try:
            return sorted(term)  # type: ignore[type-var]
        except TypeError:
            return sorted(term, key=repr)
    return list(term)


def protocol_network(inputs: Iterable[Iterable[Hashable]], output: Iterable[Hashable],
                     size_dict: Mapping[Hashable, int]) -> Network:
    """The network of a protocol call, its symbols numbered by first appearance (one
    size per symbol, so there is nothing to broadcast or check but its presence)."""
    ids: dict[Hashable, int] = {}
    sizes: list[int] = []
    terms = []
    shapes = []
    for k, term in enumerate(inputs):
        axes = []
        for s in _ordered(term):
            i = ids.get(s)
            if i is None:
                try:
                    sizes.append(int(size_dict[s]))
                except KeyError:
                    raise PathError(f"size_dict has no size for index {s!r} of input "
                                    f"{k}") from None
                i = ids[s] = len(ids)
            axes.append(i)
        terms.append(tuple(axes))
        shapes.append([sizes[i] for i in axes])
    out = []
    for s in _ordered(output):
        if s not in ids:
            raise PathError(f"output index {s!r} is in no input")
        out.append(ids[s])
    return assemble(tuple(range(len(ids))), tuple(sizes), tuple(terms), shapes, tuple(out))
