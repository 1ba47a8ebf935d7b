"""Exact contraction orders of chains and acyclic networks: einopt ``optimal`` against
opt_einsum's ``dp`` and cotengra's compiled optimal search (``cotengrust``).

All three search the same space (trees without outer products) for the least flops.
einopt's ``optimal`` solves chains by the interval recursion and other networks by its
search over connected subsets with a cost cap (compiled with the ``fast`` extra; set
``EINOPT_FAST=0`` for the pure-Python one); its acyclic search (which ``auto`` and
``hyper`` use on trees, for its work is known before it starts) is shown beside it. The
peers run their general searches over connected subsets. Every path is priced by the paths
benchmark's own cost function (``path_cost``), so the costs compare exactly; each tool
plans from the opt_einsum protocol's ``(inputs, output, sizes)`` (einopt through
:class:`einopt.PathOptimizer`), in a child process given up after ``--timeout``
seconds, and its time is the best of ``--repeats`` calls. opt_einsum's greedy is shown
for scale.

Run ``python benchmarks/exact.py [--timeout 60] [--repeats 3] [--markdown]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import opt_einsum

try:
    from ._paths_problems import log10_int, path_cost
    from .core import machine_header, print_table
except ImportError:  # run as a script: benchmarks/ is on sys.path
    from _paths_problems import log10_int, path_cost
    from core import machine_header, print_table

import einopt

Problem = tuple[list[tuple[str, ...]], tuple[str, ...], dict[str, int]]


def chain(n: int, seed: int) -> Problem:
    """A matrix chain, dimensions 2 to 1,000."""
    rng = random.Random(seed)
    inputs = [(f"i{k}", f"i{k + 1}") for k in range(n)]
    return inputs, ("i0", f"i{n}"), {f"i{k}": rng.randint(2, 1000) for k in range(n + 1)}


def comb(teeth: int, seed: int) -> Problem:
    """A chain of ``teeth`` tensors, each with one more hanging off it; every third
    tooth keeps a free index (an MPS-like spine read out by vectors and matrices)."""
    rng = random.Random(seed)
    inputs: list[tuple[str, ...]] = []
    out: list[str] = []
    for k in range(teeth):
        spine = ((f"s{k - 1}",) if k else ()) + ((f"s{k}",) if k < teeth - 1 else ())
        inputs.append((f"l{k}", *spine))
        leg = (f"l{k}", f"f{k}") if k % 3 == 0 else (f"l{k}",)
        out += leg[1:]
        inputs.append(leg)
    labels = {c for t in inputs for c in t}
    return inputs, tuple(out), {c: rng.choice([2, 4, 8, 16, 32, 64]) for c in sorted(labels)}


def binary_tree(depth: int, seed: int) -> Problem:
    """A complete binary tree of tensors (a tree tensor network read out by vectors):
    ``2**(depth + 1) - 1`` tensors, bonds 2 to 32."""
    rng = random.Random(seed)
    n = 2 ** (depth + 1) - 1
    inputs: list[list[str]] = [[] for _ in range(n)]
    sizes: dict[str, int] = {}
    for t in range(1, n):
        bond = f"b{t}"
        inputs[t].append(bond)
        inputs[(t - 1) // 2].append(bond)
        sizes[bond] = rng.choice([2, 4, 8, 16, 32])
    return [tuple(t) for t in inputs], (), sizes


def random_tree(n: int, seed: int) -> Problem:
    """A random tree of ``n`` tensors, each joined to one of the four before it with at
    most two children (long and thin, as tree tensor networks of physics are), bonds
    2 to 32, a free index on a fifth of them."""
    rng = random.Random(seed)
    inputs: list[list[str]] = [[] for _ in range(n)]
    sizes: dict[str, int] = {}
    kids = [0] * n
    for t in range(1, n):
        parent = rng.choice([p for p in range(max(0, t - 4), t) if kids[p] < 2] or [t - 1])
        kids[parent] += 1
        inputs[t].append(f"b{t}")
        inputs[parent].append(f"b{t}")
        sizes[f"b{t}"] = rng.choice([2, 4, 8, 16, 32])
    out = []
    for t in range(n):
        if rng.random() < 0.2:
            inputs[t].append(f"f{t}")
            out.append(f"f{t}")
            sizes[f"f{t}"] = rng.choice([2, 3])
    return [tuple(t) for t in inputs], tuple(out), sizes


PROBLEMS: dict[str, Callable[[], Problem]] = {
    "chain_30": lambda: chain(30, 0),
    "chain_100": lambda: chain(100, 1),
    "chain_300": lambda: chain(300, 2),
    "comb_8": lambda: comb(8, 3),
    "comb_10": lambda: comb(10, 4),
    "comb_12": lambda: comb(12, 5),
    "binary_tree_15": lambda: binary_tree(3, 6),
    "random_tree_20": lambda: random_tree(20, 7),
    "random_tree_28": lambda: random_tree(28, 8),
}


def _einopt(inputs: Any, output: Any, sizes: Any) -> Any:
    return einopt.PathOptimizer("optimal")(inputs, output, sizes)


def _einopt_acyclic(inputs: Any, output: Any, sizes: Any) -> Any:
    from einopt.compat.path_optimizer import protocol_network
    from einopt.optimize.acyclic import acyclic_tree

    tree = acyclic_tree(protocol_network(inputs, output, sizes))
    if tree is None:
        raise ValueError("not acyclic")
    return tree.linear_path()


def _oe_dp(inputs: Any, output: Any, sizes: Any) -> Any:
    return opt_einsum.paths.dynamic_programming(inputs, output, sizes)


def _ctg(inputs: Any, output: Any, sizes: Any) -> Any:
    import cotengrust  # one character per index, as cotengra hands it

    char = {c: opt_einsum.get_symbol(k) for k, c in enumerate(sizes)}
    return cotengrust.optimize_optimal([[char[c] for c in t] for t in inputs],
                                       [char[c] for c in output],
                                       {char[c]: d for c, d in sizes.items()}, minimize="flops")


def _oe_greedy(inputs: Any, output: Any, sizes: Any) -> Any:
    return opt_einsum.paths.greedy(inputs, output, sizes)


TOOLS: dict[str, tuple[Callable[..., Any], type]] = {
    "einopt optimal": (_einopt, tuple),
    "einopt acyclic search": (_einopt_acyclic, tuple),
    "oe dp": (_oe_dp, frozenset),
    "ctg optimal (cotengrust)": (_ctg, list),
    "oe greedy": (_oe_greedy, frozenset),
}


def _child(tool: str, name: str, repeats: int, conn: Any) -> None:
    fn, kind = TOOLS[tool]
    inputs, output, sizes = PROBLEMS[name]()
    args = ([kind(t) for t in inputs], kind(output), sizes)
    try:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            path = fn(*args)
            best = min(best, time.perf_counter() - start)
        conn.send(("ok", [tuple(int(i) for i in step) for step in path], best))
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"[:80], None))
    finally:
        conn.close()


def run(tool: str, name: str, repeats: int, timeout: float) -> tuple[str, Any, Any]:
    """(status, path, seconds) of one tool on one problem, in a child process."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(tool, name, repeats, child), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout):
            return "timeout", None, None
        status, path, seconds = parent.recv()
    except EOFError:
        return "crashed", None, None
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(5)
        parent.close()
    return status, path, seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--only", nargs="*", default=None, metavar="PROBLEM")
    args = parser.parse_args(argv)
    print("\n".join(machine_header()))
    print(f"timeout    : {args.timeout:g} s per tool and problem; best of {args.repeats}")
    headers = ["problem", "tensors"] + [f"{t}: log10 flops / time" for t in TOOLS] + \
        ["einopt time / fastest peer"]
    rows = []
    for name, make in PROBLEMS.items():
        if args.only and name not in args.only:
            continue
        inputs, output, sizes = make()
        cells, times, costs = [], {}, {}
        for tool in TOOLS:
            status, path, seconds = run(tool, name, args.repeats, args.timeout)
            if status != "ok":
                cells.append(status if status != "error" else f"error: {path}")
                continue
            flops, _ = path_cost(inputs, output, sizes, path)
            costs[tool], times[tool] = flops, seconds
            cells.append(f"{log10_int(flops):.4f} / {_fmt(seconds)}")
        exact = [t for t in TOOLS if t != "oe greedy" and t in costs]
        if len({costs[t] for t in exact}) > 1:
            cells = [c + (" (NOT OPTIMAL)" if t in costs and costs[t] > min(
                costs[u] for u in exact) else "") for t, c in zip(TOOLS, cells, strict=True)]
        peers = [times[t] for t in exact if not t.startswith("einopt")]
        if "einopt optimal" not in times:
            ratio = "-"
        elif peers:
            ratio = f"{times['einopt optimal'] / min(peers):.3g}"
        else:
            ratio = "< 1 (peers timed out)"

        rows.append([name, str(len(inputs)), *cells, ratio])
        print(f"  {name}: done", flush=True)
    print_table(headers, rows, args.markdown, [False] + [True] * (len(headers) - 1))
    print("einopt time / fastest peer: below 1 means einopt's exact search is the faster; a "
          "peer that timed out counts as slower than any finished one")
    return 0


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


if __name__ == "__main__":
    raise SystemExit(main())
