"""Timing helper shared by the benchmark scripts.

``measure(fn)`` calls ``fn`` once to warm it up, picks how many calls make up one
measurement so that a measurement lasts about ``target`` seconds, takes ``repeats``
measurements and reports the median time per call.  ``measure_many(fns)`` does the same
for several functions at once, interleaved: each round measures every function once (in
a rotating order), so that a slow spell of the machine hits all of them alike.
``time_once(fn)`` times a single call, for cold-start numbers.  All times are
``time.perf_counter`` wall times with the garbage collector off.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

__all__ = ["Timing", "measure", "measure_many", "time_once", "format_seconds"]


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


def measure_many(fns: Mapping[str, Callable[[], Any]], target: float = 0.2, repeats: int = 5,
                 warmup: int = 1,
                 contexts: Mapping[str, Callable[[], AbstractContextManager[Any]]] | None = None
                 ) -> dict[str, Timing | Exception]:
    """:func:`measure` for several functions, their measurements interleaved.

    Every function is warmed up and calibrated first; then ``repeats`` rounds each take
    one measurement of every function, starting one function later each round.
    ``contexts[key]()``, when given, is entered around each warm-up, calibration and
    measurement of ``fns[key]`` (outside the timed loop), e.g. to switch a library
    setting.  A function that raises gets the exception in place of its timing; the
    others go on.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    contexts = contexts or {}

    def ctx(key: str) -> AbstractContextManager[Any]:
        make = contexts.get(key)
        return make() if make is not None else contextlib.nullcontext()

    numbers: dict[str, int] = {}
    results: dict[str, Timing | Exception] = {}
    for key, fn in fns.items():
        try:
            with ctx(key):
                for _ in range(warmup):
                    fn()
                numbers[key] = _calibrate(fn, target)
        except Exception as exc:  # reported by the caller
            results[key] = exc
    keys = list(numbers)
    per_call: dict[str, list[float]] = {key: [] for key in keys}
    for r in range(repeats):
        for key in keys[r % len(keys):] + keys[:r % len(keys)] if keys else []:
            if key in results:
                continue
            try:
                with ctx(key):
                    per_call[key].append(_run(fns[key], numbers[key]) / numbers[key])
            except Exception as exc:
                results[key] = exc
    for key in keys:
        if key not in results:
            times = per_call[key]
            results[key] = Timing(statistics.median(times), min(times), numbers[key], repeats)
    return {key: results[key] for key in fns if key in results}


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
