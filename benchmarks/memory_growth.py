"""Memory of a long run: one process plans (and evaluates) 100,000 distinct shapes.

Every einsum of a new shape adds entries to einopt's caches (parse, plans, the front
table of compiled calls); each cache is bounded, so after the first thousands of shapes
the resident memory should stop growing. The script cycles through a few equations with
sizes chosen so that no (equation, shapes) repeats, and prints the resident set size
(``VmRSS`` of ``/proc/self/status``; ``psutil`` elsewhere, if installed) at each
checkpoint, its growth since the first checkpoint, and the entries every cache holds.

    python benchmarks/memory_growth.py [--shapes 100000] [--mode both|plan|einsum]
        [--limit-mb 200]

The exit status is 1 if the RSS at the end exceeds the RSS at the first checkpoint by
more than ``--limit-mb`` megabytes (10^6 bytes), or a cache holds more than its bound.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Iterator

import numpy as np

import einopt
from einopt.caches import registered

try:
    from .core import machine_header
except ImportError:  # run as a script: benchmarks/ is on sys.path
    from core import machine_header

#: The equations cycled through: a matmul, a chain, a batched matmul, a row-wise inner
#: product over two axes and a contraction with a trace.
EQUATIONS = ("ij,jk->ik", "ij,jk,kl->il", "bij,bjk->bik", "ijk,ijk->i", "aab,bc->ac")
CHECKPOINTS = (1_000, 10_000, 50_000, 100_000)


def _sizes(m: int) -> tuple[int, int, int]:
    """Three sizes, distinct for every ``m`` below 40 * 40 * 100 (sizes 2 to 101)."""
    return 2 + m % 40, 2 + (m // 40) % 40, 2 + m // 1600


def shapes_of(eq: str, m: int) -> tuple[tuple[int, ...], ...]:
    """The ``m``-th shapes of ``eq`` (no two ``m`` give the same shapes)."""
    x, y, z = _sizes(m)
    return {
        "ij,jk->ik": ((x, y), (y, z)),
        "ij,jk,kl->il": ((x, y), (y, z), (z, 2)),
        "bij,bjk->bik": ((z, x, y), (z, y, 2)),
        "ijk,ijk->i": ((x, y, z), (x, y, z)),
        "aab,bc->ac": ((x, x, y), (y, z)),
    }[eq]


def problems(n: int) -> Iterator[tuple[str, tuple[tuple[int, ...], ...]]]:
    """``n`` distinct (equation, shapes) pairs, the equations taken in turn."""
    for k in range(n):
        eq = EQUATIONS[k % len(EQUATIONS)]
        yield eq, shapes_of(eq, k // len(EQUATIONS))


def rss_bytes() -> int:
    """The resident set size of this process now."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil  # not Linux: the optional psutil

    return int(psutil.Process().memory_info().rss)


def cache_report() -> tuple[str, list[str]]:
    """Entries held per non-empty cache, and the caches holding more than their bound."""
    held, over = [], []
    for name, cache in sorted(registered().items()):
        n = len(cache)  # type: ignore[arg-type]
        bound = getattr(cache, "maxsize", None)
        if bound is None and hasattr(cache, "fn"):
            bound = cache.fn.cache_info().maxsize
        if n:
            held.append(f"{name} {n}")
        if bound is not None and n > bound:
            over.append(f"{name}: {n} > {bound}")
    return ", ".join(held), over


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", type=int, default=100_000, help="distinct shapes to plan")
    ap.add_argument("--mode", choices=("both", "plan", "einsum"), default="both",
                    help="plan from shapes, evaluate on arrays of ones, or both (default)")
    ap.add_argument("--limit-mb", type=float, default=200.0,
                    help="most growth allowed after the first checkpoint (MB)")
    args = ap.parse_args()
    checkpoints = sorted({c for c in CHECKPOINTS if c < args.shapes} | {args.shapes})
    print("\n".join(machine_header()))
    print(f"{args.shapes:,} distinct shapes of {', '.join(EQUATIONS)}; mode {args.mode}")
    print(f"{'shapes':>8s} {'RSS MB':>8s} {'growth MB':>10s} {'seconds':>8s}  cache entries")
    einopt.clear_caches()
    plan, evaluate = args.mode in ("both", "plan"), args.mode in ("both", "einsum")
    first: int | None = None
    over: list[str] = []
    t0 = time.perf_counter()
    for k, (eq, shapes) in enumerate(problems(args.shapes), 1):
        if plan:
            einopt.plan(eq, *shapes)
        if evaluate:
            einopt.einsum(eq, *[np.ones(s) for s in shapes])
        if k in checkpoints:
            gc.collect()
            rss = rss_bytes()
            first = rss if first is None else first
            held, bad = cache_report()
            over += bad
            print(f"{k:8,d} {rss / 1e6:8.1f} {(rss - first) / 1e6:10.1f} "
                  f"{time.perf_counter() - t0:8.1f}  {held}", flush=True)
    growth = (rss_bytes() - (first or 0)) / 1e6
    print(f"growth from {checkpoints[0]:,} to {args.shapes:,} shapes: {growth:.1f} MB "
          f"(limit {args.limit_mb:g} MB); wall time {time.perf_counter() - t0:.1f} s")
    for line in over:
        print(f"cache over its bound: {line}")
    return 1 if growth > args.limit_mb or over else 0


if __name__ == "__main__":
    sys.exit(main())
