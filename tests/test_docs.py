"""Docstring examples run as doctests."""

import doctest

import pytest

import einopt.api
import einopt.autodiff
import einopt.compat
import einopt.structured.operands
import einopt.torch

MODULES = [einopt.api, einopt.autodiff, einopt.compat, einopt.structured.operands, einopt.torch]


@pytest.mark.parametrize("module", MODULES, ids=[m.__name__ for m in MODULES])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
