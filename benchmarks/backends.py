"""einopt on torch, jax and dask arrays, side by side with each library's own einsum.

Usage::

    python benchmarks/backends.py --torch            # core suite on torch tensors
    python benchmarks/backends.py --jax              # core suite under jax.jit
    python benchmarks/backends.py --dask-demo        # a 2^30-element contraction, sliced
    python benchmarks/backends.py --torch --jax --markdown
    python benchmarks/backends.py --torch --quick --filter chain

torch (float64, the suite of ``benchmarks/core.py``): einopt.einsum with its plan cached
against peers whose path is computed once beforehand -- ``torch._VF.einsum`` (the kernel
``torch.einsum`` calls) given a precomputed path, and ``opt_einsum.contract_expression``
on torch tensors, each with its own path and with einopt's -- and against peers that
plan on every call: ``torch.einsum`` (its opt_einsum strategy ``auto``, and ``greedy``)
and ``opt_einsum.contract``.  jax: ``jax.jit`` of einopt.einsum vs ``jax.jit`` of
``jax.numpy.einsum`` (path found once, at trace time), with its own path and with
einopt's.  Every tool's result is checked against a numpy reference on every operand
seed before it is timed; a mismatch is flagged in the table and listed at the end.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:  # run as a module
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from core import (  # noqa: E402  (the sibling script's cases and table)
    CASES,
    Case,
    Row,
    Tool,
    einopt_path,
    machine_header,
    print_main_table,
    progress,
    run_case,
    summarize_ratios,
)

import einopt

try:
    import opt_einsum
except ImportError:
    opt_einsum = None


def _problems(rows: Sequence[Row]) -> int:
    """Print every failed check; 1 if there was one, else 0."""
    notes = [f"{r.case.name} [{r.case.eq}]: {n}" for r in rows for n in r.notes]
    if notes:
        print("\nProblems\n")
        for note in notes:
            print(f"- {note}")
    failed = any(s != "ok" for r in rows for s in r.status.values())
    print(f"\nchecks: {'FAILED (see Problems)' if failed else 'all tools passed on every seed'}")
    return 1 if failed else 0


# --------------------------------------------------------------------------- torch

TORCH_PER_CALL = """\
What torch.einsum does on every call (torch {version}): with three or more operands and
torch.backends.opt_einsum.enabled (the default when opt_einsum is installed), it calls
opt_einsum.contract_path(eq, *operands, optimize=torch.backends.opt_einsum.strategy)
('auto' by default; 'greedy' and 'optimal' are the other choices) and passes the path to
torch._VF.einsum, which contracts pairwise; with opt_einsum disabled it contracts left to
right; with one or two operands there is no path to find. torch has no public way to
give torch.einsum a precomputed path, so the precompiled torch columns call
torch._VF.einsum(eq, operands, path=<flattened path>) directly: torch.einsum's own
kernel, with the path search taken out."""


def torch_tools() -> list[Tool]:
    import torch

    def vf(case: Case, ops: list[Any], path: list[tuple[int, ...]] | None) -> Callable[[], Any]:
        # torch.einsum passes no path for one or two operands; nor do we.
        flat = [i for step in path for i in step] if path and len(ops) > 2 else None
        return lambda: torch._VF.einsum(case.eq, ops, path=flat)

    def own_path(case: Case, ops: list[Any]) -> list[tuple[int, ...]]:
        return [tuple(p) for p in opt_einsum.contract_path(
            case.eq, *[o.shape for o in ops], shapes=True, optimize="auto-hq")[0]]

    def expression(case: Case, ops: list[Any], optimize: Any) -> Callable[[], Any]:
        expr = opt_einsum.contract_expression(case.eq, *[o.shape for o in ops],
                                              optimize=optimize)
        return lambda: expr(*ops, backend="torch")

    def greedy() -> Any:
        return torch.backends.opt_einsum.flags(enabled=True, strategy="greedy")

    def grad_norm_hand(case: Case, ops: list[Any]) -> Callable[[], Any] | None:
        if case.name != "grad-norm":
            return None
        b, a = ops[0], ops[2]
        vn = torch.linalg.vector_norm
        return lambda: vn(b, dim=1) ** 2 * vn(a, dim=1) ** 2

    tools = [Tool("einopt", lambda c, ops: lambda: einopt.einsum(c.eq, *ops), "einopt")]
    if opt_einsum is not None:
        tools += [
            Tool("torch+path", lambda c, ops: vf(c, ops, own_path(c, ops)), "precompiled"),
            Tool("torch+path(einopt)", lambda c, ops: vf(c, ops, einopt_path(c.eq, ops)),
                 "precompiled"),
            Tool("oe expr", lambda c, ops: expression(c, ops, "auto-hq"), "precompiled"),
            Tool("oe expr(einopt)", lambda c, ops: expression(c, ops, einopt_path(c.eq, ops)),
                 "precompiled"),
        ]
    tools.append(Tool("torch.einsum", lambda c, ops: lambda: torch.einsum(c.eq, *ops),
                      "planning"))
    if opt_einsum is not None:
        tools += [
            Tool("torch.einsum greedy", lambda c, ops: lambda: torch.einsum(c.eq, *ops),
                 "planning", context=greedy),
            Tool("oe contract",
                 lambda c, ops: lambda: opt_einsum.contract(c.eq, *ops, backend="torch"),
                 "planning"),
        ]
    tools.append(Tool("hand", grad_norm_hand, "hand"))
    return tools


def torch_suite(cases: Sequence[Case], seeds: int, target: float, repeats: int,
                markdown: bool) -> int:
    import torch

    flags = torch.backends.opt_einsum
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, float64; "
          f"torch.backends.opt_einsum: available {flags.is_available()}, enabled "
          f"{flags.enabled}, strategy {flags.strategy if flags.is_available() else '-'}\n")
    print("```" if markdown else "", end="\n" if markdown else "")
    print(TORCH_PER_CALL.format(version=torch.__version__))
    print("""
columns: einopt = einopt.einsum, plan cached. Precompiled (path found before timing):
torch+path = torch._VF.einsum with opt_einsum's auto-hq path, torch+path(einopt) = the
same with einopt's path, oe expr / oe expr(einopt) = opt_einsum.contract_expression
(auto-hq path / einopt's path) called on torch tensors. Planning on every call:
torch.einsum (default flags), torch.einsum greedy (strategy 'greedy'), oe contract =
opt_einsum.contract(backend='torch'). einopt/best = einopt / fastest precompiled peer.""")
    if markdown:
        print("```")
    print()

    def tensors(case: Case, ops: list[np.ndarray]) -> list[Any]:
        out: list[Any] = []
        for k, x in enumerate(ops):
            out.append(out[case.same[k]] if k in case.same else torch.from_numpy(x))
        return out

    tools = torch_tools()
    rows = []
    for case in cases:
        progress(f"torch: {case.name} ...")
        rows.append(run_case(case, tools, seeds, target, repeats, 0, convert=tensors))
    print_main_table(rows, tools, markdown, first_call=False)
    hand = [r for r in rows if "hand" in r.times and "einopt" in r.times]
    print()
    if markdown:
        print("```")
    summarize_ratios(rows, "precompiled",
                     "headline: einopt (plan cached) / best precompiled peer (min of "
                     f"{', '.join(t.key for t in tools if t.role == 'precompiled')})")
    summarize_ratios(rows, "planning",
                     "with planning: einopt / best of "
                     f"{', '.join(t.key for t in tools if t.role == 'planning')}")
    for r in hand:
        print(f"{r.case.name}: einopt / hand form (torch.linalg.vector_norm(B, dim=1)**2 * "
              f"torch.linalg.vector_norm(A, dim=1)**2) = "
              f"{r.times['einopt'] / r.times['hand']:.2f}")
    if markdown:
        print("```")
    return _problems(rows)


# --------------------------------------------------------------------------- jax


def jax_suite(cases: Sequence[Case], seeds: int, target: float, repeats: int,
              markdown: bool) -> int:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    print(f"\njax {jax.__version__} on {jax.devices()[0].platform}, float64, under jax.jit: "
          "every tool's path is found once, when jax traces the call, so all columns are "
          "precompiled. jnp.einsum = jax.numpy.einsum (optimize='auto'), jnp.einsum(einopt) "
          "= jax.numpy.einsum(optimize=<einopt's path>).\n")

    def jitted(fn: Callable[..., Any], ops: list[Any]) -> Callable[[], Any]:
        compiled = jax.jit(fn)
        return lambda: compiled(*ops).block_until_ready()

    def with_path(case: Case, ops: list[Any], path: list[tuple[int, ...]]) -> Callable[[], Any]:
        return jitted(lambda *xs: jnp.einsum(case.eq, *xs, optimize=path), ops)

    tools = [
        Tool("einopt", lambda c, ops: jitted(lambda *xs: einopt.einsum(c.eq, *xs), ops),
             "einopt"),
        Tool("jnp.einsum", lambda c, ops: jitted(lambda *xs: jnp.einsum(c.eq, *xs), ops),
             "precompiled"),
        Tool("jnp.einsum(einopt)", lambda c, ops: with_path(c, ops, einopt_path(c.eq, ops)),
             "precompiled"),
    ]
    rows = []
    for case in cases:
        progress(f"jax: {case.name} ...")
        rows.append(run_case(case, tools, seeds, target, repeats, 0,
                             convert=lambda c, ops: [jnp.asarray(x) for x in ops]))
    print_main_table(rows, tools, markdown, first_call=False)
    print()
    if markdown:
        print("```")
    summarize_ratios(rows, "precompiled",
                     "einopt (jit) / best of jnp.einsum, jnp.einsum(einopt) (jit)")
    if markdown:
        print("```")
    return _problems(rows)


# --------------------------------------------------------------------------- dask


def dask_demo(workers: int) -> int:
    """A contraction whose unsliced plan needs a 2^30-element intermediate, run in
    2^24-element slices on a local dask cluster, and checked against a serial run."""
    from distributed import Client, LocalCluster
    from scale import random_regular

    terms, _ = random_regular(144, 3, 2)  # bond dimension 2 everywhere
    args: list[Any] = []
    rng = np.random.default_rng(0)
    for t in terms:
        args += [rng.standard_normal((2,) * len(t)) / 1.2, t]
    args.append([])
    shapes_args: list[Any] = [a.shape if isinstance(a, np.ndarray) else a for a in args]
    unsliced = einopt.plan(*shapes_args)
    sliced = einopt.plan(*shapes_args, memory_limit=2**24)
    operands = args[0:-1:2]
    print(f"\n144-tensor random regular network, bond dimension 2\n"
          f"unsliced plan: largest intermediate 2^{math.log2(unsliced.max_size):.0f} elements, "
          f"flops 2^{math.log2(unsliced.flops):.2f}\n"
          f"memory_limit=2**24: largest 2^{math.log2(sliced.max_size):.0f}, "
          f"{sliced.num_slices} slices over {sliced.sliced}, flops overhead "
          f"{sliced.slicing_overhead:.3f}x")
    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cl, \
            Client(cl) as client:
        start = time.perf_counter()
        got = sliced(*operands, executor=client)
        dist = time.perf_counter() - start
    start = time.perf_counter()
    serial = sliced(*operands, executor="serial")
    ser = time.perf_counter() - start
    print(f"dask LocalCluster ({workers} workers): {dist:.1f} s; serial: {ser:.1f} s; "
          f"result {float(got):.6e} vs serial {float(serial):.6e} "
          f"(relative difference {abs(float(got) - float(serial)) / abs(float(serial)):.1e})")
    if not math.isclose(float(got), float(serial), rel_tol=1e-9):
        print("CHECK FAILED: the distributed result differs from the serial one")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--torch", action="store_true")
    ap.add_argument("--jax", action="store_true")
    ap.add_argument("--dask-demo", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--filter", default="", help="only cases whose name contains this")
    ap.add_argument("--quick", action="store_true",
                    help="~0.02 s per measurement and 3 repeats (default 0.1 s and 5)")
    ap.add_argument("--seeds", type=int, default=3, help="operand seeds per case (default 3)")
    ap.add_argument("--target", type=float, default=None, help="seconds per measurement")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--torch-threads", type=int, default=None, metavar="N",
                    help="torch.set_num_threads(N) (default: torch's own choice)")
    args = ap.parse_args(argv)
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    if not (args.torch or args.jax or args.dask_demo):
        args.torch = args.jax = True
    target, repeats = (0.02, 3) if args.quick else (0.1, 5)
    target = args.target or target
    header = machine_header()
    header.append(f"timing     : {args.seeds} operand seed(s); per seed, every tool checked, "
                  f"then {repeats} interleaved measurements of ~{target} s each after a "
                  "warm-up call; median over seeds of the per-seed medians")
    print("```" if args.markdown else "", end="\n" if args.markdown else "")
    print("\n".join(header))
    if args.markdown:
        print("```")
    cases = [c for c in CASES if args.filter in c.name]
    runs: list[Callable[[], int]] = []
    if args.torch:
        runs.append(lambda: torch_suite(cases, args.seeds, target, repeats, args.markdown))
    if args.jax:
        runs.append(lambda: jax_suite(cases, args.seeds, target, repeats, args.markdown))
    if args.dask_demo:
        runs.append(lambda: dask_demo(args.workers))
    status = 0
    for run in runs:
        status |= run()
    return status


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    raise SystemExit(main())
