"""A plan's reported peak memory against the memory numpy really allocates, and
``memory_limit`` as a bound on it."""

from __future__ import annotations

import gc
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import einopt
from einopt.errors import MemoryLimitError
from einopt.run.memory import (
    CALL_OVERHEAD_BYTES,
    OBJECT_BYTES,
    nocopy_strides,
    peak_bytes,
    peak_elements,
    profiled_peak,
    traced_peak,
)

from cases import check_against_numpy, make_operands

#: how far the measured peak may exceed the reported one (the issue's acceptance bound)
TOLERANCE = 1.25


def measured_peak(fn) -> int:
    """Bytes one call of ``fn`` allocates at its peak (``tracemalloc``)."""
    gc.collect()
    return traced_peak(fn)


def _check_dense(eq, ops, got) -> None:
    """``got`` against numpy's einsum on the dense patterns (along numpy's greedy path;
    the per-example norm as the squared per-example gradient, which numpy's paths for
    the eight-operand form take minutes over)."""
    dense = [np.asarray(o) for o in ops]
    if len(ops) == 8:
        per = np.einsum(eq.split(",nctu")[0] + "->nkcab", *dense[:4], optimize="greedy")
        want = (per ** 2).sum((1, 2, 3, 4))
    else:
        want = np.einsum(eq, *dense, optimize="greedy")
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-8 * np.abs(want).max())


def _pattern(h: int, **kw) -> einopt.ConvPattern:
    return einopt.conv_pattern(h, 3, **kw)


DENSE = [
    ("ab,bc,cd->ad", [(100, 150), (150, 200), (200, 100)]),
    ("ni,ni,nj,nj->n", [(256, 1024)] * 4),
    ("abc,bcd->da", [(50, 60, 70), (60, 70, 80)]),
    ("ijk,jkl,lmn->imn", [(30, 40, 50), (40, 50, 60), (60, 20, 30)]),
    ("ab,bc,cd,da->", [(120, 120)] * 4),
    ("iij,jk->ik", [(100, 100, 50), (50, 70)]),
    ("ni,nj->nij", [(64, 256), (64, 128)]),
    ("abcd,dcba->ab", [(20, 30, 40, 10), (10, 40, 30, 20)]),
]


@pytest.mark.parametrize(("eq", "shapes"), DENSE, ids=[eq for eq, _ in DENSE])
@pytest.mark.parametrize("limited", [False, True], ids=["whole", "limited"])
def test_peak_bytes_covers_what_numpy_allocates(eq, shapes, limited, rng):
    ops = make_operands(shapes, np.float64, rng)
    p = einopt.plan(eq, *ops)
    limit = None
    if limited:
        limit = max((p.peak_bytes - CALL_OVERHEAD_BYTES) // 8 // 2, math.prod(p.output_shape) * 2)
        p = einopt.plan(eq, *ops, memory_limit=limit)
    p(*ops)  # compiled outside the measurement
    got = measured_peak(lambda: p(*ops))
    assert got <= TOLERANCE * p.peak_bytes
    assert p.peak_bytes <= TOLERANCE * got + CALL_OVERHEAD_BYTES  # and not far above it
    if limit is not None:
        assert peak_elements(p) <= limit  # the limit bounds data, not array objects
        assert got <= limit * 8 + CALL_OVERHEAD_BYTES
    check_against_numpy(eq, ops, p(*ops))


def _structured(rng):
    n, c, h = 4, 16, 12
    pat, s2 = _pattern(h, padding=1), _pattern(h, stride=2, padding=1)
    x, w, g = (rng.standard_normal(s) for s in [(n, c, h, h), (c, c, 3, 3), (n, c, h, h)])
    g2 = rng.standard_normal((n, c, s2.output_size, s2.output_size))
    return [
        ("forward", "nchw,kcab,axh,byw->nkxy", [x, w, pat, pat]),
        ("weight gradient", "nchw,axh,byw,nkxy->kcab", [x, pat, pat, g]),
        ("per-example norms", "nchw,axh,byw,nkxy,nctu,azt,bqu,nkzq->n",
         [x, pat, pat, g, x, pat, pat, g]),
        ("stride 2", "nchw,kcab,axh,byw->nkxy", [x, w, s2, s2]),
        ("transposed", "nkxy,kcab,axh,byw->nchw", [g2, w, s2, s2]),
        ("depthwise", "nchw,cab,axh,byw->ncxy", [x, rng.standard_normal((c, 3, 3)), pat, pat]),
        # the result is embedded on a diagonal after the program: that buffer counts too
        ("delta", "ij,jk,jl->jkl", [rng.standard_normal((256, 64)), einopt.delta(64),
                                    rng.standard_normal((64, 32))]),
    ]


@pytest.mark.parametrize("k", range(7))
def test_structured_plans_count_views_and_native_buffers(k, rng):
    name, eq, ops = _structured(rng)[k]
    p = einopt.plan(eq, *ops)
    p(*ops)
    got = measured_peak(lambda: p(*ops))
    assert got <= TOLERANCE * p.peak_bytes, name
    _check_dense(eq, ops, p(*ops))


def test_a_limit_below_the_result_is_refused():
    with pytest.raises(MemoryLimitError, match=r"\(20, 20\)"):
        einopt.plan("ab,bc,cd->ad", (20, 30), (30, 40), (40, 20), memory_limit=300)


def test_structured_limit_bounds_the_views_copies(rng):
    name, eq, ops = _structured(rng)[1]  # the weight gradient: an im2col-sized buffer
    whole = einopt.plan(eq, *ops)
    limit = (whole.peak_bytes - CALL_OVERHEAD_BYTES) // 8 // 2
    p = einopt.plan(eq, *ops, memory_limit=limit)
    assert p.sliced
    p(*ops)
    assert measured_peak(lambda: p(*ops)) <= limit * 8 + CALL_OVERHEAD_BYTES
    _check_dense(eq, ops, p(*ops))


def test_torch_figure_uses_its_item_size():
    p = einopt.plan("ab,bc->ac", (100, 200), (200, 300))
    data = 100 * 300  # the result: the one buffer of a single matrix product
    assert 0 <= peak_bytes(p, "numpy", 4) - CALL_OVERHEAD_BYTES - data * 4 <= 4 * OBJECT_BYTES
    assert peak_elements(p, "numpy") == data


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([1, 2, 3, 4, 6]), min_size=1, max_size=5), st.randoms())
def test_nocopy_rule_is_numpys(shape, r):
    a = np.empty(shape, np.int8)
    perm = list(range(len(shape)))
    r.shuffle(perm)
    v = a.transpose(perm)[tuple(slice(None, None, r.choice([1, 2])) for _ in shape)]
    dims, rest = [], v.size
    while rest > 1:
        d = r.choice([d for d in range(2, rest + 1) if rest % d == 0])
        dims.append(d)
        rest //= d
    dims.insert(r.randint(0, len(dims)), 1)
    mine = nocopy_strides(v.shape, v.strides, dims)
    try:
        theirs = np.reshape(v, dims, copy=False).strides
    except ValueError:
        theirs = None
    assert (mine is None) == (theirs is None)
    if mine is not None and v.size > 1:
        assert [m for m, d in zip(mine, dims, strict=True) if d != 1] == \
            [t for t, d in zip(theirs, dims, strict=True) if d != 1]


def test_every_small_reshape_agrees_with_numpy():
    for shape in itertools.product([1, 2, 3], repeat=3):
        a = np.empty(shape, np.int8).transpose(2, 0, 1)
        for new in [(a.size,), (1, a.size), (a.shape[0], -1)]:
            new = tuple(a.size // a.shape[0] if d == -1 else d for d in new)
            try:
                theirs = np.reshape(a, new, copy=False)
            except ValueError:
                theirs = None
            assert (nocopy_strides(a.shape, a.strides, new) is None) == (theirs is None)


def test_many_small_tensors_count_the_sequences_a_call_keeps(rng):
    """3,000 tensors of a few elements: the call's tuples, lists and registers are
    most of its memory."""
    n = 3000
    ops = [rng.standard_normal((2, 2)) * 0.5 for _ in range(n)]
    p = einopt.plan(*[x for k, op in enumerate(ops) for x in (op, [k, k + 1])], [])
    p(*ops)
    got = measured_peak(lambda: p(*ops))
    assert got <= TOLERANCE * p.peak_bytes
    assert p.peak_bytes <= 2 * got
    chain = ops[0]
    for op in ops[1:]:
        chain = chain @ op
    np.testing.assert_allclose(p(*ops), chain.sum(), rtol=1e-8)


def test_torch_figure_covers_what_its_allocator_holds():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(256, 1024, generator=g) for _ in range(2))
    # distinct tensors: torch's fused multiply-and-sum forms their product
    for ops in ([a, a.clone(), b, b.clone()], [a, a, b, b]):
        p = einopt.plan("ni,ni,nj,nj->n", *ops)
        p(*ops)
        got = profiled_peak(lambda p=p, ops=ops: p(*ops))
        assert got <= TOLERANCE * peak_bytes(p, "torch", 4)
        torch.testing.assert_close(p(*ops), (a * a).sum(1) * (b * b).sum(1))


def test_flipped_windows_are_views_so_a_limit_slices_them(rng):
    """The input gradient reads the output gradient through flipped windows: a view
    (no gather of every window), so slicing the batch bounds the call's memory."""
    n, c, h = 8, 8, 12
    pat = _pattern(h, padding=1)
    ops = [rng.standard_normal((n, c, h, h)), rng.standard_normal((c, c, 3, 3)), pat, pat]
    eq = "nkxy,kcab,axh,byw->nchw"
    whole = einopt.plan(eq, *ops)
    limit = peak_elements(whole) // 3
    p = einopt.plan(eq, *ops, memory_limit=limit)
    assert p.sliced and peak_elements(p) <= limit
    p(*ops)
    got = measured_peak(lambda: p(*ops))
    assert got <= limit * 8 + p.peak_bytes - peak_elements(p) * 8
    assert got <= TOLERANCE * p.peak_bytes
    _check_dense(eq, ops, p(*ops))


def test_a_sliced_plan_counts_its_summed_result_beside_a_slice(rng):
    """From the second slice on, the summed result is alive while a slice runs (here the
    padded input, one slice's unfolded copy and the whole output at once)."""
    n, c, h = 8, 16, 16
    pat = _pattern(h, padding=1)
    ops = [rng.standard_normal((n, c, h, h)), rng.standard_normal((c, c, 3, 3)), pat, pat]
    eq = "nchw,kcab,axh,byw->nkxy"
    limit = peak_elements(einopt.plan(eq, *ops)) // 2
    p = einopt.plan(eq, *ops, memory_limit=limit)
    assert p.num_slices > 1
    p(*ops)
    got = measured_peak(lambda: p(*ops))
    assert got <= TOLERANCE * p.peak_bytes
    assert got <= limit * 8 + p.peak_bytes - peak_elements(p) * 8
    _check_dense(eq, ops, p(*ops))
