"""cupy primitives for plan steps: numpy's API on the GPU (cuBLAS for the GEMMs)."""

from __future__ import annotations

from typing import Any

import cupy

from .base import NumpyLike, strided_diagonal

__all__ = ["CupyBackend"]


class CupyBackend(NumpyLike):
    """Kernel primitives on ``cupy.ndarray``; numpy constants are copied to the device."""

    name = "cupy"
    xp = cupy
    array_types = (cupy.ndarray,)

    def diagonal(self, x: Any, groups: tuple[tuple[int, ...], ...]) -> Any:
        """A strided view whose axis ``k`` walks the diagonal of ``x``'s axes ``groups[k]``."""
        return strided_diagonal(x, groups, cupy.lib.stride_tricks.as_strided)
