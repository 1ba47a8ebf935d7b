"""The rewrite: structured operands leave the einsum as index substitutions."""

from __future__ import annotations

import numpy as np
import pytest

import einopt
from einopt import conv_pattern, delta, one_hot
from einopt.structured.rewrite import Affine, Gather, kind_of, rewrite, spec_of


def _rewrite(eq, *ops):
    return rewrite(einopt.parse.parse_cached(eq), tuple(spec_of(x) for x in ops),
                   tuple(kind_of(x) for x in ops))


def test_delta_merges_indices_for_free():
    rw = _rewrite("ij,jk,kl->il", np.zeros((2, 3)), delta(3), np.zeros((3, 4)))
    assert len(rw.sources) == 2 and all(not s.views and s.const is None for s in rw.sources)
    assert rw.equation.inputs[0][1] == rw.equation.inputs[1][0]


def test_delta_output_is_an_embedding():
    rw = _rewrite("ij,j->ij", delta(3), np.zeros(3))
    assert rw.embeds and len(rw.output) == 2 and len(rw.equation.output) == 1


def test_conv_pattern_substitutes_the_input_position():
    p = conv_pattern(32, 3, padding=1)
    rw = _rewrite("nchw,kcab,axh,byw->nkxy", np.zeros((2, 3, 32, 32)), np.zeros((4, 3, 3, 3)),
                  p, p)
    assert rw.equation.inputs[0] == tuple("ncaxby")
    views = rw.sources[0].views
    assert [type(v) for v in views] == [Affine, Affine]
    assert all(v.divisor == 1 and v.coef == (1, 1) and v.offset == -1 for v in views)


def test_transposed_pattern_substitutes_the_output_position():
    p = conv_pattern(10, 3, stride=2, padding=1, output_size=5)
    rw = _rewrite("nco,cmk,koi->nmi", np.zeros((1, 2, 5)), np.zeros((2, 3, 3)), p)
    (v,) = rw.sources[0].views
    assert v.divisor == 2 and rw.equation.inputs[0] == tuple("ncki")


def test_pattern_only_indices_become_multiplicities():
    p = conv_pattern(8, 3, padding=1)
    rw = _rewrite("ncij,ncij,kai,lbj->n", np.zeros((2, 3, 8, 8)), np.zeros((2, 3, 8, 8)), p, p)
    consts = [s.const for s in rw.sources if s.const is not None]
    assert len(consts) == 2
    np.testing.assert_array_equal(consts[0], np.asarray(p).sum(axis=(0, 1)))


def test_per_example_hessian_trace_becomes_the_multiplicity_form():
    """sum over (k, o) of P[k,o,i] P[k,o,j] is a multiplicity on the diagonal i == j: the
    Hessian trace's pair of patterns leaves one input index and one constant."""
    p = conv_pattern(8, 3, padding=1)
    x = np.zeros((2, 3, 8))
    rw = _rewrite("nci,ncj,koi,koj->n", x, x, p, p)
    assert len(rw.equation.inputs) == 3
    assert rw.equation.inputs[0] == rw.equation.inputs[1]
    np.testing.assert_array_equal(rw.sources[2].const, np.asarray(p).sum(axis=(0, 1)))


def test_pattern_kept_whole_in_the_output_is_materialized():
    p = conv_pattern(6, 3)
    rw = _rewrite("koi->koi", p)
    assert rw.sources[0].dense


def test_selector_gathers_the_class_index():
    rw = _rewrite("nc,cd->nd", one_hot(np.array([1, 0]), 3), np.zeros((3, 4)))
    (src,) = rw.sources
    assert src.views == (Gather(0, 0),) and rw.equation.inputs[0] == ("n", "d")


def test_conv_plan_costs_direct_multiply_adds():
    p = conv_pattern(32, 3, padding=1)
    plan = einopt.plan("nchw,kcab,axh,byw->nkxy", (32, 64, 32, 32), (64, 64, 3, 3), p, p)
    assert plan.flops == 32 * 64 * 64 * 9 * 32 * 32
    assert plan.structure is not None


def test_structured_operand_cannot_take_an_ellipsis():
    with pytest.raises(einopt.SubscriptError, match="operand 1"):
        einopt.einsum("...i,...i->...", np.zeros((2, 3)), delta(3))


def test_delta_size_mismatch_names_the_operand():
    with pytest.raises(einopt.ShapeError, match="structured operand 1"):
        einopt.einsum("ij,jk->ik", np.zeros((2, 3)), delta(4))


def test_plan_rejects_other_operands():
    p = conv_pattern(6, 3)
    plan = einopt.plan("i,koi->ko", np.zeros(6), p)
    with pytest.raises(einopt.ShapeError, match="operand 1"):
        plan(np.zeros(6), conv_pattern(6, 2))


def test_one_hot_index_out_of_range():
    with pytest.raises(einopt.ShapeError, match="outside"):
        einopt.einsum("nc,cd->nd", one_hot(np.array([3]), 3), np.zeros((3, 2)))


def test_structured_plan_code_says_what_it_takes_and_json_refuses():
    p = conv_pattern(6, 3)
    plan = einopt.plan("i,koi->ko", np.zeros(6), p)
    assert "Plan.structure" in plan.code()
    with pytest.raises(einopt.EinsumError, match="structured"):
        plan.to_json()
