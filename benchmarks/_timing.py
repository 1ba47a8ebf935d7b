"""Timing helper shared by the benchmark scripts.

``measure(fn)`` calls ``fn`` once to warm it up, picks how many calls make up one
measurement so that a measurement lasts about ``target`` seconds, takes ``repeats``
measurements and reports the median time per call.  ``time_once(fn)`` times a single
call, for cold-start numbers.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Timing", "measure", "time_once", "format_seconds"]


@dataclass(frozen=True)
class Timing:
    """Result of :func:`measure`; all times are seconds per call."""

    median: float
    best: float
    number: int  # calls per measurement
    repeats: int  # measurements taken


def _run(fn: Callable[[], Any], number: int) -> float:
    """Wall time of ``number`` back-to-back calls, with the garbage collector off."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()


def _calibrate(fn: Callable[[], Any], target: float) -> int:
    """Number of calls that take about ``target`` seconds in total (at least 1)."""
    number = 1
    while True:
        elapsed = _run(fn, number)
        if elapsed >= target:
            return number
        # Once a run is long enough to be trusted, extrapolate from it.
        if elapsed >= target / 10 or number >= 1 << 24:
            return max(1, round(number * target / max(elapsed, 1e-9)))
        if elapsed <= 0:
            number *= 10
        else:
            number *= max(2, min(10, int(target / 10 / elapsed) + 1))


def measure(fn: Callable[[], Any], target: float = 0.2, repeats: int = 5,
            warmup: int = 1) -> Timing:
    """Median seconds per call of ``fn`` over ``repeats`` measurements of ~``target`` s."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    for _ in range(warmup):
        fn()
    number = _calibrate(fn, target)
    per_call = [_run(fn, number) / number for _ in range(repeats)]
    return Timing(statistics.median(per_call), min(per_call), number, repeats)


def time_once(fn: Callable[[], Any]) -> float:
    """Seconds taken by a single call of ``fn``."""
    return _run(fn, 1)


def format_seconds(seconds: float | None) -> str:
    """Human-readable duration with three significant digits, e.g. ``12.3 ms``."""
    if seconds is None:
        return "-"
    unit, scale = next(((u, s) for u, s in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6))
                        if seconds >= s), ("ns", 1e-9))
    value = seconds / scale
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:.{digits}f} {unit}"
