"""Sliced plans evaluated in parallel: on local threads or processes, or on a cluster.

A sliced plan is a sum over independent slices, each within the memory limit: that is
how a contraction too large for one machine's memory runs across machines. Each task
receives the whole operands (a dask client scatters them to its workers once), cuts
its slices and runs one slice's program on each; results are added up in a fixed
order, so repeated runs give the same numbers.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from ..backends import Backend, get_backend
from ..caches import BoundedDict, memoize
from ..errors import EinsumError
from ..plan import Plan
from ..plan.persist import plan_from_json, plan_to_json
from .execute import slice_sum, slice_values

__all__ = ["run_slices", "EXECUTORS"]

#: Executors named by a string; any object with ``submit`` (a
#: ``concurrent.futures.Executor``, a ``dask.distributed.Client``) is accepted too.
EXECUTORS = ("serial", "threads", "processes")


@memoize("worker plans", 16)
def _plan_from_json(text: str) -> Plan:
    """A plan a task received as JSON, rebuilt once per worker process."""
    return plan_from_json(text)


#: The local pools behind ``executor="threads"`` and ``"processes"``: made on first use
#: and kept (starting processes costs far more than a slice); ``clear_caches()`` shuts
#: them down.
POOLS: BoundedDict[str, Executor] = BoundedDict(
    "executor pools", 2, on_evict=lambda pool: pool.shutdown(wait=False, cancel_futures=True))


def _pool(kind: str) -> Executor:
    """The shared local pool of ``kind`` (``"threads"`` or ``"processes"``)."""
    workers = os.cpu_count() or 1
    if kind == "threads":
        return POOLS.setdefault(kind, lambda: ThreadPoolExecutor(workers))
    # Not fork: the caller may run threads (BLAS, jax, torch) a fork would copy mid-step.
    return POOLS.setdefault(kind, lambda: ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("forkserver")))


def _run_chunk(plan: Plan | str, backend: str, operands: Sequence[Any],
               chunk: Sequence[tuple[int, ...]]) -> Any:
    """Sum of the results of ``chunk``'s slices (a task; ``plan`` may be its JSON)."""
    p = _plan_from_json(plan) if isinstance(plan, str) else plan
    return slice_sum(p, get_backend(backend))(operands, chunk)


def run_slices(plan: Plan, be: Backend, operands: Sequence[Any], executor: Any) -> Any:
    """Evaluate sliced ``plan`` with its slices spread over ``executor``.

    Args:
        executor: ``"serial"``, ``"threads"`` (a local pool, one worker per core),
            ``"processes"``, or an object with ``submit``: a
            ``concurrent.futures.Executor`` or a ``dask.distributed.Client``.
    """
    slices = slice_values(plan)
    if executor == "serial" or len(slices) == 1:
        return _run_chunk(plan, be.name, operands, slices)
    if executor in ("threads", "processes"):
        executor = _pool(executor)
    elif isinstance(executor, str) or not hasattr(executor, "submit"):
        raise EinsumError(f"executor must be one of {', '.join(EXECUTORS)} or have a submit "
                          f"method (a concurrent.futures.Executor, a dask Client); got "
                          f"{executor!r}")
    workers = _worker_count(executor)
    # A few chunks per worker balance the load without a task per slice.
    per = max(1, len(slices) // (4 * workers))
    chunks = [slices[k:k + per] for k in range(0, len(slices), per)]
    local = isinstance(executor, ThreadPoolExecutor)
    task_plan: Plan | str = plan if local else plan_to_json(plan)
    ops: Any = list(operands)
    dask = hasattr(executor, "scatter")
    if dask:  # a dask client: ship the operands once, under keys of this call's own
        ops = executor.scatter(ops, hash=False)
    # A dask client would key equal calls alike and share (or lose) their results
    # between calls: each call's tasks are its own.
    kw = {"pure": False} if dask else {}
    futures = [executor.submit(_run_chunk, task_plan, be.name, ops, chunk, **kw)
               for chunk in chunks]
    result = None
    for f in futures:  # in order: reproducible sums
        part = f.result()
        result = part if result is None else result + part
    return result


def _worker_count(executor: Any) -> int:
    n = getattr(executor, "_max_workers", None)
    if n:
        return int(n)
    info = getattr(executor, "nthreads", None)  # dask Client: {worker: threads}
    if callable(info):
        try:
            return max(1, sum(info().values()))
        except Exception:  # pragma: no cover - a client without a scheduler
            return 1
    return os.cpu_count() or 1
