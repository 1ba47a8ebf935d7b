"""dask: plans build lazy task graphs; sliced plans spread their slices over a cluster,
and a cluster's faults give the right sum or an ``ExecutorError``, never a wrong number.

The distributed tests share one ``LocalCluster`` of two worker processes (one thread
each), started by the ``cluster`` fixture for the module and closed after its last
test; each test has a client of its own, made once both workers are up (a killed
worker's nanny starts a new process, with a new address).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

import einopt
from einopt.errors import EinsumError, ExecutorError
from einopt.run import parallel

from cases import make_operands

da = pytest.importorskip("dask.array")

EQ = "ab,bc,cd,de->ae"
SHAPES = [(3, 9), (9, 10), (10, 11), (11, 3)]
WORKERS = 2
DEADLINE = 60.0  # seconds a faulty run may take before it counts as a hang


def test_lazy_and_chunk_aware():
    a, b, c = make_operands([(40, 30), (30, 20), (20, 10)], np.float64, seed=0)
    da_ops = [da.from_array(x, chunks=10) for x in (a, b, c)]
    got = einopt.einsum("ij,jk,kl->il", *da_ops)
    assert isinstance(got, da.Array)  # nothing computed yet
    assert got.npartitions > 1  # the chunks survive the plan
    np.testing.assert_allclose(got.compute(), a @ b @ c)


@pytest.fixture(autouse=True, scope="module")
def _scheduler_restored():
    """A client that a test closes abruptly may leave itself as dask's default
    scheduler: later modules' dask arrays get the scheduler they had before."""
    import dask

    before = dask.config.get("scheduler", None)
    yield
    dask.config.set(scheduler=before)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two worker processes under nannies, one thread each, for the whole module.

    A nanny starts a new process when its worker is killed; the cluster would close a
    nanny for good if its worker were missing ``lost-worker-timeout`` (15 s) after an
    earlier loss, which a kill during a restart can hit: the module keeps its nannies.
    """
    dask = pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "1h"}):
        cluster = distributed.LocalCluster(n_workers=WORKERS, threads_per_worker=1,
                                           processes=True, dashboard_address=None)
        try:
            yield cluster
        finally:
            cluster.close()


@pytest.fixture
def client(cluster: Any) -> Iterator[Any]:
    """A client of the test's own (one test closes it), once every worker is up."""
    distributed = pytest.importorskip("distributed")
    with distributed.Client(cluster) as client:
        client.wait_for_workers(WORKERS, timeout=DEADLINE)
        yield client


@pytest.fixture(scope="module")
def limit() -> int:
    """The smallest memory limit whose plan has several tasks per worker (8 to 200
    slices): the tests need runs with tasks in flight, whatever slicing chooses."""
    for limit in range(8, 64):
        try:
            n = einopt.plan(EQ, *SHAPES, memory_limit=limit).num_slices
        except EinsumError:  # below what any plan can meet
            continue
        if 4 * WORKERS <= n <= 200:
            return limit
    raise AssertionError(f"no memory limit gives {EQ} with shapes {SHAPES} 8 to 200 slices")


def _operands(seed: int = 1) -> list[np.ndarray]:
    return make_operands(SHAPES, np.float64, seed=seed)


def _within_deadline(call: Callable[[], Any]) -> Any:
    """``call()`` on another thread; a run still going after ``DEADLINE`` is a hang."""
    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(call).result(timeout=DEADLINE)
    finally:
        pool.shutdown(wait=False)  # a hung call fails the test instead of blocking it


def test_repeated_calls_on_one_client(client, limit):
    """30 sliced contractions in a row on one client: none loses its operands ("lost
    dependencies"), each equals numpy's and the serial sum, and they agree exactly."""
    ops = _operands()
    p = einopt.plan(EQ, *SHAPES, memory_limit=limit)
    expected = np.einsum(EQ, *ops)
    serial = p(*ops, executor="serial")
    first = None
    for _ in range(30):
        got = einopt.einsum(EQ, *ops, memory_limit=limit, executor=client)
        np.testing.assert_allclose(got, expected, rtol=1e-12)
        np.testing.assert_allclose(got, serial, rtol=1e-12)
        first = got if first is None else first
        np.testing.assert_array_equal(got, first)  # a fixed order of summation


class _FaultMidRun:
    """Stands in for a client and injects a fault once the run has submitted ``after``
    tasks: its operands are on the workers and tasks are in flight, and no result has
    been gathered yet (the sum starts after the last submission). It records what the
    run scattered; the fault is injected once, whatever the run does next."""

    def __init__(self, client: Any, after: int, fault: Callable[[_FaultMidRun], Any]) -> None:
        self.client, self.after, self.fault = client, after, fault
        self.scattered: list[Any] = []
        self.submitted: list[Any] = []
        self.report: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def scatter(self, *args: Any, **kwargs: Any) -> Any:
        futures = self.client.scatter(*args, **kwargs)
        self.scattered.append(futures)
        return futures

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        future = self.client.submit(*args, **kwargs)
        self.submitted.append(future)
        if len(self.submitted) == self.after:
            self.report = self.fault(self)
        return future


def _kill(client: Any, addresses: list[str]) -> None:
    """Kill the processes of the workers at ``addresses`` and wait until the scheduler
    has let them go; their nannies start new ones.

    (Gathering a result from a worker the scheduler still lists retries the connection
    for ``distributed.comm.timeouts.connect``, 30 s: dask recovers, but slowly.)
    """
    pids = client.run(os.getpid, workers=addresses)
    for address in addresses:
        os.kill(pids[address], getattr(signal, "SIGKILL", signal.SIGTERM))
    deadline = time.monotonic() + DEADLINE
    while set(addresses) & set(client.nthreads()):
        assert time.monotonic() < deadline, f"the scheduler still lists {addresses}"
        time.sleep(0.01)


def _kill_worker_with_a_result(run: _FaultMidRun) -> dict[str, Any]:
    """Once the run's first task is done, kill the worker holding its result (and
    running the tasks after it, if any): dask must compute it again elsewhere."""
    distributed = pytest.importorskip("distributed")
    distributed.wait(run.submitted[:1], timeout=DEADLINE)
    holder = run.client.who_has(run.submitted[:1])[run.submitted[0].key][0]
    busy = run.client.processing().get(holder, ())
    _kill(run.client, [holder])
    return {"worker": holder, "processing": list(busy)}


def test_worker_killed_mid_run_gives_the_right_sum(client, limit):
    """A worker process killed with a finished task's result on it: its work runs
    again on the other worker, which holds every operand too, and the sum is right."""
    ops = _operands(seed=2)
    run = _FaultMidRun(client, 3, _kill_worker_with_a_result)
    got = _within_deadline(lambda: einopt.einsum(EQ, *ops, memory_limit=limit, executor=run))
    assert run.report is not None and len(run.submitted) > 3  # killed mid-run
    np.testing.assert_allclose(got, np.einsum(EQ, *ops), rtol=1e-12)


def _kill_every_worker(run: _FaultMidRun) -> list[str]:
    """Kill every worker, so every copy of the operands is lost."""
    workers = list(run.client.nthreads())
    _kill(run.client, workers)
    return workers


def test_every_worker_killed_gives_the_right_sum_or_executor_error(client, limit):
    """Every copy of the operands lost: the run scatters them again to the workers'
    replacements and sums the tasks not yet summed, or, if none is up in time, raises
    an ``ExecutorError``; never a wrong number, never a hang."""
    ops = _operands(seed=3)
    run = _FaultMidRun(client, 3, _kill_every_worker)
    try:
        got = _within_deadline(lambda: einopt.einsum(EQ, *ops, memory_limit=limit,
                                                     executor=run))
    except ExecutorError as error:
        assert error.__cause__ is not None
    else:
        np.testing.assert_allclose(got, np.einsum(EQ, *ops), rtol=1e-12)
    assert run.report is not None


def _lose_the_operands(run: _FaultMidRun) -> None:
    """Drop the run's operands from the cluster (as losing every worker holding them
    would): dask cancels the tasks that need them."""
    run.client.cancel(run.scattered[0], force=True)


def test_lost_operands_are_scattered_again(client, limit):
    """Operands gone from the cluster mid-run: the call scatters them again, reruns
    only the tasks not yet summed, and the sum is right (each task counted once)."""
    ops = _operands(seed=4)
    run = _FaultMidRun(client, 3, _lose_the_operands)
    got = _within_deadline(lambda: einopt.einsum(EQ, *ops, memory_limit=limit, executor=run))
    assert len(run.scattered) == 2  # once at the start, once after the loss
    np.testing.assert_allclose(got, np.einsum(EQ, *ops), rtol=1e-12)


def test_lost_operands_with_no_rescatter_left_raise(client, limit, monkeypatch):
    """Operands lost and no fresh scatter allowed: an ``ExecutorError`` that names the
    executor and the reason and chains dask's own error; the client still works."""
    monkeypatch.setattr(parallel, "DASK_RESCATTERS", 0)
    ops = _operands(seed=5)
    run = _FaultMidRun(client, 3, _lose_the_operands)
    with pytest.raises(ExecutorError, match="task was cancelled") as info:
        _within_deadline(lambda: einopt.einsum(EQ, *ops, memory_limit=limit, executor=run))
    assert isinstance(info.value, EinsumError) and info.value.__cause__ is not None
    assert repr(run) in str(info.value)
    np.testing.assert_allclose(einopt.einsum(EQ, *ops, memory_limit=limit, executor=client),
                               np.einsum(EQ, *ops), rtol=1e-12)


def _close_from_another_thread(run: _FaultMidRun) -> None:
    """Close the client from another thread, before the run's next submission."""
    closer = threading.Thread(target=run.client.close)
    closer.start()
    closer.join(DEADLINE)


def test_client_closed_between_submissions(client, limit):
    ops = _operands(seed=6)
    run = _FaultMidRun(client, 3, _close_from_another_thread)
    with pytest.raises(ExecutorError, match="client was closed") as info:
        _within_deadline(lambda: einopt.einsum(EQ, *ops, memory_limit=limit, executor=run))
    assert info.value.__cause__ is not None


def _wait_for(event_name: str) -> int:
    """A task that holds its worker's only thread until the event is set."""
    import distributed

    distributed.Event(event_name).wait(DEADLINE)
    return 0


def test_client_closed_while_the_run_waits(cluster, client, limit):
    """Both workers held by other tasks, so the run's tasks are all pending when
    another thread closes the client: the waiting call raises, it does not hang."""
    distributed = pytest.importorskip("distributed")
    gate = f"einopt-gate-{time.monotonic_ns()}"
    holds = [client.submit(_wait_for, gate, pure=False, workers=[w])
             for w in client.nthreads()]
    ops = _operands(seed=7)
    closer = threading.Timer(0.5, client.close)
    run = _FaultMidRun(client, 1, lambda _: closer.start())
    try:
        with pytest.raises(ExecutorError, match="client was closed"):
            _within_deadline(lambda: einopt.einsum(EQ, *ops, memory_limit=limit,
                                                   executor=run))
        assert len(run.submitted) > 1  # every task submitted, none could run
        assert not any(f.status == "finished" for f in run.submitted)
    finally:
        closer.join(DEADLINE)
        del holds
        with distributed.Client(cluster) as other:  # free the held workers
            distributed.Event(gate, client=other).set()
