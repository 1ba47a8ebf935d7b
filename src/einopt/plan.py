"""Stage 5: a :class:`ContractionTree` turned into a flat program of kernel :class:`Step` s.

Everything that depends on sizes is decided here, once: each operand's single-operand
work (cast, size-1 squeeze, diagonal, early sum) and, for each pairwise merge, the
cheapest kernel form — a (batched) GEMM after a permute and reshape with hyperedge
indices as the batch dimension, a fused multiply-and-reduce (batched inner product),
or a broadcast elementwise/outer product. The executor only walks the steps.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .cost import size_of
from .network import Network, bits, build_network
from .parse import Equation
from .tree import ContractionTree, tree_cost

__all__ = ["StepKind", "Step", "Plan", "build_plan"]

#: A batched inner product over at most this many elements per batch item, with at
#: least ``_DOT_EINSUM_BATCH`` items, runs fastest in numpy's einsum C loop; larger
#: ones as a matmul of (B, 1, C) by (B, C, 1) (measured; see BENCHMARKS.md).
_DOT_EINSUM_CONTRACT = 16
_DOT_EINSUM_BATCH = 1024
#: An outer product whose inner (right) factor has at most this many elements runs
#: fastest in numpy's einsum loop; longer rows as a broadcast multiply (measured).
_OUTER_EINSUM_INNER = 4096
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class StepKind(Enum):
    """What kernel a step runs."""

    PREP = "prep"  #: one operand: cast, drop size-1 axes, diagonal, early sum
    GEMM = "gemm"  #: permute + reshape + (batched) matmul
    DOT = "dot"  #: batched inner product (fused multiply-and-reduce)
    HADAMARD = "hadamard"  #: broadcast elementwise or outer product


@dataclass(frozen=True, slots=True)
class Step:
    """One kernel call. Fields not needed by the kind are ``None``.

    Attributes:
        kind: the kernel.
        args: registers read (operands are registers ``0..n-1``; merge ``k`` writes
            register ``n + k``; a PREP step writes back to its operand's register).
        out: register written.
        indices: index ids of the result, in axis order.
        flops: cost of the step in the plan's flops convention (0 for PREP).
        size: elements of the result.
        cast: PREP: dtype to cast to first.
        squeeze: PREP: shape after dropping size-1 axes.
        diagonal: PREP: per result axis, the input axes it merges (a diagonal view).
        sum_axes: PREP: axes summed.
        perms: pairwise: per argument, the axis permutation applied first.
        shapes: pairwise: per argument, the shape it is reshaped to for the kernel.
        swaps: GEMM: per argument, whether its last two axes are swapped (a view).
        out_shape: pairwise: the shape the kernel's result is reshaped to.
        subscripts: pairwise: the step as a two-operand einsum (for backends whose
            einsum compiles to one fused kernel, and for numpy's einsum loop).
        loop: numpy runs this step fastest in its einsum loop (small DOT and outer
            products; measured).
        wide: GEMM: a matrix times each leading slice of a 3-d operand read in place
            (``(K, C) @ (N, C, L)``, the form of a 1x1 convolution).
    """

    kind: StepKind
    args: tuple[int, ...]
    out: int
    indices: tuple[int, ...]
    flops: int
    size: int
    cast: str | None = None
    squeeze: tuple[int, ...] | None = None
    diagonal: tuple[tuple[int, ...], ...] | None = None
    sum_axes: tuple[int, ...] | None = None
    perms: tuple[tuple[int, ...] | None, ...] | None = None
    shapes: tuple[tuple[int, ...] | None, ...] | None = None
    swaps: tuple[bool, bool] | None = None
    out_shape: tuple[int, ...] | None = None
    subscripts: str | None = None
    loop: bool = False
    wide: bool = False


@dataclass(frozen=True, slots=True)
class _Kernels:
    """The resolved program: every step, and how the last result becomes the output."""

    steps: tuple[Step, ...]
    output_perm: tuple[int, ...] | None
    output_reshape: tuple[int, ...] | None


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
    """A planned einsum: the tree, its steps and its costs. Call it on arrays.

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
    _kernels: Callable[..., _Kernels] = field(repr=False, compare=False)
    _programs: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
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
        """``naive_flops / flops``."""
        return self.naive_flops / max(self.flops, 1)

    @property
    def sliced(self) -> tuple[Any, ...]:
        """Labels of sliced indices (empty when none)."""
        return tuple(self.network.labels[i] for i in self.tree.sliced)

    @property
    def slicing_overhead(self) -> float:
        """``flops / unsliced_flops``: the extra work slicing costs (1.0 when unsliced)."""
        return self.flops / max(self.unsliced_flops, 1)

    @property
    def num_slices(self) -> int:
        """Number of slices the plan loops over (1 when none)."""
        return math.prod(self.network.sizes[i] for i in self.tree.sliced)

    def __call__(self, *operands: Any, executor: Any = None) -> Any:
        """Evaluate the plan on ``operands`` (arrays of the planned shapes).

        ``executor`` spreads a sliced plan's slices: ``"threads"``, ``"processes"``,
        ``"serial"``, a ``concurrent.futures.Executor`` or a ``dask.distributed.Client``.
        """
        from .execute import run_plan

        return run_plan(self, operands, executor)

    def __repr__(self) -> str:
        sliced = f", sliced={self.sliced!r}" if self.tree.sliced else ""
        return (f"Plan('{self.equation}', flops={self.flops:.4g}, "
                f"speedup={self.speedup:.4g}, max_size={self.max_size}{sliced})")

    def __str__(self) -> str:
        from .report import plan_table

        return plan_table(self)

    def to_json(self) -> str:
        """JSON text that :meth:`from_json` turns back into an equal plan."""
        from .persist import plan_to_json

        return plan_to_json(self)

    @staticmethod
    def from_json(text: str) -> Plan:
        """The plan stored by :meth:`to_json`."""
        from .persist import plan_from_json

        return plan_from_json(text)

    def _repr_svg_(self) -> str | None:
        """The contraction tree, for Jupyter (None without matplotlib and networkx)."""
        try:
            from .viz import draw_tree, svg

            return svg(draw_tree(self))
        except ImportError:
            return None

    def explain(self, names: Sequence[str] | None = None, backend: str = "numpy") -> str:
        """The plan in words: its formula in index notation (``Σ_i B[n,i]² · Σ_j
        A[n,j]²``), each step's share of the flops, the speedup over the naive loop,
        and the code."""
        from .report import plan_explain

        return plan_explain(self, names, backend)

    def code(self, backend: str = "numpy", names: Sequence[str] | None = None) -> str:
        """Python source of a function that evaluates this plan with plain ``backend``
        calls (``"numpy"`` or ``"torch"``); ``names`` name its arguments."""
        from .codegen import plan_source

        return plan_source(self, backend, names)


def _sizes_of(ids: Sequence[int], sizes: Sequence[int]) -> tuple[int, ...]:
    return tuple(sizes[i] for i in ids)


def _perm(current: Sequence[int], target: Sequence[int]) -> tuple[int, ...] | None:
    pos = {i: k for k, i in enumerate(current)}
    perm = tuple(pos[i] for i in target)
    return None if perm == tuple(range(len(perm))) else perm


def _prep_step(k: int, raw: tuple[int, ...], shape: tuple[int, ...], term: tuple[int, ...],
               net: Network, cast: str | None) -> tuple[Step | None, tuple[int, ...]]:
    """Single-operand work for operand ``k``; returns the step and the resulting order."""
    axes = [i for i, d in zip(raw, shape, strict=True) if d != 1]
    squeeze = tuple(d for d in shape if d != 1)
    unique = list(dict.fromkeys(axes))
    diagonal = None
    if len(unique) != len(axes):
        diagonal = tuple(tuple(a for a, j in enumerate(axes) if j == i) for i in unique)
    keep = set(term)
    sum_axes = tuple(a for a, i in enumerate(unique) if i not in keep)
    result = tuple(i for i in unique if i in keep)
    if not (cast or len(squeeze) != len(shape) or diagonal or sum_axes):
        return None, tuple(raw)
    step = Step(
        kind=StepKind.PREP,
        args=(k,),
        out=k,
        indices=result,
        flops=0,
        size=math.prod(_sizes_of(result, net.sizes)),
        cast=cast,
        squeeze=squeeze if len(squeeze) != len(shape) else None,
        diagonal=diagonal,
        sum_axes=sum_axes or None,
    )
    return step, result


def _group_order(ids: set[int], a: Sequence[int], b: Sequence[int], a_big: bool) -> list[int]:
    """Order of a group of shared indices: the operands' common order, else the bigger's."""
    oa, ob = [i for i in a if i in ids], [i for i in b if i in ids]
    return oa if oa == ob or a_big else ob


def _layout(order: Sequence[int], outer: list[int], first: list[int], second: list[int],
            sizes: Sequence[int]) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None, bool]:
    """(perm, shape, swap) putting an operand in matmul form ``outer + first + second``.

    When the operand is already laid out as ``outer + second + first`` it is reshaped that
    way and its last two axes swapped (a free view: BLAS reads it transposed).
    """
    fs, ss = math.prod(_sizes_of(first, sizes)), math.prod(_sizes_of(second, sizes))
    lead = (math.prod(_sizes_of(outer, sizes)),) if outer else ()
    own = _sizes_of(order, sizes)
    if list(order) == outer + second + first and (first and second):
        shape = lead + (ss, fs)
        return None, (None if shape == own else shape), True
    target = outer + first + second
    perm = _perm(order, target)
    if perm is not None and first and second and order[-1] in first:
        # A copy is needed anyway: keep the operand's innermost axis innermost (the copy
        # streams), and let the kernel read the result transposed.
        return _perm(order, outer + second + first), lead + (ss, fs), True
    shape = lead + (fs, ss)
    return perm, (None if perm is None and shape == own else shape), False


def _broadcast_form(a: Sequence[int], b: Sequence[int], batch: Sequence[int],
                    contr: Sequence[int], sizes: Sequence[int]
                    ) -> tuple[list[int], list[int], list[int]] | None:
    """``(lead, tail, contracted order)`` when ``b`` is laid out ``lead + contracted +
    tail`` (both non-empty, no batch) and ``a`` is no bigger: the product then runs as
    ``a`` (a matrix) times each ``lead`` slice of ``b`` (a broadcast batched matmul),
    reading ``b`` in place, as a 1x1 convolution reads NCHW data."""
    if batch or not contr or len(b) < 3:
        return None
    cset = set(contr)
    pos = [k for k, i in enumerate(b) if i in cset]
    if pos[-1] - pos[0] + 1 != len(pos) or pos[0] == 0 or pos[-1] == len(b) - 1:
        return None
    if math.prod(_sizes_of(a, sizes)) > math.prod(_sizes_of(b, sizes)):
        return None
    return list(b[:pos[0]]), list(b[pos[-1] + 1:]), list(b[pos[0]:pos[-1] + 1])


def _pair_step(x: int, y: int, z: int, a: tuple[int, ...], b: tuple[int, ...],
               r_mask: int, net: Network) -> Step:
    """Resolve one merge into its kernel: GEMM, DOT or HADAMARD.

    The result's axes are (batch, a's kept, b's kept); swap ``a`` and ``b`` for the
    other order.
    """
    sizes = net.sizes
    in_a, in_b = set(a), set(b)
    keep = {i for i in in_a | in_b if r_mask >> i & 1}
    a_big = math.prod(_sizes_of(a, sizes)) >= math.prod(_sizes_of(b, sizes))
    batch = _group_order(in_a & in_b & keep, a, b, a_big)
    contr = _group_order((in_a & in_b) - keep, a, b, a_big)
    left = [i for i in a if i not in in_b]
    right = [i for i in b if i not in in_a]
    bs, cs = math.prod(_sizes_of(batch, sizes)), math.prod(_sizes_of(contr, sizes))
    rs = math.prod(_sizes_of(right, sizes))
    flops = math.prod(_sizes_of(sorted(in_a | in_b), sizes))
    result = tuple(batch + left + right)
    res_sizes = _sizes_of(result, sizes)
    head = ((x, y), z, result, flops, math.prod(res_sizes))
    ids = sorted(in_a | in_b)
    letter = {i: _LETTERS[k] for k, i in enumerate(ids)} if len(ids) <= len(_LETTERS) else None

    def subscripts(out: Sequence[int]) -> str | None:
        """The step as a two-operand einsum with result ``out`` (None past 52 indices)."""
        if letter is None:
            return None
        return ("".join(letter[i] for i in a) + "," + "".join(letter[i] for i in b) + "->"
                + "".join(letter[i] for i in out))

    subs = subscripts(result)

    # numpy's einsum loop is the fastest form of a few small kernels there; the layout of
    # the general form is kept beside it for the other backends.
    if not contr:
        loop = bool(left and right and rs <= _OUTER_EINSUM_INNER and subs)
        bsz = _sizes_of(batch, sizes)
        sa = bsz + _sizes_of(left, sizes) + (1,) * len(right)
        sb = bsz + (1,) * len(left) + _sizes_of(right, sizes)
        return Step(StepKind.HADAMARD, *head,
                    perms=(_perm(a, batch + left), _perm(b, batch + right)),
                    shapes=(None if len(sa) == len(a) else sa, None if len(sb) == len(b) else sb),
                    subscripts=subs, loop=loop)
    if not left and not right:
        if not batch:
            pa, pb = _perm(a, contr), _perm(b, contr)
            return Step(StepKind.DOT, *head, perms=(pa, pb),
                        shapes=(None if len(a) == 1 else (cs,), None if len(b) == 1 else (cs,)),
                        subscripts=subs)
        loop = bool(cs <= _DOT_EINSUM_CONTRACT and bs >= _DOT_EINSUM_BATCH and subs)
        return Step(StepKind.DOT, *head,
                    perms=(_perm(a, batch + contr), _perm(b, batch + contr)),
                    shapes=((bs, 1, cs), (bs, cs, 1)), out_shape=res_sizes,
                    subscripts=subs, loop=loop)
    wide = _broadcast_form(a, b, batch, contr, sizes)
    if wide is not None:
        lead, tail, order = wide
        result = tuple(lead + left + tail)
        res_sizes = _sizes_of(result, sizes)
        ls = math.prod(_sizes_of(left, sizes))
        shape_b = (math.prod(_sizes_of(lead, sizes)), cs, math.prod(_sizes_of(tail, sizes)))
        kernel_shape = (shape_b[0], ls, shape_b[2])
        return Step(StepKind.GEMM, (x, y), z, result, flops, math.prod(res_sizes),
                    perms=(_perm(a, left + order), None),
                    shapes=((ls, cs), None if shape_b == _sizes_of(b, sizes) else shape_b),
                    out_shape=res_sizes if res_sizes != kernel_shape else None,
                    subscripts=subscripts(result), wide=True)
    pa, ga, wa = _layout(a, batch, left, contr, sizes)
    pb, gb, wb = _layout(b, batch, contr, right, sizes)
    kernel_out = ((bs,) if batch else ()) + (math.prod(_sizes_of(left, sizes)), rs)
    return Step(StepKind.GEMM, *head, perms=(pa, pb), shapes=(ga, gb),
                swaps=(wa, wb) if wa or wb else None,
                out_shape=res_sizes if res_sizes != kernel_out else None, subscripts=subs)


def _rows(net: Network, masks: Sequence[int], x: int, y: int, z: int) -> int:
    """Rows of the matrix product merging ``x`` (first) and ``y`` into ``z``."""
    return size_of(masks[x] & ~masks[y] & masks[z], net.sizes)


def _fits(order: Sequence[int], batch: set[int], contr: set[int]) -> bool:
    """Whether a consumer can use ``order`` as is: batch first, contracted at one end."""
    nb, nc = len(batch), len(contr)
    if set(order[:nb]) != batch:
        return False
    rest = order[nb:]
    return not nc or set(rest[:nc]) == contr or set(rest[len(rest) - nc:]) == contr


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
        step, order = _prep_step(k, raw, shape, term, net, cast)
        if step is not None:
            steps.append(step)
        orders.append(order)
    cost = tree_cost(net, tree)
    # Resolving each merge's kernel layout costs far more than the search on large
    # networks: it is done on first use (evaluation, printing, code), once.
    cache: list[_Kernels] = []

    def kernels(forced: dict[int, tuple[int, ...]] | None = None) -> _Kernels:
        if forced:  # another layout (see :func:`relayout`): not the plan's own, not kept
            return _resolve(net, tree, cost.node_masks, tuple(steps), orders, forced)
        if not cache:
            cache.append(_resolve(net, tree, cost.node_masks, tuple(steps), orders))
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


def relayout(plan: Plan, forced: dict[int, tuple[int, ...]]) -> _Kernels:
    """The plan's kernels again, with merge ``k``'s result in the axis order
    ``forced[k]`` (a kernel that is not the plan's own writes it that way: a native
    convolution); its consumers are laid out for that order."""
    return plan._kernels(forced)


def _resolve(net: Network, tree: ContractionTree, masks: Sequence[int],
             preps: tuple[Step, ...], prep_orders: Sequence[tuple[int, ...]],
             forced: dict[int, tuple[int, ...]] | None = None) -> _Kernels:
    """Each merge's kernel, laid out so that its result suits its consumer."""
    steps = list(preps)
    orders = list(prep_orders)
    n = net.num_tensors
    parent = {c: (n + k, other) for k, m in enumerate(tree.merges)
              for c, other in (m, m[::-1])}
    held = [i for i in net.output if masks[-1] >> i & 1] if tree.merges else []
    for k, (x, y) in enumerate(tree.merges):
        z = n + k
        step = _pair_step(x, y, z, orders[x], orders[y], masks[z], net)
        # Order the result for its consumer: the output order at the root, else batch
        # first and the next contraction's indices at one end (no copy there).
        if z in parent:
            p, w = parent[z]
            shared = masks[z] & masks[w]
            want = {i for i in bits(shared & masks[p])}, {i for i in bits(shared & ~masks[p])}
            good = _fits(step.indices, *want)
        else:
            good = list(step.indices) == held
        if not good:
            alt = _pair_step(y, x, z, orders[y], orders[x], masks[z], net)
            alt_good = (_fits(alt.indices, *want) if z in parent
                        else list(alt.indices) == held)
            # Else a GEMM runs faster with the smaller side as its rows (measured with
            # OpenBLAS: 64 x 576 @ 576 x 32768 beats the transposed form by 1.25x).
            if alt_good or (alt.kind is StepKind.GEMM
                            and _rows(net, masks, y, x, z) < _rows(net, masks, x, y, z)):
                step = alt
        if forced and k in forced:
            step = dataclasses.replace(step, indices=forced[k])
        steps.append(step)
        orders.append(step.indices)
    final = orders[-1] if orders else ()
    held = [i for i in net.output if i in set(final)]
    slice_shape = tuple(net.sizes[i] for i in net.output)
    return _Kernels(steps=tuple(steps), output_perm=_perm(final, held),
                    output_reshape=slice_shape if len(held) != len(slice_shape) else None)


