"""Structured operands: their dense forms, shapes and argument checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import einopt
from einopt import conv_pattern, delta, one_hot


@pytest.mark.parametrize("size,order", [(1, 1), (3, 2), (4, 3), (2, 5)])
def test_delta_dense(size, order):
    d = np.asarray(delta(size, order))
    assert d.shape == (size,) * order
    for idx in itertools.product(range(size), repeat=order):
        assert d[idx] == (1.0 if len(set(idx)) == 1 else 0.0)


@pytest.mark.parametrize("i,k,s,p,d", [(7, 3, 1, 0, 1), (9, 3, 2, 1, 1), (10, 2, 3, 2, 2),
                                       (5, 5, 1, 2, 1), (8, 3, 1, (0, 2), 2)])
def test_conv_pattern_dense_is_its_rule(i, k, s, p, d):
    pat = conv_pattern(i, k, s, p, d)
    dense = np.asarray(pat)
    left = p[0] if isinstance(p, tuple) else p
    assert dense.shape == (k, pat.output_size, i)
    for kk, oo, ii in itertools.product(*map(range, dense.shape)):
        assert dense[kk, oo, ii] == (1.0 if ii == oo * s + kk * d - left else 0.0)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("i,k,s,p,d", list(itertools.product(
    (6, 7, 10), (1, 2, 3), (1, 2, 3), (0, 1, 2, "same", "valid"), (1, 2))))
def test_conv_pattern_output_size_matches_torch(i, k, s, p, d):
    torch = pytest.importorskip("torch")
    if p == "same" and s > 1:
        expected = -(-i // s)  # TensorFlow's rule, which torch does not offer for stride > 1
    else:
        try:
            expected = torch.nn.functional.conv1d(torch.zeros(1, 1, i), torch.zeros(1, 1, k),
                                                  stride=s, padding=p, dilation=d).shape[-1]
        except RuntimeError:
            with pytest.raises(einopt.ShapeError):
                conv_pattern(i, k, s, p, d)
            return
    assert conv_pattern(i, k, s, p, d).output_size == expected


def test_one_hot_dense():
    idx = np.array([[2, 0], [1, 1]])
    s = one_hot(idx, 3)
    assert s.shape == (2, 2, 3)
    np.testing.assert_array_equal(np.asarray(s), np.eye(3)[idx])


@pytest.mark.parametrize("make", [
    lambda: delta(0),
    lambda: delta(3, 0),
    lambda: conv_pattern(5, 0),
    lambda: conv_pattern(5, 3, stride=0),
    lambda: conv_pattern(5, 3, padding=-1),
    lambda: conv_pattern(2, 5),
    lambda: one_hot(np.array([0.5]), 3),
    lambda: one_hot(np.array([1]), 0),
])
def test_bad_arguments_raise_einsum_errors(make):
    with pytest.raises(einopt.EinsumError):
        make()


def test_structured_operands_have_float64_dtype_and_ndim():
    p = conv_pattern(6, 3)
    assert p.ndim == 3 and p.dtype == np.float64
    assert np.asarray(p, dtype=np.float32).dtype == np.float32
