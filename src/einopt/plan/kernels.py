"""Stage 5, the kernels: each step of a plan resolved into its cheapest kernel form.

A pairwise merge becomes a (batched) GEMM after a permute and reshape, with hyperedge
indices as the batch dimension; a fused multiply-and-reduce (batched inner product); or
a broadcast elementwise/outer product. Single-operand work (cast, size-1 squeeze,
diagonal, early sum) is a PREP step. Each merge's result is laid out for its consumer,
so that the next step needs no copy where one can be avoided.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from ..cost import size_of
from ..network import Network, bits
from ..tree import ContractionTree

__all__ = ["StepKind", "Step", "Kernels", "prep_step", "resolve_kernels", "DOT_EINSUM_BATCH",
           "DOT_EINSUM_CONTRACT", "OUTER_EINSUM_INNER"]

#: A batched inner product over at most this many elements per batch item, with at
#: least ``DOT_EINSUM_BATCH`` items, runs fastest in numpy's einsum C loop; larger
#: ones as a matmul of (B, 1, C) by (B, C, 1) (measured; see BENCHMARKS.md).
DOT_EINSUM_CONTRACT = 16
DOT_EINSUM_BATCH = 1024
#: An outer product whose inner (right) factor has at most this many elements runs
#: fastest in numpy's einsum loop; longer rows as a broadcast multiply (measured by
#: benchmarks/kernels.py: at 4096 the loop loses by 1.4-2x, at 2048 it wins).
OUTER_EINSUM_INNER = 2048
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
class Kernels:
    """The resolved program: every step, and how the last result becomes the output."""

    steps: tuple[Step, ...]
    output_perm: tuple[int, ...] | None
    output_reshape: tuple[int, ...] | None


def _sizes_of(ids: Sequence[int], sizes: Sequence[int]) -> tuple[int, ...]:
    return tuple(sizes[i] for i in ids)


def _perm(current: Sequence[int], target: Sequence[int]) -> tuple[int, ...] | None:
    pos = {i: k for k, i in enumerate(current)}
    perm = tuple(pos[i] for i in target)
    return None if perm == tuple(range(len(perm))) else perm


def prep_step(k: int, raw: tuple[int, ...], shape: tuple[int, ...], term: tuple[int, ...],
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
        loop = bool(left and right and rs <= OUTER_EINSUM_INNER and subs)
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
        loop = bool(cs <= DOT_EINSUM_CONTRACT and bs >= DOT_EINSUM_BATCH and subs)
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


def resolve_kernels(net: Network, tree: ContractionTree, masks: Sequence[int],
             preps: tuple[Step, ...], prep_orders: Sequence[tuple[int, ...]],
             forced: dict[int, tuple[int, ...]] | None = None) -> Kernels:
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
    return Kernels(steps=tuple(steps), output_perm=_perm(final, held),
                    output_reshape=slice_shape if len(held) != len(slice_shape) else None)
