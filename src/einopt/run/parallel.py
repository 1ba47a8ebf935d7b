"""Sliced plans evaluated in parallel: on local threads or processes, or on a cluster.

A sliced plan is a sum over independent slices, each within the memory limit: that is
how a contraction too large for one machine's memory runs across machines. Each task
receives the whole operands (a dask client broadcasts them to its workers once), cuts
its slices and runs one slice's program on each; results are added up in a fixed
order, so repeated runs give the same numbers. An executor that fails (a worker lost
for good, a closed client or pool) raises ``ExecutorError``, never a partial sum.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import (
    BrokenExecutor,
    CancelledError,
    Executor,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
)
from concurrent.futures import TimeoutError as FuturesTimeoutError
from typing import Any

import numpy as np

from ..backends import Backend, get_backend
from ..caches import BoundedDict, memoize
from ..errors import EinsumError, ExecutorError
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
#: them down. Tasks already submitted still run (another thread's call may be waiting
#: for them), and a call that finds its pool shut down moves to a fresh one.
POOLS: BoundedDict[str, Executor] = BoundedDict(
    "executor pools", 2, on_evict=lambda pool: pool.shutdown(wait=False))


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
    return slice_sum(p, get_backend(backend))([_aligned(x) for x in operands], chunk)


def _aligned(x: Any) -> Any:
    """``x``, copied if it is a numpy array whose data is not aligned for its dtype.

    dask rebuilds the arrays it ships inside its message buffers, at any byte offset;
    numpy computes on unaligned data with other loops than on aligned data (no BLAS),
    whose sums round differently, so one chunk's numbers would change with the worker
    and the call.
    """
    if isinstance(x, np.ndarray) and not x.flags.aligned:
        return np.require(x, requirements="A")
    return x


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
    kind = executor if executor in ("threads", "processes") else None
    if kind is not None:
        executor = _pool(kind)
    elif isinstance(executor, str) or not hasattr(executor, "submit"):
        raise EinsumError(f"executor must be one of {', '.join(EXECUTORS)} or have a submit "
                          f"method (a concurrent.futures.Executor, a dask Client); got "
                          f"{executor!r}")
    workers = _worker_count(executor)
    # A few chunks per worker balance the load without a task per slice.
    per = max(1, len(slices) // (4 * workers))
    chunks = [slices[k:k + per] for k in range(0, len(slices), per)]
    if hasattr(executor, "scatter"):  # a dask client
        return _run_on_dask(executor, plan_to_json(plan), be.name, operands, chunks,
                            len(slices))
    local = isinstance(executor, ThreadPoolExecutor)
    task_plan: Plan | str = plan if local else plan_to_json(plan)
    ops: Any = list(operands)
    futures: list[Any] = []
    try:
        for chunk in chunks:
            while True:
                try:
                    futures.append(executor.submit(_run_chunk, task_plan, be.name, ops, chunk))
                    break
                except RuntimeError:
                    # A shared pool that clear_caches() shut down meanwhile: on to a fresh
                    # one (the chunks already submitted still run on the old one).
                    if kind is None or POOLS.get(kind) is executor:
                        raise
                    executor = _pool(kind)
        return _sum_in_order(futures)
    except BaseException as exc:
        for f in futures:  # nothing left running for a call that has failed
            f.cancel()
        if _executor_failed(exc):
            raise _executor_error(executor, exc, len(chunks), len(slices)) from exc
        raise


#: Times a dask run scatters its operands afresh and resubmits its unsummed tasks, when
#: dask cancelled them because every worker holding an operand was lost.
DASK_RESCATTERS = 2


def _run_on_dask(client: Any, task_plan: str, backend: str, operands: Sequence[Any],
                 chunks: Sequence[Sequence[tuple[int, ...]]], num_slices: int) -> Any:
    """Sum of ``chunks`` run as tasks of the dask ``client``, in order.

    Every key is this call's own (``hash=False``, ``pure=False``). With keys derived
    from the data, a repeated call scatters its operands under the keys the previous
    call's futures held; that call's release travels on the client's batched stream
    while the scatter is a direct request to the scheduler, so the release can land
    after the scatter and drop the operands the new tasks depend on: dask then cancels
    them for "lost dependencies". Broadcasting puts a copy of every operand on every
    worker (each task needs them all anyway), so a lost worker loses no operand and dask
    reruns its tasks elsewhere. Scattered data cannot be recomputed: if every copy of
    an operand is lost, dask cancels the tasks needing it, and the call scatters the
    operands again and resubmits the tasks not yet summed (``DASK_RESCATTERS`` times at
    most). The operand futures are held until the tasks using them are summed; on
    failure the call's tasks are cancelled and an ``ExecutorError`` raised.
    """
    ops: list[Any] = []
    futures: list[Any] = []
    result = None
    summed = 0  # chunks summed so far, in order: each exactly once
    rescatters = 0
    try:
        while True:
            try:
                ops = client.scatter(list(operands), hash=False, broadcast=True)
                futures = [client.submit(_run_chunk, task_plan, backend, ops, chunk,
                                         pure=False) for chunk in chunks[summed:]]
                for f in futures:
                    part = f.result()
                    result = part if result is None else result + part
                    summed += 1
                return result
            except (CancelledError, OSError):
                # Operands lost with their workers, or a worker gone mid-scatter; not a
                # closed client, nor a task that keeps killing its workers (KilledWorker).
                if rescatters == DASK_RESCATTERS or getattr(client, "status", None) != "running":
                    raise
                rescatters += 1
                _cancel_quietly(client, futures + list(ops))
    except BaseException as exc:
        _cancel_quietly(client, futures + list(ops))
        if _executor_failed(exc):
            raise _executor_error(client, exc, len(chunks), num_slices,
                                  rescatters) from exc
        raise


def _sum_in_order(futures: Sequence[Any]) -> Any:
    """The sum of the futures' results, in submission order: reproducible sums."""
    result = None
    for f in futures:
        part = f.result()
        result = part if result is None else result + part
    return result


def _cancel_quietly(client: Any, futures: Sequence[Any]) -> None:
    """Cancel a failed call's dask futures; a closed client has nothing left to cancel."""
    if not futures or getattr(client, "status", None) in ("closing", "closed"):
        return
    try:
        client.cancel(futures)
    except Exception:  # the scheduler is gone too: its tasks went with it
        pass


#: Timeouts of the executor's waits (one class from Python 3.11 on).
_TIMEOUTS = (TimeoutError, asyncio.TimeoutError, FuturesTimeoutError)


def _executor_failed(exc: BaseException) -> bool:
    """Whether ``exc`` says the executor failed (a worker lost for good, the client or
    pool closed, the cluster unreachable) rather than the slices' own arithmetic, whose
    errors are raised unchanged."""
    if isinstance(exc, (CancelledError, asyncio.CancelledError, BrokenExecutor,
                        *_TIMEOUTS, ConnectionError)):
        return True
    # KilledWorker, ClosedClientError, CommClosedError, FutureCancelledError, ...
    return type(exc).__module__.partition(".")[0] == "distributed"


def _executor_error(executor: Any, exc: BaseException, num_chunks: int,
                    num_slices: int, rescatters: int = 0) -> ExecutorError:
    """An ``ExecutorError`` naming ``executor``, what went wrong and the original error."""
    name = type(exc).__name__
    if name == "KilledWorker":
        why = ("the workers running a task died more often than the scheduler allows "
               "(distributed.scheduler.allowed-failures)")
    elif name == "ClosedClientError" or getattr(executor, "status", None) in (
            "closing", "closed"):
        why = "the client was closed before the run finished"
    elif isinstance(exc, BrokenExecutor):
        why = "a worker process of the pool died"
    elif isinstance(exc, (CancelledError, asyncio.CancelledError)):
        why = ("a task was cancelled: the operands it needed were lost with every worker "
               "holding them, or the client or cluster shut down")
    elif isinstance(exc, _TIMEOUTS):
        why = "the scheduler or a worker did not answer in time"
    else:
        why = "the connection to the scheduler or a worker was lost"
    again = f", after scattering the operands {rescatters + 1} times" if rescatters else ""
    return ExecutorError(
        f"executor {executor!r} failed while running {num_chunks} tasks of {num_slices} "
        f"slices{again}: {why} ({name}: {exc}); no partial sum is returned")


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
