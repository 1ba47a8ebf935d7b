"""Array-library dispatch: the few primitives a plan's steps need, per library.

A backend is chosen from the operands' types by the name of the module that defines
them, so no library is imported that the caller has not already loaded. numpy is the
default and the only one the core requires; torch, jax, cupy and dask are optional.
Python scalars and numpy arrays mixed with another library's arrays are converted by
that library (its promotion rules apply); two different libraries are an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..caches import memoize
from ..errors import OperandTypeError
from .base import Backend
from .numpy import NumpyBackend

__all__ = ["Backend", "NumpyBackend", "backend_for", "get_backend", "named_backend",
           "LIBRARIES"]

#: Top-level module of an array type -> backend name.
LIBRARIES = {"torch": "torch", "jax": "jax", "jaxlib": "jax", "cupy": "cupy", "dask": "dask"}

_NUMPY = NumpyBackend()


@memoize("backends", 16)
def get_backend(name: str) -> Backend:
    """The backend called ``name`` (importing its library)."""
    if name == "numpy":
        return _NUMPY
    if name == "torch":
        from .torch import TorchBackend

        return TorchBackend()
    if name == "jax":
        from .jax import JaxBackend

        return JaxBackend()
    if name == "cupy":
        from .cupy import CupyBackend

        return CupyBackend()
    if name == "dask":
        from .dask import DaskBackend

        return DaskBackend()
    if name.startswith("module:"):
        from .module import ModuleBackend

        return ModuleBackend(name[len("module:"):])
    known = ", ".join(sorted({"numpy", *LIBRARIES.values()}))
    raise OperandTypeError(f"unknown backend {name!r}; known: {known} (or 'module:NAME' for "
                           f"a module's einsum)")


@memoize("array types", 256)
def _library_of(cls: type) -> str:
    for base in cls.__mro__:  # subclasses (torch.nn.Parameter, user types) count too
        lib = LIBRARIES.get(base.__module__.partition(".")[0])
        if lib is not None:
            return lib
    return "numpy"


def backend_name(operands: Sequence[Any]) -> str:
    """The library of ``operands``: numpy unless one of them belongs to another."""
    found = "numpy"
    for k, x in enumerate(operands):
        lib = _library_of(type(x))  # type: ignore[arg-type]
        if lib == "numpy" or lib == found:
            continue
        if found != "numpy":
            raise OperandTypeError(
                f"operand {k} is a {lib} array but an earlier operand is a {found} array; "
                f"convert them to one library first")
        found = lib
    return found


def backend_for(operands: Sequence[Any]) -> Backend:
    """The backend of ``operands`` (numpy for ndarrays, lists and Python scalars)."""
    name = backend_name(operands)
    return _NUMPY if name == "numpy" else get_backend(name)


#: opt_einsum's names of array libraries (``backend=``) -> einopt's backend.
LIBRARY_NAMES = {"numpy": "numpy", "torch": "torch", "jax": "jax", "jaxlib": "jax",
                 "jax.numpy": "jax", "cupy": "cupy", "dask": "dask", "dask.array": "dask"}


def named_backend(name: str | None) -> Backend | None:
    """The backend opt_einsum's ``backend=name`` stands for: None for ``"auto"`` (and
    None: the operands' own); an array library's backend for its name (the operands
    are converted to it); any other name is a module whose ``einsum`` runs every step
    (:class:`~einopt.backends.module.ModuleBackend`, made once per name, as
    ``get_backend("module:" + name)``)."""
    if name is None or name == "auto":
        return None
    if not isinstance(name, str):
        raise OperandTypeError(f"backend must be a library or module name, got "
                               f"{type(name).__name__}")
    lib = LIBRARY_NAMES.get(name.lower())
    if lib is not None:
        return get_backend(lib)
    return get_backend(f"module:{name}")
