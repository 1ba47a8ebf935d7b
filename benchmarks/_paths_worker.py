"""The process the tools run in: one long-lived worker, so that a tool which takes its
whole process down (memory exhausted, an abort in compiled code) or hangs costs its own
cell, not the run.

All tools of all problems still run, and are timed, one after the other in that one
process. When it dies or a tool passes its time limit, the tool's cell records why, a
fresh worker is started (imports and warm-up again, not timed) and the run goes on with
the next tool. The worker's address space is capped (``RLIMIT_AS``), so running out of
memory is a ``MemoryError`` or an abort in the worker rather than the machine's
out-of-memory killer picking a process.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from _paths_problems import Problem
from _paths_tools import CheckOptions, Run, build_tools, check_run, run_tool, warm_up

import einopt

START_TIMEOUT = 300.0  # seconds a fresh worker may take to import and warm up

Report = Callable[[str, list[Run], float], None]  # tool key, its runs, seconds with checks


@dataclass(frozen=True)
class Settings:
    """What a worker needs to build the tools and check their paths."""

    times: tuple[float, ...]
    seeds: int
    skip_dp: bool
    dp_timeout: float
    cross: bool
    prints: bool
    memory_limit: int | None  # bytes of address space, None for no limit
    parallel: int = 1  # processes of each anytime search (einopt hyper and cotengra)


def physical_memory() -> int | None:
    """Bytes of RAM, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def run_checked(problem: Problem, key: str, tools: dict[str, Any], settings: Settings,
                opts: CheckOptions) -> list[Run]:
    """One tool's runs on one problem, each checked."""
    tool = tools[key]
    runs = run_tool(problem, tool, settings.seeds)
    for run in runs:
        check_run(problem, tool, run, opts)
    return runs


def worker_main(settings: Settings, conn: Any) -> None:
    """Serve problems until told to stop: for each, run the tools asked for, in order."""
    if settings.memory_limit:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = settings.memory_limit if hard == resource.RLIM_INFINITY else \
            min(settings.memory_limit, hard)
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        except (ValueError, OSError):  # a platform without the limit: run without it
            pass
    tools = {t.key: t for t in build_tools(list(settings.times), settings.skip_dp,
                                           settings.dp_timeout, settings.parallel)}
    warm_up(settings.skip_dp)
    conn.send(("ready",))
    while True:
        message = conn.recv()
        if message is None:
            break
        problem, keys = message
        opts = CheckOptions(cross=settings.cross, prints=settings.prints)
        for key in keys:
            conn.send(("start", key))
            start = time.perf_counter()
            runs = run_checked(problem, key, tools, settings, opts)
            conn.send(("done", key, runs, time.perf_counter() - start))
        einopt.clear_caches()
        conn.send(("finished",))
    conn.close()


class Worker:
    """The worker process, started on first use and again after it dies."""

    def __init__(self, settings: Settings, tool_timeout: float) -> None:
        self.settings = settings
        self.tool_timeout = tool_timeout
        self.ctx = multiprocessing.get_context("spawn")  # no threads or locks inherited
        # opt_einsum and cotengra iterate over sets of labels, whose order follows string
        # hashing: a fixed hash seed makes their ties, so their paths, repeatable
        os.environ.setdefault("PYTHONHASHSEED", "0")
        self.proc: Any = None
        self.conn: Any = None
        self.restarts = 0

    def _start(self) -> str:
        """Start a worker; "" when it is ready, else why it is not."""
        parent, child = self.ctx.Pipe()
        # not a daemon: the worker starts opt_einsum's dp in a child process of its own
        self.proc = self.ctx.Process(target=worker_main, args=(self.settings, child))
        self.proc.start()
        child.close()
        self.conn = parent
        try:
            if self.conn.poll(START_TIMEOUT) and self.conn.recv() == ("ready",):
                return ""
        except (EOFError, OSError):
            pass
        self.stop()
        return f"the worker process did not start (exit code {self.proc.exitcode})"

    def stop(self, force: bool = False) -> None:
        """End the worker: politely when it is idle, by force when ``force`` or when it
        does not stop."""
        if self.proc is None:
            return
        if self.proc.is_alive() and not force:
            try:
                self.conn.send(None)
            except (OSError, ValueError):
                pass
            self.proc.join(2)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()
        self.proc = self.conn = None

    def _died(self) -> str:
        self.proc.join(5)
        code = self.proc.exitcode
        why = {-9: " (SIGKILL: out of memory?)", -6: " (SIGABRT: an abort, e.g. a failed "
               "allocation in compiled code)", -11: " (SIGSEGV)"}.get(code or 0, "")
        return f"the worker process died during this tool, exit code {code}{why}"

    def run(self, problem: Problem, keys: Sequence[str], report: Report) -> dict[str, list[Run]]:
        """Every tool of ``keys`` on ``problem``; a tool that kills or stalls the worker gets
        an error or timeout run, and a fresh worker goes on with the next."""
        results: dict[str, list[Run]] = {}
        remaining = list(keys)
        while remaining:
            if self.proc is None:
                failed = self._start()
                if failed:
                    for key in remaining:
                        results[key] = [Run("error", message=failed)]
                    return results
            self.conn.send((problem, remaining))
            current, started = remaining[0], time.monotonic()
            lost = ""
            while True:
                try:
                    if not self.conn.poll(max(0.0, started + self.tool_timeout
                                                  - time.monotonic())):
                        lost = "timeout"
                        break
                    message = self.conn.recv()
                except (EOFError, OSError):
                    lost = "died"
                    break
                if message[0] == "start":
                    current, started = message[1], time.monotonic()
                elif message[0] == "done":
                    results[message[1]] = message[2]
                    remaining.remove(message[1])
                    report(message[1], message[2], message[3])
                elif message[0] == "finished":
                    break
            if not lost:
                continue
            run = Run("timeout", message=f"> {self.tool_timeout:g} s (--tool-timeout), "
                      "the worker was stopped") if lost == "timeout" else \
                Run("error", message=self._died())
            self.stop(force=True)
            self.restarts += 1
            results[current] = [run]
            remaining.remove(current)
            report(current, [run], time.monotonic() - started)
        return results


class InProcess:
    """The same interface, running the tools in this process (``--in-process``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tools = {t.key: t for t in build_tools(list(settings.times), settings.skip_dp,
                                                    settings.dp_timeout, settings.parallel)}
        self.restarts = 0
        warm_up(settings.skip_dp)

    def run(self, problem: Problem, keys: Sequence[str], report: Report) -> dict[str, list[Run]]:
        results: dict[str, list[Run]] = {}
        opts = CheckOptions(cross=self.settings.cross, prints=self.settings.prints)
        for key in keys:
            start = time.perf_counter()
            results[key] = run_checked(problem, key, self.tools, self.settings, opts)
            report(key, results[key], time.perf_counter() - start)
        einopt.clear_caches()
        return results

    def stop(self) -> None:
        pass
