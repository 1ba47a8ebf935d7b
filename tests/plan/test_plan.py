"""The structure of plans: one kernel per pairwise step, no needless permutes."""

import numpy as np
import pytest

import einopt
from einopt import StepKind


def kinds(p):
    return [s.kind for s in p.steps]


def test_matmul_is_one_bare_gemm():
    p = einopt.plan("ij,jk->ik", (10, 20), (20, 30))
    (step,) = p.steps
    assert step.kind is StepKind.GEMM
    assert step.perms == (None, None) and step.shapes == (None, None) and step.out_shape is None
    assert p.output_perm is None


def test_transposed_operand_is_a_swapped_view_not_a_copy():
    p = einopt.plan("ji,jk->ik", (20, 10), (20, 30))
    (step,) = p.steps
    assert step.kind is StepKind.GEMM
    assert step.perms == (None, None) and step.swaps == (True, False)


def test_four_index_transform_copies_nothing():
    # Each result is laid out so that the next contraction finds its index at an end.
    p = einopt.plan("pi,qj,ijkl,rk,sl->pqrs", (8, 8), (8, 8), (8,) * 4, (8, 8), (8, 8))
    assert kinds(p) == [StepKind.GEMM] * 4
    assert all(s.perms == (None, None) for s in p.steps)


def test_batched_gemm_hyperedge_as_batch():
    p = einopt.plan("bij,bjk->bik", (8, 10, 20), (8, 20, 30))
    (step,) = p.steps
    assert step.kind is StepKind.GEMM
    assert step.perms == (None, None) and step.shapes == (None, None)
    assert p.output_perm is None


def test_attention_like_permutes_only_one_operand():
    p = einopt.plan("bhqd,bhkd->bhqk", (2, 3, 4, 5), (2, 3, 6, 5))
    (step,) = p.steps
    assert step.kind is StepKind.GEMM
    assert step.perms[0] is None
    assert p.output_perm is None


def test_batched_inner_product_is_dot():
    p = einopt.plan("ni,ni->n", (256, 1024), (256, 1024))
    assert kinds(p) == [StepKind.DOT]


def test_outer_and_hadamard():
    assert kinds(einopt.plan("i,j->ij", (3,), (4,))) == [StepKind.HADAMARD]
    assert kinds(einopt.plan("ij,ij->ij", (3, 4), (3, 4))) == [StepKind.HADAMARD]


def test_prep_steps_first():
    p = einopt.plan("iij,jk->ik", (3, 3, 2), (2, 4))
    assert kinds(p)[0] is StepKind.PREP and p.steps[0].diagonal == ((0, 1), (2,))


def test_goodfellow_trick_found():
    n, i, j = 256, 1024, 1024
    p = einopt.plan("ni,ni,nj,nj->n", (n, i), (n, i), (n, j), (n, j))
    hand = n * i + n * j + n  # (B*B).sum(1) * (A*A).sum(1)
    assert p.flops == hand
    assert p.naive_flops == n * i * j * 3
    assert p.speedup == pytest.approx(p.naive_flops / p.flops)
    assert p.max_size == n
    assert kinds(p) == [StepKind.DOT, StepKind.DOT, StepKind.HADAMARD]


def test_flops_convention_matrix_chain():
    p = einopt.plan("ij,jk,kl->il", (10, 20), (20, 30), (30, 5))
    assert p.flops == min(10 * 20 * 30 + 10 * 30 * 5, 20 * 30 * 5 + 10 * 20 * 5)


def test_plan_is_reusable_and_checks_shapes():
    p = einopt.plan("ij,jk->ik", (2, 3), (3, 4))
    a, b = np.ones((2, 3)), np.ones((3, 4))
    np.testing.assert_array_equal(p(a, b), a @ b)
    with pytest.raises(einopt.ShapeError, match="operand 1"):
        p(a, np.ones((3, 5)))


def test_str_table_lists_steps():
    text = str(einopt.plan("ni,ni,nj,nj->n", (4, 5), (4, 5), (4, 6), (4, 6)))
    assert "speedup" in text and "dot" in text and "op0[ni]" in text


def test_repr_is_one_line():
    p = einopt.plan("ni,ni,nj,nj->n", (4, 5), (4, 5), (4, 6), (4, 6))
    text = repr(p)
    assert "\n" not in text and text.startswith("Plan('ni,ni,nj,nj->n'") and "flops=" in text


def test_progress_bar_needs_tqdm_or_works():
    try:
        import tqdm  # noqa: F401
    except ImportError:
        with pytest.raises(einopt.PathError, match="tqdm"):
            einopt.plan("ab,bc,cd,de,ef,fg,gh,hi,ij,jk,kl,lm->am", *[(2, 2)] * 12,
                        optimize="hyper", max_time=0.1, progress=True)
    else:
        p = einopt.plan("ab,bc,cd,de,ef,fg,gh,hi,ij,jk,kl,lm->am", *[(2, 2)] * 12,
                        optimize="hyper", max_time=0.1, progress=True)
        assert len(p.path) == 11
