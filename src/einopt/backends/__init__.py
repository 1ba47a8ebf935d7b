"""Array-library dispatch: the few primitives a plan's steps need, per library.

A backend is chosen from the operands' types without importing any library that is not
already loaded. numpy is the default and the only one the core requires.
"""

from __future__ import annotations

from typing import Any

from .numpy import NumpyBackend

__all__ = ["Backend", "NumpyBackend", "backend_for"]

Backend = NumpyBackend

_NUMPY = NumpyBackend()


def backend_for(operands: Any) -> NumpyBackend:
    """The backend of ``operands`` (numpy for ndarrays, lists and Python scalars)."""
    return _NUMPY
