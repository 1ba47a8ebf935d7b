"""einopt against numpy.einsum and opt_einsum, with and without planning, in one process.

Usage::

    python benchmarks/core.py              # full run (3 seeds, ~0.1 s per measurement)
    python benchmarks/core.py --quick      # shorter measurements, fewer repeats
    python benchmarks/core.py --filter chain --markdown
    python benchmarks/core.py --blas-threads 1   # single-threaded BLAS on a busy machine

einopt caches its plan, so a warm ``einopt.einsum`` call does no planning.  It is
compared with peers that plan on every call (``numpy.einsum(optimize=True)``,
``opt_einsum.contract``) and, like with like, with peers whose planning is done once
beforehand (``numpy.einsum`` with a path from ``numpy.einsum_path``,
``opt_einsum.contract_expression`` with its own path or with einopt's).  Every tool's
result is checked against a reference (``numpy.einsum(optimize=False)``, or an
extended-precision evaluation where that loop is too slow) for every operand seed
before anything is timed; a mismatch is flagged in the table and listed at the end, it
is never skipped silently.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:
    from ._timing import format_seconds, measure_many, time_once
except ImportError:  # run as a script: benchmarks/ is on sys.path
    from _timing import format_seconds, measure_many, time_once

import einopt

try:
    import opt_einsum
except ImportError:  # the table still runs, with the opt_einsum columns empty
    opt_einsum = None


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    name: str
    eq: str
    sizes: dict[str, int]
    # operand k is the very same array as operand same[k] (e.g. 'ni,ni,...' on B, B)
    same: dict[int, int] = field(default_factory=dict)
    # hand-written numpy equivalent, timed next to einopt
    hand: Callable[[Sequence[np.ndarray]], np.ndarray] | None = None
    hand_text: str = ""

    def input_terms(self) -> list[str]:
        return self.eq.split("->")[0].split(",")

    def shapes(self) -> list[tuple[int, ...]]:
        return [tuple(self.sizes[c] for c in term) for term in self.input_terms()]

    def operands(self, seed: int = 0) -> list[np.ndarray]:
        """Random float64 operands in [0, 1); seed 0 gives the operands of earlier runs."""
        key = zlib.crc32(self.name.encode())
        rng = np.random.default_rng(key if seed == 0 else (key, seed))
        ops: list[np.ndarray] = []
        for k, shape in enumerate(self.shapes()):
            ops.append(ops[self.same[k]] if k in self.same else rng.random(shape))
        return ops

    def naive_size(self) -> int:
        """Iterations of the unoptimized loop: the product of every index's size."""
        return math.prod(self.sizes[c] for c in set(self.eq) if c.isalpha())

    def shape_text(self) -> str:
        return ", ".join("x".join(map(str, s)) or "()" for s in self.shapes())


def uniform(eq: str, size: int) -> dict[str, int]:
    letters = {c for c in eq if c.isalpha()}
    return {c: size for c in letters}


def sizes(**kw: int) -> dict[str, int]:
    return dict(kw)


CASES: list[Case] = [
    Case("chain4-mixed", "ij,jk,kl,lm->im", sizes(i=10, j=200, k=30, l=400, m=20)),
    Case("chain6-mixed", "ab,bc,cd,de,ef,fg->ag",
         sizes(a=400, b=20, c=300, d=10, e=500, f=30, g=200)),
    Case("chain5-64", "ab,bc,cd,de,ef->af", uniform("abcdef", 64)),
    Case("grad-norm", "ni,ni,nj,nj->n", sizes(n=256, i=1024, j=1024),
         same={1: 0, 3: 2},
         hand=lambda ops: (ops[0] * ops[0]).sum(1) * (ops[2] * ops[2]).sum(1),
         hand_text="(B*B).sum(1)*(A*A).sum(1), operands (B, B, A, A)"),
    Case("4-index-transform", "pi,qj,ijkl,rk,sl->pqrs", uniform("pqrsijkl", 32)),
    Case("batched-matmul", "bij,bjk->bik", sizes(b=64, i=128, j=128, k=128)),
    Case("attention-scores", "bhqd,bhkd->bhqk", sizes(b=8, h=8, q=128, k=128, d=64)),
    Case("outer-2", "i,j->ij", sizes(i=1000, j=1000)),
    Case("outer-3", "i,j,k->ijk", uniform("ijk", 100)),
    Case("trace", "ii->", sizes(i=1000)),
    Case("trace-implicit", "ii", sizes(i=2000)),
    Case("double-trace", "ijji->", sizes(i=30, j=30)),
    Case("hyperedge-6", "bi,bij,bjk,bk,bkl,bl->b", uniform("bijkl", 64)),
    Case("matmul-500", "ij,jk->ik", uniform("ijk", 500)),
    Case("4-index-small", "ea,fb,abcd,gc,hd->efgh", uniform("abcdefgh", 10)),
    Case("three-tensor", "abc,bcd,cde->ae", uniform("abcde", 40)),
    Case("grid-2x3", "ab,acd,ce,bf,dfg,eg->", uniform("abcdefg", 64)),
    Case("mps-overlap", "ax,xby,ycz,zd,aq,qbr,rcs,sd->", sizes(
        a=4, b=4, c=4, d=4, x=64, y=64, z=64, q=64, r=64, s=64)),
    Case("tensordot-2", "ijk,jkl->il", sizes(i=100, j=50, k=50, l=100)),
    Case("dot", "i,i->", sizes(i=100_000)),
    Case("frobenius", "ij,ij->", uniform("ij", 500)),
]

OVERHEAD_CASES: list[Case] = [
    Case("overhead-matmul", "ij,jk->ik", uniform("ijk", 10)),
    Case("overhead-dot", "i,i->", sizes(i=10)),
    Case("overhead-transpose", "ij->ji", uniform("ij", 10)),
]


# --------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _blas_info() -> list[str]:
    try:
        import threadpoolctl
    except ImportError:
        threadpoolctl = None
    if threadpoolctl is not None:
        lines = []
        for lib in threadpoolctl.threadpool_info():
            lines.append(
                f"{lib.get('internal_api')} {lib.get('version')} "
                f"({lib.get('user_api')}, threads={lib.get('num_threads')}, "
                f"arch={lib.get('architecture')}, {Path(str(lib.get('filepath'))).name})")
        if lines:
            return lines
    try:
        config: Any = np.show_config(mode="dicts")
        deps: dict[str, Any] = config.get("Build Dependencies", {})
        lines = []
        for key in ("blas", "lapack"):
            dep = deps.get(key, {})
            if dep:
                text = f"{key}: {dep.get('name')} {dep.get('version')}"
                extra = str(dep.get("openblas configuration", "")).strip()
                lines.append(f"{text} [{extra}]" if extra else text)
        if lines:
            return [*lines, "(from numpy.show_config; install threadpoolctl for thread counts)"]
    except Exception:  # older numpy without mode="dicts"
        pass
    return ["unknown"]


def _git_revision() -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_header() -> list[str]:
    env_keys = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    env = ", ".join(f"{k}={os.environ[k]}" for k in env_keys if k in os.environ) or "(none set)"
    lines = [
        f"platform   : {platform.platform()}",
        f"python     : {platform.python_version()} ({platform.python_implementation()})",
        f"cpu        : {_cpu_model()} ({os.cpu_count()} logical cores)",
        f"numpy      : {np.__version__}",
    ]
    blas = _blas_info()
    lines.append(f"blas       : {blas[0]}")
    lines.extend(f"             {extra}" for extra in blas[1:])
    lines.append(f"opt_einsum : {opt_einsum.__version__ if opt_einsum else 'not installed'}")
    lines.append(f"einopt     : {getattr(einopt, '__version__', '?')} (git {_git_revision()})")
    lines.append(f"env        : {env}")
    if hasattr(os, "getloadavg"):
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        lines.append(f"load avg   : {load} (1/5/15 min, at start)")
    return lines


_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_limiter: Any = None  # keeps a threadpoolctl limit alive for the whole run


def limit_blas_threads(n: int, argv: Sequence[str] | None) -> str:
    """Cap the BLAS thread pool at ``n``; returns a line for the header.

    Uses threadpoolctl when it is installed.  Otherwise the thread-count environment
    variables are set and the script restarts itself, since BLAS reads them only when
    numpy is first imported.
    """
    global _limiter
    if n < 1:
        raise SystemExit("--blas-threads must be at least 1")
    try:
        import threadpoolctl
    except ImportError:
        threadpoolctl = None
    if threadpoolctl is not None:
        _limiter = threadpoolctl.threadpool_limits(limits=n, user_api="blas")
        return f"{n} thread(s) via threadpoolctl (--blas-threads)"
    if any(os.environ.get(var) != str(n) for var in _THREAD_VARS):
        for var in _THREAD_VARS:
            os.environ[var] = str(n)
        args = list(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()
        # restart the script that is running (core.py or one that imports this helper)
        os.execv(sys.executable, [sys.executable, os.path.abspath(sys.argv[0]), *args])
    return f"{n} thread(s) via {', '.join(_THREAD_VARS)} (--blas-threads)"


# --------------------------------------------------------------------------- checks

#: The reference is ``numpy.einsum(optimize=False)`` (numpy's unoptimized C loop) up to
#: this many loop iterations; above it, numpy.einsum in long double along a path.
NAIVE_LIMIT = 10**8
#: Relative tolerance of every check. The operands are positive, so no sum cancels and
#: a correct float64 result is within a few ulps times the length of a sum.
RTOL = 1e-9


@dataclass(frozen=True)
class Reference:
    value: np.ndarray  # float64, or long double when computed in extended precision
    how: str


def reference(eq: str, ops: Sequence[np.ndarray], naive_size: int) -> Reference:
    """The result every tool is checked against, independent of every tool's path."""
    if naive_size <= NAIVE_LIMIT:
        return Reference(np.asarray(np.einsum(eq, *ops, optimize=False)),
                         "numpy.einsum(optimize=False)")
    if opt_einsum is not None:
        path = [tuple(p) for p in opt_einsum.contract_path(eq, *ops, optimize="auto-hq")[0]]
        whose = "opt_einsum's auto-hq path"
    else:
        path = list(np.einsum_path(eq, *ops, optimize="greedy")[0][1:])
        whose = "numpy's greedy path"
    wide = [np.asarray(op, dtype=np.longdouble) for op in ops]
    value = np.asarray(np.einsum(eq, *wide, optimize=["einsum_path", *path]))
    bits = np.finfo(np.longdouble).nmant + 1
    return Reference(value, f"numpy.einsum in long double ({bits}-bit mantissa), {whose}")


def to_numpy(x: Any) -> np.ndarray:
    """A numpy copy or view of a numpy, torch or jax result."""
    if hasattr(x, "detach"):  # torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def check(result: Any, ref: Reference, dtype: Any = np.float64) -> str | None:
    """None when ``result`` matches the reference, else what is wrong with it."""
    got = to_numpy(result)
    want = ref.value
    if got.shape != want.shape:
        return f"shape {got.shape} != reference {want.shape}"
    if got.dtype != np.dtype(dtype):
        return f"dtype {got.dtype} != {np.dtype(dtype)}"
    if not got.size:
        return None
    diff = np.abs(got.astype(want.dtype) - want)
    scale = np.abs(want)
    tol = RTOL * scale + RTOL * 1e-3 * float(np.max(scale))
    if not np.all(diff <= tol):  # also catches NaN
        rel = float(np.max(diff / np.maximum(scale, np.finfo(np.float64).tiny)))
        return f"values differ from the reference (max relative error {rel:.3g})"
    return None


# --------------------------------------------------------------------------- tools


@dataclass(frozen=True)
class Tool:
    """One column: ``make(case, ops)`` builds the call that is timed (building is not
    timed: a precompiled peer plans there); it returns None where the tool does not
    apply. ``role``: "einopt", "precompiled" (no planning in the timed call),
    "planning" (plans on every call) or "hand"."""

    key: str
    make: Callable[[Case, list[Any]], Callable[[], Any] | None]
    role: str
    context: Callable[[], Any] | None = None  # entered around checks and measurements


def einopt_path(eq: str, ops: Sequence[Any]) -> list[tuple[int, ...]]:
    """einopt's contraction path in opt_einsum's linear format."""
    path = [tuple(int(i) for i in step) for step in einopt.plan(eq, *ops).path]
    return path or [tuple(range(len(ops)))]  # one operand: one step


_FLOPS = re.compile(r"Optimized FLOP count:\s*([0-9.eE+-]+)")
#: numpy's exhaustive "optimal" search is tried up to this many operands
NUMPY_OPTIMAL_MAX = 8


def numpy_best_path(eq: str, ops: Sequence[np.ndarray]) -> tuple[list[Any], str]:
    """numpy's cheapest path by its own FLOP count: ``einsum_path`` with ``greedy`` (what
    ``optimize=True`` uses), ``greedy`` without numpy's default intermediate-size limit,
    and ``optimal`` (with the limit; up to 8 operands). Ties keep the earlier."""
    settings: list[tuple[str, Any]] = [("greedy", "greedy"), ("greedy, no size limit",
                                                             ("greedy", 2**62))]
    if len(ops) <= NUMPY_OPTIMAL_MAX:
        settings.append(("optimal", "optimal"))
    best: tuple[float, list[Any], str] | None = None
    for name, setting in settings:
        path, text = np.einsum_path(eq, *ops, optimize=setting)
        match = _FLOPS.search(text)
        flops = float(match.group(1)) if match else math.inf
        if best is None or flops < best[0]:
            best = (flops, path, name)
    assert best is not None
    return best[1], best[2]


def _numpy_with_path(case: Case, ops: list[Any]) -> Callable[[], Any]:
    path, _ = numpy_best_path(case.eq, ops)
    return lambda: np.einsum(case.eq, *ops, optimize=path)


def _expression(case: Case, ops: list[Any], optimize: Any) -> Callable[[], Any]:
    expr = opt_einsum.contract_expression(case.eq, *[op.shape for op in ops], optimize=optimize)
    return lambda: expr(*ops)


def core_tools() -> list[Tool]:
    """The columns of the main table, in order."""
    tools = [
        Tool("einopt", lambda c, ops: lambda: einopt.einsum(c.eq, *ops), "einopt"),
        Tool("numpy+path", _numpy_with_path, "precompiled"),
    ]
    if opt_einsum is not None:
        tools += [
            Tool("oe expr", lambda c, ops: _expression(c, ops, "auto-hq"), "precompiled"),
            Tool("oe expr(einopt)",
                 lambda c, ops: _expression(c, ops, einopt_path(c.eq, ops)), "precompiled"),
        ]
    tools.append(Tool("numpy(opt)",
                      lambda c, ops: lambda: np.einsum(c.eq, *ops, optimize=True), "planning"))
    if opt_einsum is not None:
        tools.append(Tool("oe contract",
                          lambda c, ops: lambda: opt_einsum.contract(c.eq, *ops), "planning"))
    tools.append(Tool("hand", lambda c, ops: (lambda: c.hand(ops)) if c.hand else None, "hand"))
    return tools


def overhead_tools() -> list[Tool]:
    """Tiny operands: numpy's cheapest entry point is einsum without optimize."""
    tools = [
        Tool("einopt", lambda c, ops: lambda: einopt.einsum(c.eq, *ops), "einopt"),
        Tool("numpy", lambda c, ops: lambda: np.einsum(c.eq, *ops), "precompiled"),
    ]
    if opt_einsum is not None:
        tools += [
            Tool("oe expr", lambda c, ops: _expression(c, ops, "auto-hq"), "precompiled"),
            Tool("oe contract", lambda c, ops: lambda: opt_einsum.contract(c.eq, *ops),
                 "planning"),
        ]
    return tools


# --------------------------------------------------------------------------- running


@dataclass
class Row:
    case: Case
    times: dict[str, float] = field(default_factory=dict)  # median of per-seed medians
    status: dict[str, str] = field(default_factory=dict)  # "ok", "WRONG" or "ERROR"
    roles: dict[str, str] = field(default_factory=dict)
    first_call: float | None = None
    reference: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status.get("einopt") == "ok" and "einopt" in self.times

    def cell(self, key: str) -> str:
        status = self.status.get(key)
        if status is None:
            return "-"
        if status != "ok":
            return status
        return format_seconds(self.times.get(key))

    def best(self, role: str) -> tuple[str, float] | None:
        """The fastest tool of ``role`` that passed every check, and its time."""
        found = [(t, k) for k, t in self.times.items()
                 if self.roles.get(k) == role and self.status.get(k) == "ok"]
        if not found:
            return None
        t, k = min(found)
        return k, t

    def ratio(self, role: str) -> float | None:
        best = self.best(role)
        if not self.ok or best is None:
            return None
        return self.times["einopt"] / best[1]


def progress(message: str) -> None:
    """Progress on stderr, only when it is a terminal (keeps piped output clean)."""
    if sys.stderr.isatty():
        print(f"  {message}", file=sys.stderr, flush=True)


def _context(tool: Tool) -> Any:
    return tool.context() if tool.context is not None else contextlib.nullcontext()


def _verify(tool: Tool, fn: Callable[[], Any], ops: Sequence[Any], ref: Reference,
            dtype: Any) -> list[str]:
    """Problems of one tool on one seed (empty when its result is right). einopt is
    checked on a cold and then a warm plan cache, and must leave its operands alone."""
    problems: list[str] = []
    before = [to_numpy(op).copy() for op in ops] if tool.role == "einopt" else []
    calls = ["first call", "cached call"] if tool.role == "einopt" else ["call"]
    if tool.role == "einopt":
        einopt.clear_caches()
    with _context(tool):
        for when in calls:
            problem = check(fn(), ref, dtype)
            if problem is not None:
                problems.append(f"{tool.key} ({when}): {problem}")
    for k, old in enumerate(before):
        if not np.array_equal(to_numpy(ops[k]), old):
            problems.append(f"{tool.key} modified operand {k} in place")
    return problems


def run_case(case: Case, tools: Sequence[Tool], seeds: int, target: float, repeats: int,
             cold_repeats: int, show_plan: bool = False,
             convert: Callable[[Case, list[np.ndarray]], list[Any]] | None = None,
             dtype: Any = np.float64) -> Row:
    """Check every tool on every seed, then time them (interleaved); medians over seeds.

    ``convert`` turns the numpy operands into another library's arrays (the reference
    is computed from the numpy ones).
    """
    row = Row(case, roles={t.key: t.role for t in tools})
    per_seed: dict[str, list[float]] = {}
    cold: list[float] = []
    for seed in range(seeds):
        np_ops = case.operands(seed)
        ref = reference(case.eq, np_ops, case.naive_size())
        row.reference = ref.how
        ops = convert(case, np_ops) if convert is not None else np_ops
        if show_plan and seed == 0:
            try:
                print(einopt.plan(case.eq, *ops))
                print()
            except Exception as exc:
                row.notes.append(f"einopt.plan raised {type(exc).__name__}: {exc}")
        fns: dict[str, Callable[[], Any]] = {}
        for tool in tools:
            if row.status.get(tool.key, "ok") != "ok":
                continue  # failed on an earlier seed: shown as such, not timed
            try:
                fn = tool.make(case, ops)
                if fn is None:
                    continue
                problems = _verify(tool, fn, ops, ref, dtype)
            except Exception as exc:  # a crash in one tool must not stop the table
                row.status[tool.key] = "ERROR"
                row.notes.append(f"{tool.key} raised {type(exc).__name__}: {exc} (seed {seed})")
                continue
            if problems:
                row.status[tool.key] = "WRONG"
                row.notes.extend(f"{p} (seed {seed})" for p in problems)
                continue
            row.status[tool.key] = "ok"
            fns[tool.key] = fn
        if "einopt" in fns:
            for _ in range(cold_repeats):  # plan + run with an empty plan cache
                einopt.clear_caches()
                cold.append(time_once(fns["einopt"]))
        contexts = {t.key: t.context for t in tools if t.context is not None and t.key in fns}
        for key, result in measure_many(fns, target, repeats, contexts=contexts).items():
            if isinstance(result, Exception):
                row.status[key] = "ERROR"
                row.notes.append(f"{key} raised {type(result).__name__} while timed: {result}")
            else:
                per_seed.setdefault(key, []).append(result.median)
    for key, values in per_seed.items():
        if row.status.get(key) == "ok":
            row.times[key] = statistics.median(values)
    row.first_call = statistics.median(cold) if cold else None
    return row


# --------------------------------------------------------------------------- output


def _ratio_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool,
                right: Sequence[bool]) -> None:
    if markdown:
        print("| " + " | ".join(headers) + " |")
        print("|" + "|".join("---:" if r else ":---" for r in right) + "|")
        for cells in rows:
            print("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w)
                         for c, w, r in zip(cells, widths, right, strict=True)).rstrip()

    print(fmt(headers))
    print("  ".join("-" * w for w in widths))
    for cells in rows:
        print(fmt(cells))


def geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def summarize_ratios(rows: Sequence[Row], role: str, label: str) -> None:
    """Geometric mean, max, min of einopt / best ``role`` peer, and the losses."""
    good = [(r, r.ratio(role)) for r in rows]
    good = [(r, x) for r, x in good if x is not None]
    print(f"{label}")
    if not good:
        print("  (no expression where einopt and such a peer both passed their checks)")
        return
    ratios = [x for _, x in good]
    worst = max(good, key=lambda g: g[1])
    best = min(good, key=lambda g: g[1])

    def who(r: Row) -> str:
        b = r.best(role)
        return f"{r.case.name}, best peer {b[0]}" if b else r.case.name

    def above(limit: float) -> str:
        over = sorted(((x, r) for r, x in good if x > limit), key=lambda g: -g[0])
        return ", ".join(f"{r.case.name} {x:.2f}" for x, r in over) or "none"

    print(f"  geometric mean : {geometric_mean(ratios):.3f}  (over {len(good)} expressions)")
    print(f"  max            : {worst[1]:.2f}  ({who(worst[0])})")
    print(f"  min            : {best[1]:.2f}  ({who(best[0])})")
    print(f"  above 1.00     : {above(1.0)}")
    print(f"  above 1.25     : {above(1.25)}")
    print(f"  einopt fastest : {sum(1 for x in ratios if x < 1.0)} of {len(good)}")


def print_main_table(rows: Sequence[Row], tools: Sequence[Tool], markdown: bool,
                     first_call: bool = True) -> None:
    """einopt, the precompiled peers, the headline ratio and the best peer, the peers
    that plan on every call and einopt's ratio to them, and einopt's first call."""
    keys = ["einopt", *(t.key for t in tools if t.role == "precompiled")]
    plan_keys = [t.key for t in tools if t.role == "planning"]
    headers = ["expr", *keys, "einopt/best", "best peer", *plan_keys]
    if plan_keys:
        headers.append("einopt/planning")
    if first_call:
        headers.append("einopt 1st call")
    body = []
    for row in rows:
        best = row.best("precompiled")
        einopt_bad = "" if row.ok else f" {row.status.get('einopt', 'ERROR')}"
        cells = [row.case.name, *(row.cell(k) for k in keys),
                 _ratio_text(row.ratio("precompiled")) + einopt_bad,
                 best[0] if best else "-", *(row.cell(k) for k in plan_keys)]
        if plan_keys:
            cells.append(_ratio_text(row.ratio("planning")) + einopt_bad)
        if first_call:
            cells.append(format_seconds(row.first_call))
        body.append(cells)
    print_table(headers, body, markdown, [False, *[True] * (len(headers) - 1)])


def _header_block(lines: Sequence[str], markdown: bool) -> None:
    if markdown:
        print("```")
    print("\n".join(lines))
    if markdown:
        print("```")


MAIN_LEGEND = """\
columns (times per call: median over operand seeds of the per-seed medians):
  einopt           einopt.einsum(eq, *ops), plan cache warm: no planning in the call
  precompiled peers, planning done once before timing:
  numpy+path       numpy.einsum(eq, *ops, optimize=path), path from numpy.einsum_path
                   (cheapest of greedy, greedy without size limit, optimal <= 8 operands)
  oe expr          opt_einsum.contract_expression(eq, *shapes, optimize="auto-hq")(*ops)
  oe expr(einopt)  the same expression built with einopt's path
  einopt/best      einopt / fastest precompiled peer (the headline ratio); below 1:
                   einopt is faster. 'best peer' names that peer
  peers that plan on every call:
  numpy(opt)       numpy.einsum(eq, *ops, optimize=True)
  oe contract      opt_einsum.contract(eq, *ops) (no path cache: plans every call)
  einopt/planning  einopt / fastest of numpy(opt), oe contract
  einopt 1st call  einopt.einsum right after einopt.clear_caches(): parse, plan, run
a failed check shows WRONG or ERROR in place of a time; see Problems at the end"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="~0.02 s per measurement, 3 repeats, 1 cold call (default: "
                             "0.1 s, 5, 3)")
    parser.add_argument("--seeds", type=int, default=3, metavar="N",
                        help="operand seeds per expression (default 3)")
    parser.add_argument("--filter", metavar="SUBSTR", default=None,
                        help="only cases whose name or equation contains SUBSTR")
    parser.add_argument("--markdown", action="store_true",
                        help="print the tables as Markdown (for BENCHMARKS.md)")
    parser.add_argument("--plans", action="store_true", help="print einopt's plan for each case")
    parser.add_argument("--blas-threads", type=int, metavar="N", default=None,
                        help="limit BLAS to N threads (default: leave the BLAS setup alone)")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    blas_note = limit_blas_threads(args.blas_threads, argv) if args.blas_threads else None

    target, repeats, cold_repeats = (0.02, 3, 1) if args.quick else (0.1, 5, 3)

    def selected(case: Case) -> bool:
        return args.filter is None or args.filter in case.name or args.filter in case.eq

    cases = [c for c in CASES if selected(c)]
    overhead_cases = [c for c in OVERHEAD_CASES if selected(c)]

    header = machine_header()
    if blas_note:
        header.append(f"blas limit : {blas_note}")
    header.append(f"timing     : {args.seeds} operand seed(s); per seed, every tool checked, "
                  f"then {repeats} interleaved measurements of ~{target} s each after a "
                  f"warm-up call (time.perf_counter, gc off); first call = {cold_repeats} "
                  "call(s) per seed after einopt.clear_caches()")
    _header_block(header, args.markdown)
    print()
    _header_block([MAIN_LEGEND], args.markdown)
    print()

    tools = core_tools()
    rows: list[Row] = []
    for case in cases:
        progress(f"running {case.name} ...")
        rows.append(run_case(case, tools, args.seeds, target, repeats, cold_repeats,
                             args.plans))

    if rows:
        print_main_table(rows, tools, args.markdown)
        print()
        print_table(["expr", "equation", "operand shapes", "numpy path search", "reference"],
                    [[r.case.name, r.case.eq, r.case.shape_text(),
                      numpy_best_path(r.case.eq, r.case.operands())[1], r.reference]
                     for r in rows], args.markdown, [False] * 5)

        print()
        if args.markdown:
            print("```")
        summarize_ratios(rows, "precompiled",
                         "headline: einopt (plan cached) / best precompiled peer (min of "
                         f"{', '.join(t.key for t in tools if t.role == 'precompiled')})")
        summarize_ratios(rows, "planning",
                         "with planning: einopt (plan cached) / best of "
                         f"{', '.join(t.key for t in tools if t.role == 'planning')} "
                         "(they plan on every call)")
        bad = [r.case.name for r in rows if not r.ok]
        if bad:
            print(f"einopt failed its check on (left out above): {', '.join(bad)}")
        if args.markdown:
            print("```")

        hand_rows = [r for r in rows if "hand" in r.status]
        if hand_rows:
            print("\nHand-written numpy equivalents\n")
            print_table(
                ["expr", "hand form", "einopt", "hand", "einopt/hand"],
                [[r.case.name, r.case.hand_text, r.cell("einopt"), r.cell("hand"),
                  _ratio_text(r.times["einopt"] / r.times["hand"]
                              if "einopt" in r.times and "hand" in r.times else None)]
                 for r in hand_rows],
                args.markdown, [False, False, True, True, True])

    overhead_rows: list[Row] = []
    if overhead_cases:
        print("\nPer-call overhead (tiny operands, warm plan cache; numpy.einsum without "
              "optimize, its cheapest entry point)\n")
        otools = overhead_tools()
        for case in overhead_cases:
            progress(f"running {case.name} ...")
            overhead_rows.append(run_case(case, otools, args.seeds, target, repeats, 0))
        okeys = [t.key for t in otools]
        body = []
        for row in overhead_rows:
            ratios = [_ratio_text(row.times["einopt"] / row.times[k]
                                  if row.ok and k in row.times else None)
                      for k in okeys[1:]]
            body.append([row.case.eq, row.case.shape_text(), *(row.cell(k) for k in okeys),
                         *ratios])
        print_table(["equation", "shapes", *okeys, *(f"einopt/{k}" for k in okeys[1:])], body,
                    args.markdown, [False, False, *[True] * (2 * len(okeys) - 1)])

    problems = [f"{r.case.name} [{r.case.eq}; shapes {r.case.shape_text()}]: {note}"
                for r in [*rows, *overhead_rows] for note in r.notes]
    if problems:
        print("\nProblems\n")
        for p in problems:
            print(f"- {p}")
    failed = any(s != "ok" for r in [*rows, *overhead_rows] for s in r.status.values())
    print(f"\nchecks: {'FAILED (see Problems)' if failed else 'all tools passed on every seed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
