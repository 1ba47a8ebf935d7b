"""einopt on torch, jax and dask arrays, side by side with each library's own einsum.

Usage::

    python benchmarks/backends.py --torch            # core suite on torch tensors
    python benchmarks/backends.py --jax              # core suite under jax.jit
    python benchmarks/backends.py --dask-demo        # a 2^30-element contraction, sliced
    python benchmarks/backends.py --torch --jax --markdown

torch: einopt.einsum vs torch.einsum (its opt_einsum strategy on, when opt_einsum is
installed) vs opt_einsum.contract on torch tensors, float64, the suite of
``benchmarks/core.py``. jax: ``jax.jit`` of einopt.einsum vs ``jax.jit`` of
``jax.numpy.einsum``. Every result is checked against numpy before it is timed.
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

try:
    from ._timing import format_seconds, measure
    from .core import CASES, Case, geometric_mean, machine_header, print_table
except ImportError:  # run as a script: benchmarks/ is on sys.path
    from _timing import format_seconds, measure
    from core import CASES, Case, geometric_mean, machine_header, print_table

import einopt


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}"


def _check(name: str, got: Any, want: np.ndarray) -> None:
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-9, atol=1e-12,
                               err_msg=f"{name}: einopt differs from numpy")


def torch_suite(cases: Sequence[Case], target: float, markdown: bool) -> list[float]:
    import torch

    try:
        import opt_einsum
    except ImportError:
        opt_einsum = None
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"torch.backends.opt_einsum enabled: {torch.backends.opt_einsum.enabled}")
    rows, ratios = [], []
    for case in cases:
        ops = case.operands()
        tensors: list[Any] = []
        for k, x in enumerate(ops):
            tensors.append(tensors[case.same[k]] if k in case.same else torch.from_numpy(x))
        _check(case.name, einopt.einsum(case.eq, *tensors).numpy(),
               np.einsum(case.eq, *ops, optimize=True))
        ours = measure(lambda: einopt.einsum(case.eq, *tensors), target).median
        theirs = measure(lambda: torch.einsum(case.eq, *tensors), target).median
        oe = None
        if opt_einsum is not None:
            oe = measure(lambda: opt_einsum.contract(case.eq, *tensors, backend="torch"),
                         target).median
        hand = None
        if case.name == "grad-norm":
            b, a = tensors[0], tensors[2]
            vn = torch.linalg.vector_norm
            hand = measure(lambda: vn(b, dim=1) ** 2 * vn(a, dim=1) ** 2, target).median
        ratios.append(ours / theirs)
        rows.append([case.name, case.eq, format_seconds(ours), format_seconds(theirs),
                     format_seconds(oe) if oe else "-", _ratio(ours, theirs), _ratio(ours, oe),
                     _ratio(ours, hand) if hand else ""])
    print_table(["case", "equation", "einopt", "torch.einsum", "opt_einsum", "/torch",
                 "/oe", "/hand"], rows, markdown, [False, False] + [True] * 6)
    print(f"geometric mean einopt / torch.einsum: {geometric_mean(ratios):.3f}; "
          f"worst {max(ratios):.2f}")
    return ratios


def jax_suite(cases: Sequence[Case], target: float, markdown: bool) -> list[float]:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    print(f"\njax {jax.__version__} on {jax.devices()[0].platform}, float64, under jax.jit")
    rows, ratios = [], []
    for case in cases:
        ops = case.operands()
        arrays = [jnp.asarray(x) for x in ops]
        ours_fn = jax.jit(lambda *xs, eq=case.eq: einopt.einsum(eq, *xs))
        theirs_fn = jax.jit(lambda *xs, eq=case.eq: jnp.einsum(eq, *xs))
        _check(case.name, ours_fn(*arrays), np.einsum(case.eq, *ops, optimize=True))
        ours = measure(lambda: ours_fn(*arrays).block_until_ready(), target).median
        theirs = measure(lambda: theirs_fn(*arrays).block_until_ready(), target).median
        ratios.append(ours / theirs)
        rows.append([case.name, case.eq, format_seconds(ours), format_seconds(theirs),
                     _ratio(ours, theirs)])
    print_table(["case", "equation", "einopt (jit)", "jnp.einsum (jit)", "ratio"], rows,
                markdown, [False, False, True, True, True])
    print(f"geometric mean einopt / jax.numpy.einsum: {geometric_mean(ratios):.3f}; "
          f"worst {max(ratios):.2f}")
    return ratios


def dask_demo(workers: int) -> None:
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
    assert math.isclose(float(got), float(serial), rel_tol=1e-9)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--torch", action="store_true")
    ap.add_argument("--jax", action="store_true")
    ap.add_argument("--dask-demo", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--filter", default="")
    ap.add_argument("--target", type=float, default=0.2, help="seconds per measurement")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    if not (args.torch or args.jax or args.dask_demo):
        args.torch = args.jax = True
    print("\n".join(machine_header()))
    cases = [c for c in CASES if args.filter in c.name]
    runs: list[Callable[[], Any]] = []
    if args.torch:
        runs.append(lambda: torch_suite(cases, args.target, args.markdown))
    if args.jax:
        runs.append(lambda: jax_suite(cases, args.target, args.markdown))
    if args.dask_demo:
        runs.append(lambda: dask_demo(args.workers))
    for run in runs:
        run()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    raise SystemExit(main())
