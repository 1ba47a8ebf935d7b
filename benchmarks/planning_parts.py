"""Where ``auto``'s planning time goes, against ``opt_einsum.paths.greedy`` timed alone.

Above the exact-search sizes ``auto`` is opt_einsum's greedy tree rebuilt
(:func:`einopt.optimize.reference.reference_greedy`), then its costliest merges
re-solved exactly; it is called through :class:`einopt.PathOptimizer`, which first builds
the network and last writes the path out. Each part is timed alone (minimum over
repeated calls) on every corpus problem above ``--min-tensors`` tensors, and printed as
a share of opt_einsum's greedy time on the same problem, so that a planning-speed goal
can be read against what each part costs.

Run ``python benchmarks/planning_parts.py [--min-tensors 100] [--max-tensors 5000]
[--calls 40] [--only NAME ...]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import opt_einsum
from _paths_problems import DEFAULT_CORPUS, load_corpus

import einopt
from einopt.compat.path_optimizer import protocol_network
from einopt.optimize import DEFAULT_BUDGET, auto
from einopt.optimize.reference import reference_greedy

PARTS = ("network", "rebuild", "re-solve", "path out")


def best_time(fn: Callable[[], Any], calls: int) -> float:
    """The shortest of ``calls`` timed calls, in seconds."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def parts(problem: Any, calls: int) -> dict[str, float]:
    """Seconds of opt_einsum's greedy, of ``auto`` through the protocol, and of each
    part of it, on one problem."""
    inputs, output, sizes = [tuple(t) for t in problem.inputs], tuple(problem.output), \
        dict(problem.sizes)
    sets = [frozenset(t) for t in inputs]
    optimizer = einopt.PathOptimizer("auto")
    network = protocol_network(inputs, output, sizes)
    tree = auto(network, DEFAULT_BUDGET)
    found = {
        "oe greedy": best_time(lambda: opt_einsum.paths.greedy(sets, frozenset(output),
                                                               sizes), calls),
        "auto": best_time(lambda: optimizer(inputs, output, sizes), calls),
        "network": best_time(lambda: protocol_network(inputs, output, sizes), calls),
        "rebuild": best_time(lambda: reference_greedy(network), calls),
        "path out": best_time(tree.linear_path, calls),
    }
    found["re-solve"] = max(best_time(lambda: auto(network, DEFAULT_BUDGET), calls)
                            - found["rebuild"], 0.0)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-tensors", type=int, default=100)
    parser.add_argument("--max-tensors", type=int, default=5000)
    parser.add_argument("--calls", type=int, default=40, help="timed calls per part")
    parser.add_argument("--only", nargs="*", default=None, metavar="NAME")
    args = parser.parse_args(argv)
    problems = [p for path in DEFAULT_CORPUS for p in load_corpus(path, True)[0]
                if args.min_tensors < p.n_tensors <= args.max_tensors
                and (not args.only or p.name in args.only)]
    print(f"{'problem':36s} {'tensors':>7s} {'oe greedy':>10s} {'auto':>9s} {'speedup':>7s} "
          + " ".join(f"{k:>9s}" for k in PARTS) + "   (parts: share of oe greedy)")
    speedups = []
    for problem in problems:
        t = parts(problem, args.calls)
        speedups.append(t["oe greedy"] / t["auto"])
        shares = " ".join(f"{t[k] / t['oe greedy']:9.2f}" for k in PARTS)
        print(f"{problem.name:36s} {problem.n_tensors:7d} {t['oe greedy'] * 1e3:8.2f}ms "
              f"{t['auto'] * 1e3:7.2f}ms {speedups[-1]:7.2f} {shares}", flush=True)
    if speedups:
        print(f"speedup (oe greedy / auto): min {min(speedups):.2f}, geomean "
              f"{statistics.geometric_mean(speedups):.2f}, max {max(speedups):.2f} over "
              f"{len(speedups)} problems")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
