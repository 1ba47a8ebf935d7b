"""The memory a plan reports against the memory a call takes, on numpy and torch.

For every case: ``Plan.peak_bytes`` (numpy) or ``einopt.run.memory.peak_bytes(plan,
"torch")`` against the measured peak of one warm call above its inputs: on numpy from
``tracemalloc`` (numpy reports every array buffer to it), on torch from the profiler's
allocation events (``profile_memory=True``: each op's allocations at its start, each
free at its time). Cases:

- ``corpus``: the instances of ``dev.json`` and ``realistic.json`` small enough to run
  (at most ``--max-flops`` flops and 256 MB of peak), operands random;
- ``structured``: convolutions as einsums with patterns (forward, weight gradient,
  per-example gradient norms, strided, dilated, grouped, transposed, separable), the
  Hessian-trace einsum, a one-hot gather and a delta, at the sizes of
  ``benchmarks/conv.py`` and ``benchmarks/quantities.py`` (smaller with ``--quick``);
- ``limit``: plans made with ``memory_limit`` half their unlimited peak, where
  the measured peak must also be at most the limit (in bytes) plus the call's objects.

Prints one row per case and the worst ratio measured / reported; exits 1 when a ratio is
above 1.25 or a limited plan exceeds its limit. Run
``python benchmarks/memory.py [--quick] [--markdown] [--no-torch]``.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    from .core import machine_header, print_table
except ImportError:  # run as a script: benchmarks/ is on sys.path
    from core import machine_header, print_table

from _paths_problems import DEFAULT_CORPUS, load_corpus  # noqa: E402

import einopt
from einopt.run.memory import (
    CALL_OVERHEAD_BYTES,
    peak_bytes,
    peak_elements,
    profiled_peak,
    traced_peak,
)

TOLERANCE = 1.25
#: limited plans with more slices are reported, not run (each slice is a Python loop)
MAX_SLICES = 5000
#: networks with more tensors are not refitted under a limit (each trial slice meters
#: the whole program: seconds per trial at 30,000 tensors)
MAX_FIT = 2000

Case = tuple[str, str, list[Any]]  # name, equation, operands (arrays or structured)


def numpy_peak(fn) -> int:
    """Bytes one call of ``fn`` allocates at its peak (``tracemalloc``)."""
    gc.collect()
    return traced_peak(fn)


def corpus_cases(max_flops: float) -> list[Case]:
    """Corpus instances cheap enough to evaluate, with random float64 operands (read by
    the path benchmark's reader, labels as the corpus gives them)."""
    rng = np.random.default_rng(0)
    out: list[Case] = []
    for path in DEFAULT_CORPUS:
        if not path.exists():
            continue
        for p in load_corpus(path, do_relabel=False)[0]:
            try:
                plan = einopt.plan(p.eq, *p.shapes)
            except einopt.EinsumError:
                continue
            if plan.flops > max_flops or plan.peak_bytes > 256 * 2**20:
                continue
            ops = [rng.uniform(0.5, 1.0, s) for s in p.shapes]
            out.append((f"{path.stem}:{p.name}", p.eq, ops))
    return out


def structured_cases(quick: bool) -> list[Case]:
    """Convolutions and other structured einsums at the conv and quantities benchmarks'
    sizes (float32)."""
    rng = np.random.default_rng(1)
    n, c, h = (8, 16, 16) if quick else (32, 64, 32)

    def r(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32)

    pat = einopt.conv_pattern(h, 3, padding=1)
    s2 = einopt.conv_pattern(h, 3, stride=2, padding=1)
    d2 = einopt.conv_pattern(h, 3, padding=2, dilation=2)
    x, w, g = r(n, c, h, h), r(c, c, 3, 3), r(n, c, h, h)
    g2 = r(n, c, s2.output_size, s2.output_size)
    idx = rng.integers(0, 1000, size=(n, 64))
    return [
        ("conv forward", "nchw,kcab,axh,byw->nkxy", [x, w, pat, pat]),
        ("conv weight gradient", "nchw,axh,byw,nkxy->kcab", [x, pat, pat, g]),
        ("conv input gradient", "nkxy,kcab,axh,byw->nchw", [g, w, pat, pat]),
        ("conv per-example norms", "nchw,axh,byw,nkxy,nctu,azt,bqu,nkzq->n",
         [x, pat, pat, g, x, pat, pat, g]),
        ("conv stride 2", "nchw,kcab,axh,byw->nkxy", [x, w, s2, s2]),
        ("conv stride 2 input gradient", "nkxy,kcab,axh,byw->nchw", [g2, w, s2, s2]),
        ("conv dilation 2", "nchw,kcab,axh,byw->nkxy", [x, w, d2, d2]),
        ("depthwise", "nchw,cab,axh,byw->ncxy", [x, r(c, 3, 3), pat, pat]),
        ("separable", "nchw,cab,axh,byw,mc->nmxy", [x, r(c, 3, 3), pat, pat, r(c, c)]),
        ("hessian trace conv", "ncij,ncij,kai,lbj->n", [x, x, pat, pat]),
        ("per-example grads linear", "ni,nj->nij", [r(n * 8, 256), r(n * 8, 128)]),
        ("norms linear", "ni,ni,nj,nj->n", [r(256, 1024)] * 2 + [r(256, 1024)] * 2),
        ("embedding gather", "ntv,vd->ntd", [einopt.one_hot(idx, 1000), r(1000, 128)]),
        ("delta", "ij,jk,jl->jkl", [r(256, 64), einopt.delta(64), r(64, 32)]),
    ]


def _run(eq: str, ops: Sequence[Any], memory_limit: int | None = None) -> Any:
    return einopt.plan(eq, *ops, memory_limit=memory_limit)


def compare(name: str, backend: str, got: int, told: int, rows: list[list[str]]) -> list[str]:
    """One row of measured against reported bytes; the failure, if the ratio is too high."""
    ratio = got / told
    rows.append([name, backend, _mib(told), _mib(got), f"{ratio:.2f}"])
    return [f"{name} ({backend}): measured {got} > {TOLERANCE} x {told}"] \
        if ratio > TOLERANCE else []


def worst_of(rows: list[list[str]], backend: str) -> str:
    """The largest ratio of ``backend``'s rows, and its case."""
    ratio, name = max((float(r[4]), r[0]) for r in rows if r[1] == backend)
    return f"{ratio:.2f} ({name})"


def measure_numpy(cases: Sequence[Case], rows: list[list[str]], limit_rows: list[list[str]]
                  ) -> list[str]:
    failures: list[str] = []
    for name, eq, ops in cases:
        progress(f"numpy: {name}")
        plan = _run(eq, ops)
        plan(*ops)  # compiled once, outside the measurement
        got = numpy_peak(lambda p=plan, o=ops: p(*o))
        # a structured plan leaves the dtype to the call: its figure for the operands'
        item = np.result_type(*[o for o in ops if isinstance(o, np.ndarray)]).itemsize
        told = peak_bytes(plan, "numpy", item)
        failures += compare(name, "numpy", got, told, rows)
        limit = (told - CALL_OVERHEAD_BYTES) // item // 2
        if limit < math.prod(plan.output_shape) * 2 or plan.network.num_tensors > MAX_FIT:
            continue
        try:
            small = _run(eq, ops, limit)
        except einopt.EinsumError as e:
            limit_rows.append([name, str(limit), "-", "-", f"refused: {e}"[:80]])
            continue
        if small.num_slices > MAX_SLICES:
            limit_rows.append([name, str(limit), _mib(peak_bytes(small, "numpy", item)), "-",
                               f"{_count(small.num_slices)} slices: not run"])
            continue
        small(*ops)
        got_small = numpy_peak(lambda p=small, o=ops: p(*o))
        told_small = peak_bytes(small, "numpy", item)
        # the limit bounds the arrays' data; the call's Python objects (array objects,
        # operand lists: ~80 bytes a tensor) are reported in peak_bytes, not limited
        bound = limit * item + told_small - peak_elements(small) * item
        ok = got_small <= bound and got_small <= TOLERANCE * told_small
        limit_rows.append([name, str(limit), _mib(told_small), _mib(got_small),
                           f"{len(small.sliced)} sliced, {'ok' if ok else 'OVER'}"])
        if not ok:
            failures.append(f"{name} limit {limit}: measured {got_small} > bound {bound}")
    return failures


def measure_torch(cases: Sequence[Case], rows: list[list[str]]) -> list[str]:
    import torch

    failures: list[str] = []
    for name, eq, ops in cases:
        progress(f"torch: {name}")
        tops = [torch.from_numpy(o) if isinstance(o, np.ndarray) else o for o in ops]
        plan = _run(eq, tops)
        plan(*tops)
        got = profiled_peak(lambda p=plan, o=tops: p(*o))
        item = next(t.element_size() for t in tops if isinstance(t, torch.Tensor))
        told = peak_bytes(plan, "torch", item)
        failures += compare(name, "torch", got, told, rows)
    return failures


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _count(n: int) -> str:
    """``n``, as a power of ten once it is long."""
    return str(n) if n < 10**9 else f"10^{math.log10(n):.1f}"


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.3f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller structured cases")
    parser.add_argument("--max-flops", type=float, default=2e8,
                        help="largest corpus instance run (flops; default 2e8)")
    parser.add_argument("--no-torch", action="store_true", help="numpy only")
    parser.add_argument("--markdown", action="store_true", help="Markdown tables")
    args = parser.parse_args(argv)
    print("\n".join(machine_header()))
    cases = corpus_cases(args.max_flops) + structured_cases(args.quick)
    rows: list[list[str]] = []
    limit_rows: list[list[str]] = []
    failures = measure_numpy(cases, rows, limit_rows)
    print(f"numpy: {len(cases)} plans, worst measured / peak_bytes {worst_of(rows, 'numpy')}")
    if not args.no_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch: not installed")
        else:
            failures += measure_torch(cases, rows)
            print(f"torch: {len(cases)} plans, worst measured / peak_bytes "
                  f"{worst_of(rows, 'torch')}")
    print_table(["case", "backend", "peak_bytes MiB", "measured MiB", "ratio"], rows,
                args.markdown, [False, False, True, True, True])
    print("\nmemory_limit = half the unlimited peak (elements); measured must be "
          "at most the limit in bytes plus the call's objects (peak_bytes less its data)")
    print_table(["case", "limit", "peak_bytes MiB", "measured MiB", "result"], limit_rows,
                args.markdown, [False, True, True, True, False])
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
