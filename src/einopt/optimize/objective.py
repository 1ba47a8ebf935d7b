"""What a search minimizes, and the budget it may spend.

Objectives (``minimize=``), for a tree whose merges have flops ``f_k`` (size of the
union of the two inputs' indices) and result sizes ``s_k``:

- ``"flops"``: ``sum_k f_k`` (the default);
- ``"size"``: ``max_k s_k``, ties broken by flops;
- ``"write"``: ``sum_k s_k`` (total elements written);
- ``"combo"`` / ``"combo-F"``: ``sum_k f_k + F * sum_k s_k`` (``F`` defaults to 64): flops
  plus memory traffic, a better proxy of run time than flops alone.
"""

from __future__ import annotations

import math
import numbers
import os
import time
from dataclasses import dataclass

from ..errors import PathError, PathTypeError
from ..tree import TreeCost

__all__ = ["Objective", "Budget", "parse_objective", "max_time_of", "FLOPS", "OutOfTime"]


class OutOfTime(Exception):
    """A search passed the deadline it was given (its partial result is dropped)."""


@dataclass(frozen=True, slots=True)
class Objective:
    """An additive (or max) cost over merges; ``factor`` weighs writes in ``combo``."""

    name: str
    factor: float = 64.0

    def step(self, flops: int, size: int) -> float:
        """Cost of one merge (combined by :meth:`combine`)."""
        if self.name == "flops":
            return flops
        if self.name == "write":
            return size
        if self.name == "size":
            return size
        return flops + self._weight() * size

    def combine(self, a: float, b: float, step: float) -> float:
        """Cost of a subtree from its two children's costs and its own merge's."""
        if self.name == "size":
            return max(a, b, step)
        return a + b + step

    def score(self, cost: TreeCost, num_slices: int = 1) -> float:
        """The objective's value for a whole tree (log10, so huge costs compare)."""
        flops = cost.flops * num_slices
        if self.name == "flops":
            return _log10(flops)
        if self.name == "write":
            return _log10(cost.write * num_slices)
        if self.name == "size":
            # max size dominates; flops break ties (scaled far below one size unit)
            return _log10(cost.max_size) + 1e-6 * _log10(flops)
        return _log10(flops + self._weight() * cost.write * num_slices)

    def _weight(self) -> float:
        """The write weight, an int when whole (exact integer arithmetic on big costs)."""
        return int(self.factor) if self.factor.is_integer() else self.factor


def _log10(x: int | float) -> float:
    return math.log10(x) if x > 0 else -math.inf


FLOPS = Objective("flops")


def parse_objective(minimize: str | Objective) -> Objective:
    """``"flops" | "size" | "write" | "combo" | "combo-F"`` -> :class:`Objective`."""
    if isinstance(minimize, Objective):
        return minimize
    if isinstance(minimize, str) and minimize in ("flops", "size", "write", "combo"):
        return Objective(minimize)
    if isinstance(minimize, str) and minimize.startswith("combo-"):
        try:
            factor = float(minimize[6:])
        except ValueError:
            factor = math.nan
        if math.isfinite(factor) and factor >= 0:  # a weight: nan or inf orders nothing
            return Objective("combo", factor)
    raise PathError(
        f"minimize={minimize!r} is not an objective; use 'flops', 'size', 'write', "
        "'combo' or 'combo-F' (F a number)"
    )


def max_time_of(max_time: object) -> float | None:
    """``max_time`` checked: None, or a finite positive number of seconds (an infinite
    budget never stops an anytime search).

    Raises:
        PathTypeError: it is not a real number.
        PathError: it is not finite and positive.
    """
    if max_time is None:
        return None
    if isinstance(max_time, bool) or not isinstance(max_time, numbers.Real):
        raise PathTypeError(f"max_time must be a number of seconds, got "
                            f"{type(max_time).__name__}")
    if not 0 < max_time < math.inf:
        raise PathError(f"max_time must be a positive, finite number of seconds, got "
                        f"{max_time!r}")
    return float(max_time)


def workers_of(parallel: object) -> int:
    """``parallel`` checked, as the number of processes an anytime search may use:
    ``False``/``None``/``1`` this one alone, ``True`` one per CPU, or an int.

    Raises:
        PathTypeError: it is not a bool or an int.
        PathError: it is an int below 1.
    """
    if parallel is None or parallel is False:
        return 1
    if parallel is True:
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count() or 1)
    if not isinstance(parallel, numbers.Integral):
        raise PathTypeError(f"parallel must be True, False or a number of processes, got "
                            f"{type(parallel).__name__}")
    if parallel < 1:
        raise PathError(f"parallel must be at least 1 process, got {parallel!r}")
    return int(parallel)


@dataclass(frozen=True, slots=True)
class Budget:
    """What a search may spend and aim for.

    Attributes:
        max_time: seconds (anytime searches use it all, others finish sooner).
        seed: seed of every random choice (same seed, same tree).
        objective: what to minimize.
        memory_limit: largest intermediate allowed (searches score sliced trees).
        progress: show a progress bar (anytime searches; needs ``tqdm``).
        started: ``time.perf_counter()`` when the caller's clock started (its own
            set-up counts against ``max_time``); the search's start when None.
        workers: processes an anytime search may run at once (``hyper`` runs
            independent searches in the others and keeps the best tree).
    """

    max_time: float | None = None
    seed: int | None = None
    objective: Objective = FLOPS
    memory_limit: int | None = None
    progress: bool = False
    started: float | None = None
    workers: int = 1

    def deadline(self, default: float) -> float:
        """``perf_counter`` time by which an anytime search must stop."""
        return time.perf_counter() + (default if self.max_time is None else self.max_time)
