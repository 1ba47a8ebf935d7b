"""The ``einopt`` command: plan, explain, draw and benchmark an einsum from the shell.

Examples::

    einopt plan "ni,ni,nj,nj->n" -s n=256,i=1024,j=1024
    einopt plan "ab,bc,cd->ad" -s a=10,b=1000,c=1000,d=10 --optimize hyper --max-time 2 --json
    einopt explain "ni,ni,nj,nj->n" -s n=256,i=1024,j=1024 --names B,B,A,A
    einopt draw "abcd,def->" -s a=2,b=3,c=4,d=5,e=6,f=7 -o factor.svg --kind factor
    einopt bench "ij,jk->ik" -s i=500,j=500,k=500

Sizes are given per index (``-s n=256,i=1024``); each operand's shape follows from its
subscripts. Exit status: 0 on success, 2 on bad input (the message says why).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from .api import plan
from .errors import EinsumError
from .parse import parse_cached

__all__ = ["main"]


def _sizes(text: str) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = part.partition("=")
        if not eq or not name.strip() or not value.strip().isdigit():
            raise EinsumError(f"bad size {part!r}: write name=int, e.g. -s n=256,i=1024")
        sizes[name.strip()] = int(value)
    return sizes


def _shapes(equation: str, sizes: dict[str, int]) -> list[tuple[int, ...]]:
    eq = parse_cached(equation)
    shapes = []
    for k, term in enumerate(eq.inputs):
        if ... in term:
            raise EinsumError(f"operand {k} uses '...': name every index on the command line")
        missing = [str(lab) for lab in term if str(lab) not in sizes]
        if missing:
            raise EinsumError(f"operand {k}: no size for index {missing[0]!r} (give -s "
                              f"{missing[0]}=N)")
        shapes.append(tuple(sizes[str(lab)] for lab in term))
    return shapes


def _plan(args: argparse.Namespace) -> Any:
    shapes = _shapes(args.equation, _sizes(args.sizes))
    return plan(args.equation, *shapes, optimize=args.optimize, max_time=args.max_time,
                memory_limit=args.memory_limit, seed=args.seed, parallel=args.parallel), shapes


def _cmd_plan(args: argparse.Namespace) -> int:
    p, shapes = _plan(args)
    if args.json:
        print(json.dumps({
            "equation": str(p.equation), "shapes": [list(s) for s in shapes],
            "path": [list(e) for e in p.path], "flops": p.flops,
            "naive_flops": p.naive_flops, "speedup": p.speedup, "max_size": p.max_size,
            "sliced": [str(s) for s in p.sliced], "slicing_overhead": p.slicing_overhead,
        }, indent=2))
    else:
        print(p)
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    p, _ = _plan(args)
    names = args.names.split(",") if args.names else None
    print(p.explain(names=names, backend=args.backend))
    return 0


def _cmd_draw(args: argparse.Namespace) -> int:
    from . import viz

    if args.kind == "tree":  # only the tree needs a plan (maybe a long search)
        fig = viz.draw_tree(_plan(args)[0])
    else:
        shapes = _shapes(args.equation, _sizes(args.sizes))
        draw = viz.draw_factor_graph if args.kind == "factor" else viz.draw_index_graph
        fig = draw(args.equation, *shapes)
    viz.save(fig, args.output)
    print(f"wrote {args.output}")
    return 0


def _time(fn: Any, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _cmd_bench(args: argparse.Namespace) -> int:
    import numpy as np

    from .api import einsum

    shapes = _shapes(args.equation, _sizes(args.sizes))
    rng = np.random.default_rng(0)
    ops = [rng.standard_normal(s) for s in shapes]
    tools: dict[str, Any] = {
        "einopt": lambda: einsum(args.equation, *ops),
        "numpy.einsum(optimize=True)": lambda: np.einsum(args.equation, *ops, optimize=True),
    }
    try:
        import opt_einsum
    except ImportError:
        pass
    else:
        tools["opt_einsum.contract"] = lambda: opt_einsum.contract(args.equation, *ops)
    try:
        import torch
    except ImportError:
        pass
    else:
        tops = [torch.from_numpy(x) for x in ops]
        tools["einopt (torch)"] = lambda: einsum(args.equation, *tops)
        tools["torch.einsum"] = lambda: torch.einsum(args.equation, *tops)
    times = {name: _time(fn, args.repeat) for name, fn in tools.items()}
    ref = times["einopt"]
    width = max(map(len, times))
    for name, t in times.items():
        print(f"{name:<{width}}  {t * 1e3:10.3f} ms  {t / ref:6.2f}x einopt")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="einopt", description="Plan, explain, draw and benchmark einsums.",
        epilog=__doc__.split("Examples::")[1].split("Sizes are")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("equation", help='einsum subscripts, e.g. "ij,jk->ik"')
        p.add_argument("-s", "--sizes", required=True, help="index sizes: n=256,i=1024")
        p.add_argument("--optimize", default="auto", help="auto, optimal, greedy, hyper")
        p.add_argument("--max-time", type=float, default=None, help="seconds for hyper")
        p.add_argument("--memory-limit", type=int, default=None, help="most elements")
        p.add_argument("--seed", type=int, default=None)
        p.add_argument("--parallel", type=int, default=1,
                       help="processes hyper may use (independent searches, best kept)")

    p = sub.add_parser("plan", help="print the plan (or --json)")
    common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_cmd_plan)
    p = sub.add_parser("explain", help="the formula, step costs, speedup and code")
    common(p)
    p.add_argument("--names", default=None, help="operand names, e.g. B,B,A,A")
    p.add_argument("--backend", default="numpy", choices=["numpy", "torch"])
    p.set_defaults(run=_cmd_explain)
    p = sub.add_parser("draw", help="draw the factor graph, index graph or tree")
    common(p)
    p.add_argument("-o", "--output", required=True, help="file to write (.svg or .png)")
    p.add_argument("--kind", default="factor", choices=["factor", "index", "tree"])
    p.set_defaults(run=_cmd_draw)
    p = sub.add_parser("bench", help="einopt against numpy / opt_einsum / torch")
    common(p)
    p.add_argument("--repeat", type=int, default=5)
    p.set_defaults(run=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (EinsumError, ImportError) as e:
        print(f"einopt: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
