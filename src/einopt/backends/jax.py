"""jax primitives for plan steps: pure functions of ``jax.numpy``, so ``jax.jit``,
``jax.grad`` and ``jax.vmap`` trace straight through a plan."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ..errors import OperandTypeError
from .base import NumpyLike

__all__ = ["JaxBackend"]


class JaxBackend(NumpyLike):
    """Kernel primitives on ``jax.Array`` (and tracers)."""

    name = "jax"
    pair_einsum = True
    xp = jnp
    array_types = (jax.Array,)

    def add_at(self, result: Any, index: tuple[Any, ...], part: Any) -> Any:
        return result.at[index].add(part)  # jax arrays are immutable

    def write_out(self, result: Any, out: Any, casting: str) -> Any:
        raise OperandTypeError("jax arrays are immutable: out= is not supported for them")
