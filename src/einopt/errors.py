"""Errors raised for bad input, one family rooted at :class:`EinsumError`; an executor
that fails mid-run raises one of the family too (:class:`ExecutorError`).

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
    "PathTypeError",
    "MemoryLimitError",
    "SubscriptTypeError",
    "OptionError",
    "OptionTypeError",
    "BackendError",
    "ExecutorError",
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


class MemoryLimitError(PathError):
    """No plan meets ``memory_limit``: the result, or a kernel's copy that slicing cannot
    shrink, is larger than the limit."""


class PathTypeError(PathError, TypeError):
    """An explicit path or a search option is of the wrong type: a position that is not
    an int, an entry that is not a tuple, an ``optimize`` or ``max_time`` of no known
    kind (numpy raises ``TypeError``)."""


class IncompletePathError(PathError, RuntimeError):
    """An explicit path leaves more than one operand uncontracted (numpy raises
    ``RuntimeError``)."""


class OptionError(EinsumError):
    """An option of the call has an invalid value: ``order``, ``casting``, an ``out``
    that cannot be written."""


class OptionTypeError(OptionError, TypeError):
    """An option of the call has the wrong type, or names no dtype (numpy raises
    ``TypeError``)."""


class BackendError(EinsumError, ImportError):
    """A ``backend=`` names no importable module, or one without the ``einsum`` the
    contraction needs (opt_einsum lets the ``ImportError`` through)."""


class ExecutorError(EinsumError, RuntimeError):
    """The executor of a sliced plan failed before every slice was summed: workers lost
    for good, the dask client or the pool closed, the cluster unreachable. The message
    names the executor and the reason; the executor's own exception is the
    ``__cause__``. No partial sum is ever returned."""
