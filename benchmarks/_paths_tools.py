"""Tools of the path-search benchmark: each one's planning call, timed alone, then checked.

Every tool gets the same problem (the same labels, as opt_einsum's path-optimizer
protocol takes them: one collection of labels per input, the output, the sizes), and its
path is priced by :func:`_paths_problems.path_cost`. The checks: einopt's own price of
the path (``einopt.plan(eq, *shapes, optimize=path).flops``), cotengra's claimed cost,
a contraction of small paths on random operands, and that einopt's plans print.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import multiprocessing
import os
import random
import statistics
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import einopt

try:
    import opt_einsum
except ImportError:
    opt_einsum = None

try:
    import cotengra
except ImportError:
    cotengra = None

from _paths_problems import Problem, log2_int, log10_int, path_cost, without_lone_indices

DP_MAX_TENSORS = 40  # opt_einsum's dp is not even tried on larger networks
AUTO_HQ_MAX_TENSORS = 64  # nor its auto-hq (128 randomized greedy runs above 16 tensors)
#: cotengra stops after max_repeats trials or max_time seconds, whichever comes first
#: (default 128 trials); this many make max_time the limit everywhere
CTG_MAX_REPEATS = 10**6
RESULT_CHECK_FLOPS = 10**7  # paths up to this cost are contracted on random operands
RESULT_CHECK_MAX_TENSORS = 1000  # ... on networks up to this many tensors
TIE_RTOL = 1e-9  # two costs within this relative distance are equal

Found = tuple[list[tuple[int, ...]], Any, dict[str, Any]]  # path, claimed cost, extras


class Timeout(Exception):
    """A search given up after its wall-clock limit."""


@dataclass
class Run:
    """One planning call of one tool on one problem (one seed)."""

    status: str  # "ok", "error", "timeout", "skipped", "unavailable"
    seed: int = 0
    seconds: float | None = None  # the planning call alone (median of repeats if any)
    times: list[float] = field(default_factory=list)  # every timed call
    path: list[tuple[int, ...]] | None = None
    flops: int | None = None  # path_cost's price
    max_size: int | None = None
    message: str = ""
    claimed: Any = None  # the tool's own cost for its path (cotengra)
    einopt_flops: int | None = None  # einopt.plan(eq, *shapes, optimize=path).flops
    agreement: str = ""  # "agree", "lone indices", "DISAGREE", "" (not compared)
    checked: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # failed checks
    print_failures: list[str] = field(default_factory=list)  # str/repr/speedup/explain
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. cotengra's methods

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def log10_flops(self) -> float | None:
        return log10_int(self.flops) if self.ok else None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status, "seed": self.seed, "seconds": self.seconds,
            "times": self.times, "message": self.message,
            "flops": None if self.flops is None else str(self.flops),
            "log10_flops": self.log10_flops,
            "max_size": None if self.max_size is None else str(self.max_size),
            "log2_max_size": log2_int(self.max_size) if self.ok else None,
            "einopt_flops": None if self.einopt_flops is None else str(self.einopt_flops),
            "agreement": self.agreement,
            "claimed": None if self.claimed is None else str(self.claimed),
            "checked": self.checked, "failures": self.failures,
            "print_failures": self.print_failures, "extra": self.extra,
            "path": None if self.path is None else [list(p) for p in self.path],
        }


Prepared = tuple[Callable[[], Any], Callable[[Any], Found]]


@dataclass(frozen=True)
class Tool:
    """A column: ``prepare(problem, seed)`` returns the planning call (timed) and what
    turns its result into a path (not timed)."""

    key: str
    mode: str  # "seeded": a run per seed; "repeat": deterministic, timed K times; "once"
    prepare: Callable[[Problem, int], Prepared]
    is_einopt: bool = False
    skip: Callable[[Problem], str] = field(default=lambda problem: "")


def short_message(exc: BaseException, limit: int = 240) -> str:
    """An exception as one line, for a cell or the issue list."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def protocol_args(problem: Problem, kind: type) -> tuple[list[Any], Any, dict[str, int]]:
    """The problem as opt_einsum's protocol passes it; ``kind`` is tuple or frozenset."""
    return [kind(t) for t in problem.inputs], kind(problem.output), dict(problem.sizes)


def _linear(path: Any) -> list[tuple[int, ...]]:
    """A path as a list of int tuples, whatever containers the tool returned."""
    return [tuple(int(i) for i in step) for step in path]


# --------------------------------------------------------------------------- tools


def einopt_tool(key: str, strategy: str, max_time: float | None, mode: str,
                parallel: int = 1) -> Tool:
    """einopt's search through ``einopt.PathOptimizer`` (opt_einsum's protocol)."""
    def prepare(problem: Problem, seed: int) -> Prepared:
        inputs, output, sizes = protocol_args(problem, tuple)
        opt = einopt.PathOptimizer(strategy, max_time=max_time, seed=seed, parallel=parallel)
        einopt.clear_caches()
        return (lambda: opt(inputs, output, sizes)), (lambda path: (_linear(path), None, {}))
    return Tool(key, mode, prepare, is_einopt=True)


def oe_tool(key: str, name: str, max_tensors: int | None = None) -> Tool:
    """An opt_einsum path function (``opt_einsum.paths.<name>``) on frozensets, as
    opt_einsum itself calls it; the global ``random`` is seeded first (random-greedy)."""
    fn = getattr(opt_einsum.paths, name)

    def prepare(problem: Problem, seed: int) -> Prepared:
        inputs, output, sizes = protocol_args(problem, frozenset)
        random.seed(seed)
        return (lambda: fn(inputs, output, sizes)), (lambda path: (_linear(path), None, {}))

    def skip(problem: Problem) -> str:
        return f"> {max_tensors} tensors" if max_tensors and problem.n_tensors > max_tensors \
            else ""
    return Tool(key, "repeat" if name == "greedy" else "once", prepare, skip=skip)


def _dp_child(inputs: list[Any], output: Any, sizes: dict[str, int], conn: Any) -> None:
    try:
        start = time.perf_counter()
        path = opt_einsum.paths.dynamic_programming(inputs, output, sizes)
        conn.send(("ok", _linear(path), time.perf_counter() - start))
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        conn.send(("error", short_message(exc), None))
    finally:
        conn.close()


def oe_dp_tool(timeout: float) -> Tool:
    """opt_einsum's ``dp`` in a child process, given up after ``timeout`` seconds; its
    time is measured in the child."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")

    def prepare(problem: Problem, seed: int) -> Prepared:
        def call() -> Any:
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_dp_child, args=(*protocol_args(problem, frozenset),
                                                       child), daemon=True)
            proc.start()
            child.close()
            try:
                if not parent.poll(timeout):
                    raise Timeout(f"> {timeout:g} s")
                status, payload, seconds = parent.recv()
            except EOFError:
                raise RuntimeError(f"child exited with code {proc.exitcode}") from None
            finally:
                if proc.is_alive():
                    proc.terminate()
                proc.join(5)
                parent.close()
            if status != "ok":
                raise RuntimeError(payload)
            return payload, seconds
        return call, lambda raw: (raw[0], None, {"seconds": raw[1]})

    def skip(problem: Problem) -> str:
        return f"> {DP_MAX_TENSORS} tensors" if problem.n_tensors > DP_MAX_TENSORS else ""
    return Tool("oe dp", "once", prepare, skip=skip)


def cotengra_seed_kwargs(seed: int) -> dict[str, Any]:
    """How a seed reaches cotengra's HyperOptimizer: ``seed=`` where it takes one, else its
    optuna sampler's seed (the kahypar and greedy trials draw from the global ``random``,
    seeded before each search)."""
    if "seed" in inspect.signature(cotengra.HyperOptimizer.__init__).parameters:
        return {"seed": seed}
    from cotengra.hyperoptimizers.hyper import get_default_optlib
    if get_default_optlib() == "optuna":
        return {"sampler_opts": {"seed": seed}}
    return {}


def cotengra_tool(max_time: float, parallel: int = 1) -> Tool:
    """cotengra's HyperOptimizer minimizing flops, with its whole ``max_time``: serial,
    or with ``parallel`` worker processes."""
    def prepare(problem: Problem, seed: int) -> Prepared:
        inputs, output, sizes = protocol_args(problem, tuple)
        random.seed(seed)
        opt = cotengra.HyperOptimizer(max_time=max_time, max_repeats=CTG_MAX_REPEATS,
                                      parallel=parallel if parallel > 1 else False,
                                      minimize="flops", progbar=False,
                                      **cotengra_seed_kwargs(seed))

        def finish(tree: Any) -> Found:
            methods = Counter(str(m) for m in opt.method_choices)
            scores = list(opt.scores)
            best = opt.method_choices[scores.index(min(scores))] if scores else ""
            return _linear(tree.get_path()), tree.contraction_cost(), {
                "methods": dict(methods), "best_method": str(best), "trials": len(scores)}
        def call() -> Any:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    return opt.search(inputs, output, sizes)
                except Exception as exc:
                    trial = next((str(w.message) for w in caught
                                  if "Trial error" in str(w.message)), "")
                    if not trial:
                        raise
                    raise RuntimeError(f"{short_message(exc, 40)} after cotengra warned "
                                       f"'{trial.split('. Set')[0]}'") from exc
        return call, finish
    return Tool(f"ctg {max_time:g}s", "seeded", prepare)


def unavailable_tool(key: str, why: str, mode: str = "once") -> Tool:
    def prepare(problem: Problem, seed: int) -> Prepared:
        raise LookupError(why)
    return Tool(key, mode, prepare, skip=lambda problem: why)


def build_tools(times: list[float], skip_dp: bool, dp_timeout: float,
                parallel: int = 1) -> list[Tool]:
    """The columns, in table order (``parallel``: processes of the anytime searches)."""
    tools = [einopt_tool("einopt auto", "auto", None, "repeat")]
    if opt_einsum is None:
        tools += [unavailable_tool(k, "opt_einsum not installed")
                  for k in ("oe greedy", "oe auto-hq", "oe dp")]
    else:
        tools.append(oe_tool("oe greedy", "greedy"))
        tools.append(oe_tool("oe auto-hq", "auto_hq", AUTO_HQ_MAX_TENSORS))
        tools.append(unavailable_tool("oe dp", "--skip-dp") if skip_dp else oe_dp_tool(dp_timeout))
    for t in times:
        tools.append(einopt_tool(f"einopt hyper {t:g}s", "hyper", t, "seeded", parallel))
        tools.append(cotengra_tool(t, parallel) if cotengra else
                     unavailable_tool(f"ctg {t:g}s", "cotengra not installed"))
    return tools


def cotengra_setup() -> list[str]:
    """Header lines: what cotengra will use (and which helpers are importable)."""
    found = {m: importlib.util.find_spec(m) is not None
             for m in ("kahypar", "cotengrust", "optuna")}
    lines = ["importable : " + ", ".join(f"{m} {'yes' if ok else 'no'}" for m, ok in found.items())]
    if cotengra is None:
        return [*lines, "cotengra   : not installed"]
    from cotengra.hyperoptimizers.hyper import get_default_hq_methods, get_default_optlib
    from cotengra.pathfinders.path_basic import get_optimize_greedy
    greedy_fn = get_optimize_greedy()
    greedy = getattr(getattr(greedy_fn, "f", greedy_fn), "__module__", "?") or "?"
    seeding = cotengra_seed_kwargs(0)
    how = ("seed=s" if "seed" in seeding else "sampler_opts={'seed': s}" if seeding else
           "no seed option")
    lines.append(f"cotengra   : {cotengra.__version__}, methods "
                 f"{', '.join(get_default_hq_methods())}, optlib {get_default_optlib()}, "
                 f"greedy from {'cotengrust' if 'cotengrust' in greedy else greedy}; "
                 f"seeded by {how} and random.seed(s)")
    return lines


# --------------------------------------------------------------------------- running


def run_once(problem: Problem, tool: Tool, seed: int) -> Run:
    """One timed planning call, priced by path_cost; exceptions become the run's status."""
    try:
        call, finish = tool.prepare(problem, seed)
        start = time.perf_counter()
        raw = call()
        seconds = time.perf_counter() - start
        path, claimed, extra = finish(raw)
    except Timeout as exc:
        return Run("timeout", seed, message=str(exc))
    except Exception as exc:  # noqa: BLE001 - one bad cell must not stop the run
        if os.environ.get("EINOPT_BENCH_TRACEBACKS"):
            traceback.print_exc()
        return Run("error", seed, message=short_message(exc))
    seconds = extra.pop("seconds", seconds)
    try:
        flops, size = path_cost(problem.inputs, problem.output, problem.sizes, path)
    except Exception as exc:  # noqa: BLE001 - a path that does not contract the network
        return Run("error", seed, seconds, [seconds], path,
                   message="invalid path: " + short_message(exc))
    return Run("ok", seed, seconds, [seconds], path, flops, size, claimed=claimed, extra=extra)


def run_tool(problem: Problem, tool: Tool, seeds: int) -> list[Run]:
    """A tool's runs: one per seed ("seeded"), one path timed ``seeds`` times ("repeat"),
    or a single call ("once")."""
    reason = tool.skip(problem)
    if reason:
        return [Run("unavailable" if "install" in reason else "skipped", message=reason)]
    if tool.mode == "seeded":
        return [run_once(problem, tool, s) for s in range(seeds)]
    first = run_once(problem, tool, 0)
    if tool.mode == "repeat" and first.ok:
        for _ in range(seeds - 1):
            again = run_once(problem, tool, 0)
            if not again.ok:
                first.failures.append(f"a repeated call failed: {again.message}")
                break
            first.times.append(again.seconds or 0.0)
            if again.path != first.path:
                first.extra["path_varies"] = True
        first.seconds = statistics.median(first.times)
    return [first]


# --------------------------------------------------------------------------- checks


def random_operands(problem: Problem, seed: int = 0) -> list[Any]:
    """Positive operands scaled so that every sum stays near 1: each tensor is divided by
    ``d ** (1/k)`` for each of its summed indices of size ``d`` held by ``k`` tensors."""
    import numpy as np

    count: dict[str, int] = {}
    for term in problem.inputs:
        for c in set(term):
            count[c] = count.get(c, 0) + 1
    out = set(problem.output)
    rng = np.random.default_rng(seed)
    ops = []
    for term, shape in zip(problem.inputs, problem.shapes, strict=True):
        scale = math.prod(problem.sizes[c] ** (-1 / count[c]) for c in set(term) if c not in out)
        ops.append(rng.uniform(0.5, 1.5, shape) * scale)
    return ops


def same_cost(a: int | float, b: int | float) -> bool:
    """Equal within TIE_RTOL; exact on Python ints of any size, no float conversion."""
    if isinstance(a, int) and isinstance(b, int):
        return abs(a - b) * round(1 / TIE_RTOL) <= max(abs(a), abs(b))
    if math.isinf(a) or math.isinf(b):
        return a == b
    la, lb = log10_int(a), log10_int(b)
    return abs(la - lb) <= math.log10(1 + TIE_RTOL) + 1e-12 * abs(la)


def print_check(plan: Any) -> list[str]:
    """``str``, ``repr``, ``.speedup`` and ``.explain()`` of an einopt plan; the failures."""
    failures = []
    for what, fn in (("str", str), ("repr", repr), ("speedup", lambda p: p.speedup),
                     ("explain", lambda p: p.explain())):
        try:
            fn(plan)
        except Exception as exc:  # noqa: BLE001 - reported, exactly what this looks for
            failures.append(f"{what}: {short_message(exc)}")
    return failures


@dataclass
class CheckOptions:
    cross: bool = True  # einopt.plan(..., optimize=path).flops against path_cost
    prints: bool = True  # str/repr/speedup/explain of einopt's plans
    results: bool = True  # contract small paths on random operands
    reference: dict[str, Any] = field(default_factory=dict)  # problem name -> einopt result


def check_run(problem: Problem, tool: Tool, run: Run, opts: CheckOptions) -> None:
    """Run every check that applies; record what was checked and what failed."""
    if not run.ok or run.path is None:
        return
    plan = None
    if opts.cross or (opts.prints and tool.is_einopt):
        try:
            plan = einopt.plan(problem.eq, *problem.shapes, optimize=run.path)
        except Exception as exc:  # noqa: BLE001 - einopt could not take the path
            run.failures.append(f"einopt.plan(optimize=path) raised {short_message(exc)}")
    if plan is not None and opts.cross:
        run.checked.append("einopt price")
        run.einopt_flops = plan.flops
        if plan.flops == run.flops:
            run.agreement = "agree"
        elif plan.flops == path_cost(without_lone_indices(problem.inputs, problem.output),
                                     problem.output, problem.sizes, run.path)[0]:
            run.agreement = "lone indices"  # einopt sums them inside their tensor first
        else:
            run.agreement = "DISAGREE"
            run.failures.append(f"einopt's plan.flops 10^{log10_int(plan.flops):.6f} != "
                                f"path_cost 10^{log10_int(run.flops):.6f}")
    if plan is not None and opts.prints and tool.is_einopt:
        run.checked.append("prints")
        run.print_failures = print_check(plan)
    if run.claimed is not None:
        run.checked.append("claimed cost")
        lone = None if same_cost(run.claimed, run.flops) else path_cost(
            without_lone_indices(problem.inputs, problem.output), problem.output,
            problem.sizes, run.path)[0]
        if lone is not None and same_cost(run.claimed, lone):
            run.extra["claimed_convention"] = "lone indices summed first"
        elif lone is not None:
            run.failures.append(f"claimed cost 10^{log10_int(run.claimed):.6f} != path_cost "
                                f"10^{log10_int(run.flops):.6f}")
    if opts.results and run.flops <= RESULT_CHECK_FLOPS and \
            problem.n_tensors <= RESULT_CHECK_MAX_TENSORS and opt_einsum is not None:
        try:
            check_result(problem, run, opts.reference)
        except Exception as exc:  # noqa: BLE001 - reported as a failed check
            run.failures.append(f"result check raised {short_message(exc)}")


def check_result(problem: Problem, run: Run, reference: dict[str, Any]) -> None:
    """Contract along the run's path (opt_einsum) and compare with einopt.einsum, which
    follows the first path checked on this problem (so it too costs at most
    RESULT_CHECK_FLOPS, whatever einopt's own plan would cost)."""
    import numpy as np

    ops = random_operands(problem)
    if problem.name not in reference:
        reference[problem.name] = np.asarray(einopt.einsum(problem.eq, *ops,
                                                           optimize=run.path))
    ours = reference[problem.name]
    if not np.all(np.isfinite(ours)):
        run.checked.append("result (not finite, skipped)")
        return
    run.checked.append("result")
    theirs = np.asarray(opt_einsum.contract(problem.eq, *ops, optimize=run.path))
    if theirs.shape != ours.shape or not np.allclose(theirs, ours, rtol=1e-6, atol=0):
        err = float(np.max(np.abs(theirs - ours) / np.abs(ours))) \
            if theirs.shape == ours.shape else math.inf
        run.failures.append(f"result along the path differs from einopt.einsum's "
                            f"(max relative error {err:.3g})")


def warm_up(skip_dp: bool) -> None:
    """One short untimed call of every kind of tool, so imports and first-use set-up are
    not timed."""
    tiny = Problem("warm-up", "ab,bc,cd,da->", [(3, 4), (4, 5), (5, 6), (6, 3)],
                   "ab,bc,cd,da->", "warm-up")
    for tool in build_tools([0.2], skip_dp, 5.0):
        if tool.key != "oe dp" and not tool.skip(tiny):
            run_once(tiny, tool, 0)
    einopt.clear_caches()
