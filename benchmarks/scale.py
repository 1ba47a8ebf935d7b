"""Planning at scale: a 10,000-tensor random regular network (degree 3, sizes 2-3).

Times einopt's ``greedy``, ``auto`` and ``hyper`` (with ``--max-time``) planning the
whole network, checks the plans are complete, and, with ``--peers``, times opt_einsum's
greedy on the same network (tens of seconds) and tries cotengra's HyperOptimizer
(``max_time=--max-time`` with ``max_repeats=10**6``, so that the time limit is what stops
it; its path's own cost is checked against einopt's price of that path).

    python benchmarks/scale.py [--tensors 10000] [--max-time 5] [--peers]
"""

from __future__ import annotations

import argparse
import math
import random
import time

import einopt

try:
    from .core import machine_header
except ImportError:  # run as a script: benchmarks/ is on sys.path
    from core import machine_header


def random_regular(n: int, degree: int, seed: int) -> tuple[list[list[int]], dict[int, int]]:
    """Index lists of a random ``degree``-regular graph on ``n`` tensors (no loops)."""
    rng = random.Random(seed)
    while True:
        stubs = [v for v in range(n) for _ in range(degree)]
        rng.shuffle(stubs)
        edges = list(zip(stubs[0::2], stubs[1::2], strict=True))
        if all(a != b for a, b in edges) and len({frozenset(e) for e in edges}) == len(edges):
            break
    terms: list[list[int]] = [[] for _ in range(n)]
    sizes = {}
    for e, (a, b) in enumerate(edges):
        terms[a].append(e)
        terms[b].append(e)
        sizes[e] = rng.choice((2, 3))
    return terms, sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tensors", type=int, default=10_000)
    ap.add_argument("--max-time", type=float, default=5.0)
    ap.add_argument("--peers", action="store_true", help="also run opt_einsum and cotengra")
    args = ap.parse_args()
    terms, sizes = random_regular(args.tensors, 3, 0)
    shapes = [tuple(sizes[e] for e in t) for t in terms]
    sublist: list = []
    for t, s in zip(terms, shapes, strict=True):
        sublist += [s, t]
    sublist.append([])
    print("\n".join(machine_header()))
    print(f"random regular network: {args.tensors} tensors, degree 3, sizes 2-3")
    print(f"{'tool':28s} {'plan time':>10s} {'log10 flops':>12s} {'log2 max size':>14s}")
    for name, kw in [("einopt greedy", {"optimize": "greedy"}),
                     ("einopt auto", {"optimize": "auto"}),
                     (f"einopt hyper {args.max_time:g}s",
                      {"optimize": "hyper", "max_time": args.max_time, "seed": 0})]:
        einopt.clear_caches()
        t0 = time.perf_counter()
        p = einopt.plan(*sublist, **kw)
        dt = time.perf_counter() - t0
        assert len(p.path) == args.tensors - 1
        print(f"{name:28s} {dt:9.2f}s {math.log10(p.flops):12.2f} {math.log2(p.max_size):14.1f}")
    if args.peers:
        import opt_einsum as oe

        eq_inputs = [[oe.get_symbol(e) for e in t] for t in terms]
        eq = ",".join("".join(t) for t in eq_inputs) + "->"
        t0 = time.perf_counter()
        path, _ = oe.contract_path(eq, *shapes, shapes=True, optimize="greedy")
        dt = time.perf_counter() - t0
        p = einopt.plan(*sublist, optimize=path)
        print(f"{'opt_einsum greedy':28s} {dt:9.2f}s {math.log10(p.flops):12.2f} "
              f"{math.log2(p.max_size):14.1f}")
        try:
            import cotengra as ctg

            opt = ctg.HyperOptimizer(max_time=args.max_time, max_repeats=10**6, parallel=False,
                                     progbar=False)
            t0 = time.perf_counter()
            path, _ = oe.contract_path(eq, *shapes, shapes=True, optimize=opt)
            dt = time.perf_counter() - t0
            p = einopt.plan(*sublist, optimize=path)
            claimed = float(opt.tree.contraction_cost())
            agree = math.isclose(claimed, float(p.flops), rel_tol=1e-9)
            print(f"{'cotengra hyper':28s} {dt:9.2f}s {math.log10(p.flops):12.2f} "
                  f"{math.log2(p.max_size):14.1f}   (its own cost: log10 "
                  f"{math.log10(claimed):.2f}, {'agrees' if agree else 'CHECK FAILED'})")
        except Exception as e:  # report the failure, as the peer gives it
            print(f"{'cotengra hyper':28s} failed: {type(e).__name__}: {str(e)[:80]}")


if __name__ == "__main__":
    main()
