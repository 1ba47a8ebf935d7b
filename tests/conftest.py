"""Shared test configuration.

Makes the in-tree package and the shared test helpers importable, and offers a
seeded random generator fixture.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest

_TESTS = os.path.dirname(os.path.abspath(__file__))
if _TESTS not in sys.path:  # lets test modules import the shared corpus in cases.py
    sys.path.insert(0, _TESTS)

_SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
if importlib.util.find_spec("einopt") is None and os.path.isdir(_SRC):
    sys.path.insert(0, _SRC)


@pytest.fixture
def rng() -> np.random.Generator:
    """A freshly seeded generator, so every test sees the same numbers."""
    return np.random.default_rng(20240611)
