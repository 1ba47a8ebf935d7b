"""Stage 5: a :class:`ContractionTree` turned into a flat program of kernel :class:`Step` s.

Everything that depends on sizes is decided here, once: each operand's single-operand
work and, for each pairwise merge, the cheapest kernel form (:mod:`.kernels`). A
:class:`Plan` is a plain value: the tree, its costs, and its steps (resolved on first
use). Running it is :mod:`einopt.run`'s; printing, code and drawing are the readers';
the user's handle with those methods is :class:`einopt.Plan` (in :mod:`einopt.api`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..cost import count_text, ratio, ratio_text
from ..network import Network, build_network
from ..parse import Equation
from ..tree import ContractionTree, tree_cost
from .kernels import Kernels, Step, StepKind, prep_step, resolve_kernels

__all__ = ["StepKind", "Step", "Kernels", "Plan", "Shared", "build_plan", "relayout"]


@dataclass(frozen=True, slots=True)
class Shared:
    """A common subexpression: ``inner`` runs once on operands ``first`` and its result
    is both first operands of the plan holding this; ``rest`` are its other operands.

    Attributes:
        inner: the plan of the subexpression.
        first: positions (in the call) of the subexpression's operands.
        rest: positions of the operands outside both copies.
        shapes: the call's operand shapes.
    """

    inner: Plan
    first: tuple[int, ...]
    rest: tuple[int, ...]
    shapes: tuple[tuple[int, ...], ...]


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Plan:
    """A planned einsum: the tree, its steps and its costs (a plain value).

    Attributes:
        equation: the parsed equation.
        network: its hypergraph.
        tree: the contraction tree.
        shapes: operand shapes it was planned for.
        dtype: the dtype every operand is cast to first (``None``: decided per call).
        output_shape: shape of the result.
        flops: sum over pairwise steps of the size of their joint index set.
        naive_flops: product of all index sizes times max(1, operands - 1).
        unsliced_flops: flops of the same tree without slicing.
        max_size: elements of the largest tensor any step writes (views excluded).
        shared: when the same operands appear twice, the plan of the subexpression
            computed once (:class:`Shared`); ``equation`` and the steps are then those of
            the einsum over its result, twice, and the other operands, and ``flops``
            counts both plans.
        structure: for an einsum with structured operands (deltas, convolution patterns,
            selectors), the :class:`~einopt.structured.rewrite.Rewrite` that turned it
            into the dense einsum planned here (``equation``, ``shapes``, ``path`` and the
            costs describe that einsum; calling the plan takes the original operands).
        programs: what :mod:`einopt.run` compiles from this plan, per backend, kept with
            the plan so it is compiled once (run/'s cache: :func:`einopt.run.execute.cached`
            is its one writer; nothing else reads it).
    """

    equation: Equation
    network: Network
    tree: ContractionTree
    shapes: tuple[tuple[int, ...], ...]
    dtype: Any
    output_shape: tuple[int, ...]
    flops: int
    naive_flops: int
    max_size: int
    unsliced_flops: int
    _kernels: Callable[..., Kernels] = field(repr=False, compare=False)
    programs: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    structure: Any = field(default=None, repr=False, compare=False)
    shared: Shared | None = field(default=None, repr=False, compare=False)

    @property
    def call_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Shapes of the operands the plan is called on (of the dense einsum, before any
        common subexpression is split off)."""
        return self.shapes if self.shared is None else self.shared.shapes

    @property
    def steps(self) -> tuple[Step, ...]:
        """The flat program (pairwise kernels are resolved on first use, then kept)."""
        return self._kernels().steps

    @property
    def output_perm(self) -> tuple[int, ...] | None:
        """Permutation of the last result's axes into output order (or None)."""
        return self._kernels().output_perm

    @property
    def output_reshape(self) -> tuple[int, ...] | None:
        """``output_shape`` when size-1 output axes must be inserted, else None."""
        return self._kernels().output_reshape

    @property
    def path(self) -> list[tuple[int, ...]]:
        """The contraction order in opt_einsum's linear path format."""
        return self.tree.linear_path()

    @property
    def speedup(self) -> float:
        """``naive_flops / flops`` (``inf`` where that passes the float range)."""
        return ratio(self.naive_flops, max(self.flops, 1))

    @property
    def sliced(self) -> tuple[Any, ...]:
        """Labels of sliced indices (empty when none)."""
        return tuple(self.network.labels[i] for i in self.tree.sliced)

    @property
    def slicing_overhead(self) -> float:
        """``flops / unsliced_flops``: the extra work slicing costs (1.0 when unsliced)."""
        return ratio(self.flops, max(self.unsliced_flops, 1))

    @property
    def num_slices(self) -> int:
        """Number of slices the plan loops over (1 when none)."""
        return math.prod(self.network.sizes[i] for i in self.tree.sliced)

    def __repr__(self) -> str:
        sliced = f", sliced={self.sliced!r}" if self.tree.sliced else ""
        speedup = ratio_text(self.naive_flops, self.flops, 4)
        return (f"Plan('{self.equation}', flops={count_text(self.flops, 4)}, "
                f"speedup={speedup}, max_size={self.max_size}{sliced})")


def build_plan(equation: Equation, network: Network, tree: ContractionTree,
               shapes: Sequence[Sequence[int]], dtype: Any = None,
               dtypes: Sequence[Any] | None = None) -> Plan:
    """Turn ``tree`` into a :class:`Plan` for operands of ``shapes``.

    Args:
        dtype: when known, the common dtype; operands of ``dtypes`` that differ from it
            are cast first (as numpy.einsum does), so integer results wrap identically.

    With sliced indices the steps are those of one slice (sliced dims of size 1).
    """
    shapes_ = tuple(tuple(int(d) for d in s) for s in shapes)
    net = network
    if tree.sliced:
        cut = set(tree.sliced)
        inner = tuple(tuple(1 if i in cut else d for i, d in zip(raw, shape, strict=True))
                      for raw, shape in zip(network.raw, shapes_, strict=True))
        net = build_network(equation, inner)
    else:
        inner = shapes_
    steps: list[Step] = []
    orders: list[tuple[int, ...]] = []
    for k, (raw, shape, term) in enumerate(zip(net.raw, inner, net.terms, strict=True)):
        cast = None
        if dtype is not None and dtypes is not None and dtypes[k] != dtype:
            cast = str(dtype)
        step, order = prep_step(k, raw, shape, term, net, cast)
        if step is not None:
            steps.append(step)
        orders.append(order)
    cost = tree_cost(net, tree)
    # Resolving each merge's kernel layout costs far more than the search on large
    # networks: it is done on first use (evaluation, printing, code), once.
    cache: list[Kernels] = []

    def kernels(forced: dict[int, tuple[int, ...]] | None = None) -> Kernels:
        if forced:  # another layout (see :func:`relayout`): not the plan's own, not kept
            return resolve_kernels(net, tree, cost.node_masks, tuple(steps), orders, forced)
        if not cache:
            cache.append(resolve_kernels(net, tree, cost.node_masks, tuple(steps), orders))
        return cache[0]

    slice_shape = tuple(net.sizes[i] for i in net.output)
    # Squeezes and diagonals are views: only steps that write memory count.
    written = [s.size for s in steps if s.cast or s.sum_axes]
    max_size = max([math.prod(slice_shape), cost.max_size, *written])
    return Plan(
        equation=equation,
        network=network,
        tree=tree,
        shapes=shapes_,
        dtype=dtype,
        output_shape=tuple(network.sizes[i] for i in network.output),
        flops=cost.flops * math.prod(network.sizes[i] for i in tree.sliced),
        naive_flops=network.naive_flops(),
        max_size=max_size,
        unsliced_flops=tree_cost(network, tree).flops if tree.sliced else cost.flops,
        _kernels=kernels,
    )


def relayout(plan: Plan, forced: dict[int, tuple[int, ...]]) -> Kernels:
    """The plan's kernels again, with merge ``k``'s result in the axis order
    ``forced[k]`` (a kernel that is not the plan's own writes it that way: a native
    convolution); its consumers are laid out for that order."""
    return plan._kernels(forced)
