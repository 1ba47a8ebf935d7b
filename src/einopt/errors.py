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
    "IncompletePathError",
    "SubscriptTypeError",
    "OptionError",
    "OptionTypeError",
    "BackendError",
]


class EinsumError(ValueError):
    """Base class of every error einopt raises for bad input."""


class SubscriptError(EinsumError):
    """The subscripts are malformed: bad character, bad arrow, bad output, operand count."""


class ShapeError(EinsumError):
    """Operand shapes disagree with the subscripts or with each other."""


class SubscriptTypeError(SubscriptError, TypeError):
    """The subscripts are of the wrong type: in the sublist form, a subscript list that
    is not a list of labels (numpy raises ``TypeError``)."""


class OperandTypeError(EinsumError, TypeError):
    """An operand is not an array, or cannot be cast as requested."""


class PathError(EinsumError):
    """An explicit contraction path or optimizer option is invalid."""


class IncompletePathError(PathError, RuntimeError):
    """An explicit path leaves more than one operand uncontracted (numpy raises
    ``RuntimeError``)."""


class OptionError(EinsumError):
    """An option of the call has an invalid value: ``order``, ``casting``."""


class OptionTypeError(OptionError, TypeError):
    """An option of the call has the wrong type, or names no dtype (numpy raises
    ``TypeError``)."""


class BackendError(EinsumError, ImportError):
    """A ``backend=`` names no importable module, or one without the ``einsum`` the
    contraction needs (opt_einsum lets the ``ImportError`` through)."""
