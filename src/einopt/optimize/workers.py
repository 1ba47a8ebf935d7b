"""Worker processes for ``hyper``'s independent searches, kept between calls.

On large random hypergraphs the tree one search ends with depends on its seed by orders
of magnitude (the basin that sampling hands to annealing decides most of it), so the
best of several independent searches is far steadier than one, and it costs no wall
time where cores are idle. The pool is started with ``forkserver`` where there is one:
its server imports einopt once, so each worker starts warm, and no worker inherits the
caller's threads (BLAS, torch), which ``fork`` would copy in whatever state they are.
Elsewhere ``spawn``. As with any such start method, a script that asks for workers
needs the ``if __name__ == "__main__":`` guard: each worker imports the main module.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import multiprocessing
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["collect", "submit"]

#: The module each forkserver worker imports before its first task (the search itself).
PRELOAD = "einopt.optimize.hyper"

_LOCK = threading.Lock()
_POOL: dict[str, Any] = {"executor": None, "size": 0}
_RETIRED: list[cf.ProcessPoolExecutor] = []


def _context() -> Any:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["__main__", PRELOAD])
        return ctx
    return multiprocessing.get_context("spawn")


def _executor(size: int) -> cf.ProcessPoolExecutor:
    """A pool of at least ``size`` workers: the one kept from earlier calls where it is
    large enough and sound, else a new one (the old one is let go once its tasks end,
    and kept referenced until then, so that no pool is collected as the interpreter
    exits)."""
    with _LOCK:
        pool = _POOL["executor"]
        if pool is not None and (_POOL["size"] < size or getattr(pool, "_broken", False)):
            pool.shutdown(wait=False, cancel_futures=True)
            _RETIRED.append(pool)
            pool = None
        if pool is None:
            if not _RETIRED and _POOL["executor"] is None:
                atexit.register(_shutdown)
            pool = cf.ProcessPoolExecutor(max_workers=size, mp_context=_context())
            _POOL.update(executor=pool, size=size)
        return pool


def _shutdown() -> None:
    with _LOCK:
        for pool in [*_RETIRED, _POOL["executor"]]:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        _RETIRED.clear()
        _POOL.update(executor=None, size=0)


def submit(fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]]) -> list[cf.Future[Any]]:
    """``fn(*args)`` for each ``args`` of ``calls``, each in a worker process of its own.

    ``fn`` and its arguments must pickle (``fn`` a module-level function)."""
    pool = _executor(len(calls))
    return [pool.submit(fn, *args) for args in calls]


def collect(futures: Sequence[cf.Future[Any]], end: float) -> list[Any]:
    """The results of ``futures`` that are done by ``end`` (a ``time.perf_counter()``
    value). A worker that failed or is late adds nothing (the caller's own result
    stands); a pool whose worker died is replaced at the next call."""
    done, _ = cf.wait(futures, timeout=max(0.0, end - time.perf_counter()))
    found = []
    for f in futures:
        if f not in done:
            f.cancel()  # not started yet: never started
            continue
        try:
            found.append(f.result())
        except Exception:  # noqa: BLE001 - a failed worker only loses its candidate
            continue
    return found
