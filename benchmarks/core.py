"""einopt vs numpy.einsum(optimize=True) vs opt_einsum.contract, in one process.

Usage::

    python benchmarks/core.py              # full run (~0.2 s per measurement)
    python benchmarks/core.py --quick      # shorter measurements, fewer repeats
    python benchmarks/core.py --filter chain --markdown
    python benchmarks/core.py --blas-threads 1   # single-threaded BLAS on a busy machine

For every expression the operands are seeded random float64 arrays.  einopt's
result is checked against ``numpy.einsum`` before anything is timed; a mismatch is
flagged in the table and listed at the end, it is never skipped silently.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:
    from ._timing import format_seconds, measure, time_once
except ImportError:  # run as a script: benchmarks/ is on sys.path
    from _timing import format_seconds, measure, time_once

import einopt

try:
    import opt_einsum
except ImportError:  # the table still runs, with the opt_einsum column empty
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

    def operands(self) -> list[np.ndarray]:
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        ops: list[np.ndarray] = []
        for k, shape in enumerate(self.shapes()):
            ops.append(ops[self.same[k]] if k in self.same else rng.random(shape))
        return ops

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
        os.execv(sys.executable, [sys.executable, os.path.abspath(__file__), *args])
    return f"{n} thread(s) via {', '.join(_THREAD_VARS)} (--blas-threads)"


# --------------------------------------------------------------------------- running


@dataclass
class Row:
    case: Case
    einopt: float | None = None
    numpy: float | None = None
    opt_einsum: float | None = None
    first_call: float | None = None
    hand: float | None = None
    status: str = "ok"  # "ok", "WRONG" or "ERROR"
    notes: list[str] = field(default_factory=list)

    @property
    def best_other(self) -> float | None:
        others = [t for t in (self.numpy, self.opt_einsum) if t is not None]
        return min(others) if others else None

    @property
    def ratio(self) -> float | None:
        if self.einopt is None or self.best_other is None:
            return None
        return self.einopt / self.best_other


def _check(case: Case, result: Any, expected: np.ndarray) -> str | None:
    """None when ``result`` matches ``expected``, else a description of the mismatch."""
    result = np.asarray(result)
    if result.shape != expected.shape:
        return f"shape {result.shape} != numpy's {expected.shape}"
    if result.dtype != expected.dtype:
        return f"dtype {result.dtype} != numpy's {expected.dtype}"
    if not np.allclose(result, expected):
        err = float(np.max(np.abs(result - expected))) if result.size else 0.0
        return f"values differ from numpy.einsum (max abs error {err:.3g})"
    return None


def _verify_einopt(case: Case, ops: Sequence[np.ndarray], expected: np.ndarray,
                   notes: list[str]) -> str:
    """Check einopt on a cold and then a warm plan cache; returns "ok", "WRONG" or "ERROR"."""
    before = [op.copy() for op in ops]
    einopt.clear_caches()
    status = "ok"
    for when in ("first call", "cached call"):
        try:
            problem = _check(case, einopt.einsum(case.eq, *ops), expected)
        except Exception as exc:
            notes.append(f"einopt.einsum ({when}) raised {type(exc).__name__}: {exc}")
            return "ERROR"
        if problem is not None:
            notes.append(f"einopt ({when}): {problem}")
            status = "WRONG"
    for k, (op, old) in enumerate(zip(ops, before, strict=True)):
        if not np.array_equal(op, old):
            notes.append(f"einopt modified operand {k} in place")
            status = "WRONG"
    return status


def _safe_measure(fn: Callable[[], Any], label: str, row: Row, target: float,
                  repeats: int) -> float | None:
    try:
        return measure(fn, target=target, repeats=repeats).median
    except Exception as exc:  # a crash in one tool must not stop the table
        row.notes.append(f"{label} raised {type(exc).__name__}: {exc}")
        return None


def progress(message: str) -> None:
    """Progress on stderr, only when it is a terminal (keeps piped output clean)."""
    if sys.stderr.isatty():
        print(f"  {message}", file=sys.stderr, flush=True)


def run_case(case: Case, target: float, repeats: int, cold_repeats: int,
             show_plan: bool) -> Row:
    row = Row(case)
    ops = case.operands()
    expected = np.einsum(case.eq, *ops, optimize=True)

    # Correctness first, on a cold and then a warm plan cache.
    row.status = _verify_einopt(case, ops, expected, row.notes)

    if show_plan and row.status != "ERROR":
        try:
            print(einopt.plan(case.eq, *ops))
            print()
        except Exception as exc:
            row.notes.append(f"einopt.plan raised {type(exc).__name__}: {exc}")

    if row.status != "ERROR":
        # First call: planning + execution with an empty plan cache.
        cold = []
        for _ in range(cold_repeats):
            einopt.clear_caches()
            try:
                cold.append(time_once(lambda: einopt.einsum(case.eq, *ops)))
            except Exception as exc:
                row.notes.append(f"einopt first call raised {type(exc).__name__}: {exc}")
                break
        row.first_call = float(np.median(cold)) if cold else None
        # Warm: measure() makes a warm-up call first, so the plan is cached.
        row.einopt = _safe_measure(lambda: einopt.einsum(case.eq, *ops), "einopt", row,
                                   target, repeats)

    row.numpy = _safe_measure(lambda: np.einsum(case.eq, *ops, optimize=True), "numpy", row,
                              target, repeats)
    if opt_einsum is not None:
        row.opt_einsum = _safe_measure(lambda: opt_einsum.contract(case.eq, *ops),
                                       "opt_einsum", row, target, repeats)

    hand = case.hand
    if hand is not None:
        hand_result = hand(ops)
        problem = _check(case, hand_result, expected)
        if problem is not None:
            row.notes.append(f"hand form: {problem}")
        row.hand = _safe_measure(lambda: hand(ops), "hand form", row, target, repeats)
    return row


@dataclass
class OverheadRow:
    case: Case
    einopt: float | None = None
    numpy: float | None = None
    opt_einsum: float | None = None
    status: str = "ok"
    notes: list[str] = field(default_factory=list)


def run_overhead(case: Case, target: float, repeats: int) -> OverheadRow:
    row = OverheadRow(case)
    ops = case.operands()
    expected = np.einsum(case.eq, *ops)
    row.status = _verify_einopt(case, ops, expected, row.notes)
    holder = Row(case)  # collects crash notes from _safe_measure
    if row.status != "ERROR":
        row.einopt = _safe_measure(lambda: einopt.einsum(case.eq, *ops), "einopt", holder,
                                   target, repeats)
    row.numpy = _safe_measure(lambda: np.einsum(case.eq, *ops), "numpy", holder, target,
                              repeats)
    if opt_einsum is not None:
        row.opt_einsum = _safe_measure(lambda: opt_einsum.contract(case.eq, *ops),
                                       "opt_einsum", holder, target, repeats)
    row.notes.extend(holder.notes)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="~0.05 s per measurement and 3 repeats instead of 0.2 s and 5")
    parser.add_argument("--filter", metavar="SUBSTR", default=None,
                        help="only cases whose name or equation contains SUBSTR")
    parser.add_argument("--markdown", action="store_true",
                        help="print the tables as Markdown (for BENCHMARKS.md)")
    parser.add_argument("--plans", action="store_true", help="print einopt's plan for each case")
    parser.add_argument("--blas-threads", type=int, metavar="N", default=None,
                        help="limit BLAS to N threads (default: leave the BLAS setup alone)")
    args = parser.parse_args(argv)
    blas_note = limit_blas_threads(args.blas_threads, argv) if args.blas_threads else None

    target, repeats, cold_repeats = (0.05, 3, 1) if args.quick else (0.2, 5, 3)

    def selected(case: Case) -> bool:
        return args.filter is None or args.filter in case.name or args.filter in case.eq

    cases = [c for c in CASES if selected(c)]
    overhead_cases = [c for c in OVERHEAD_CASES if selected(c)]

    header = machine_header()
    if blas_note:
        header.append(f"blas limit : {blas_note}")
    if args.markdown:
        print("```")
        print("\n".join(header))
        print("```")
    else:
        print("\n".join(header))
    print(f"\ntiming: median of {repeats} measurements of ~{target} s each, after a warm-up "
          f"call; first call = median of {cold_repeats} call(s) after einopt.clear_caches()")
    print("ratio = einopt / min(numpy, opt_einsum); below 1 means einopt is faster\n")

    problems: list[str] = []
    failed = False
    rows: list[Row] = []
    for case in cases:
        progress(f"running {case.name} ...")
        row = run_case(case, target, repeats, cold_repeats, args.plans)
        rows.append(row)
        problems.extend(f"{case.name} [{case.eq}; shapes {case.shape_text()}]: {note}"
                        for note in row.notes)

    if rows:
        headers = ["expr", "equation", "einopt", "numpy(opt)", "opt_einsum", "ratio",
                   "einopt first call"]
        body = []
        for row in rows:
            ratio = _ratio_text(row.ratio)
            if row.status != "ok":
                ratio += f" {row.status}"
            body.append([row.case.name, row.case.eq, format_seconds(row.einopt),
                         format_seconds(row.numpy), format_seconds(row.opt_einsum), ratio,
                         format_seconds(row.first_call)])
        print_table(headers, body, args.markdown, [False, False, True, True, True, True, True])

        print()
        print_table(["expr", "operand shapes"],
                    [[r.case.name, r.case.shape_text()] for r in rows], args.markdown,
                    [False, False])

        good = [r for r in rows if r.status == "ok" and r.ratio is not None]
        ratios = [r.ratio for r in good if r.ratio is not None]
        print()
        if good:
            worst = max(good, key=lambda r: r.ratio or 0.0)
            best = min(good, key=lambda r: r.ratio or 0.0)
            faster = sum(1 for r in good if (r.ratio or 0.0) < 1.0)
            print(f"geometric mean of ratio : {geometric_mean(ratios):.3f}"
                  f"  (over {len(good)} expressions)")
            print(f"max ratio               : {worst.ratio:.2f}  ({worst.case.name}: "
                  f"{worst.case.eq})")
            print(f"min ratio               : {best.ratio:.2f}  ({best.case.name}: "
                  f"{best.case.eq})")
            print(f"einopt fastest on       : {faster} of {len(good)}")
        bad = [r for r in rows if r.status != "ok"]
        if bad:
            print(f"excluded (wrong or crashed): {', '.join(r.case.name for r in bad)}")

        hand_rows = [r for r in rows if r.case.hand is not None]
        if hand_rows:
            print("\nHand-written numpy equivalents\n")
            print_table(
                ["expr", "hand form", "einopt", "hand", "einopt/hand"],
                [[r.case.name, r.case.hand_text, format_seconds(r.einopt),
                  format_seconds(r.hand),
                  _ratio_text(r.einopt / r.hand if r.einopt and r.hand else None)]
                 for r in hand_rows],
                args.markdown, [False, False, True, True, True])

    if overhead_cases:
        print("\nPer-call overhead (tiny operands, warm plan cache; numpy.einsum without "
              "optimize)\n")
        body = []
        for case in overhead_cases:
            progress(f"running {case.name} ...")
            orow = run_overhead(case, target, repeats)
            problems.extend(f"{case.name} [{case.eq}; shapes {case.shape_text()}]: {note}"
                            for note in orow.notes)
            einopt_np = orow.einopt / orow.numpy if orow.einopt and orow.numpy else None
            einopt_oe = (orow.einopt / orow.opt_einsum
                         if orow.einopt and orow.opt_einsum else None)
            status = "" if orow.status == "ok" else f" {orow.status}"
            failed = failed or orow.status != "ok"
            body.append([case.eq, case.shape_text(), format_seconds(orow.einopt),
                         format_seconds(orow.numpy), format_seconds(orow.opt_einsum),
                         _ratio_text(einopt_np) + status, _ratio_text(einopt_oe) + status])
        print_table(["equation", "shapes", "einopt", "numpy", "opt_einsum", "einopt/numpy",
                     "einopt/opt_einsum"], body, args.markdown,
                    [False, False, True, True, True, True, True])

    if problems:
        print("\nProblems\n")
        for p in problems:
            print(f"- {p}")
    failed = failed or any(r.status != "ok" for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
