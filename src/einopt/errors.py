"""Errors raised for bad input, one family rooted at :class:`EinsumError`.

Every error is raised by the first stage that can see the problem and names the
operand position, the index and the sizes involved, so a user never has to read a
traceback from inside an array library.
"""

from __future__ import annotations

__all__ = [
    "EinsumError",
    "SubscriptError",
    "ShapeError",
    "OperandTypeError",
    "PathError",
]


class EinsumError(ValueError):
    """Base class of every error einopt raises for bad input."""


class SubscriptError(EinsumError):
    """The subscripts are malformed: bad character, bad arrow, bad output, operand count."""


class ShapeError(EinsumError):
    """Operand shapes disagree with the subscripts or with each other."""


class OperandTypeError(EinsumError, TypeError):
    """An operand is not an array, or cannot be cast as requested."""


class PathError(EinsumError):
    """An explicit contraction path or optimizer option is invalid."""
