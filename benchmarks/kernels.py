"""The measurements behind einopt's kernel choices, against the constants in the code.

Usage::

    python benchmarks/kernels.py               # every table (~2 minutes)
    python benchmarks/kernels.py --quick       # coarser grids, shorter measurements
    python benchmarks/kernels.py --only numpy-dot torch-dot --markdown
    python benchmarks/kernels.py --times       # also every measured time

Four choices are timed, each over a grid of sizes, both alternatives on the same
operands, their results checked against each other first:

- ``numpy-dot``: a batched inner product (``bc,bc->b``) on numpy, as numpy's einsum C
  loop or as a matmul of ``(B, 1, C)`` by ``(B, C, 1)``.  einopt takes the loop when
  ``C <= _DOT_EINSUM_CONTRACT`` and ``B >= _DOT_EINSUM_BATCH`` (``einopt.plan.kernels``).
- ``numpy-outer``: an outer product (``i,j->ij``, and batched ``bi,bj->bij``) on numpy,
  as numpy's einsum loop or as a broadcast multiply.  einopt takes the loop when the right
  (inner) factor has at most ``_OUTER_EINSUM_INNER`` elements.
- ``torch-dot``: a batched inner product on torch, as ``(a * b).sum(-1)`` or as a batched
  matmul.  einopt's torch backend takes the multiply-and-sum for
  ``_REDUCE_MIN <= C <= _REDUCE_MAX`` (``einopt.backends.torch``).
- ``torch-wide``: a matrix times each leading slice of a 3-d tensor (``(K, C) @ (N, C,
  L)``, a 1x1 convolution), as ``torch.matmul`` or as ``torch.nn.functional.conv1d``.
  The torch backend takes ``conv1d`` for float32 on the CPU, ``matmul`` otherwise.

The constants are read from the installed einopt, not copied here.  For each grid the
script prints the time ratio of the two alternatives per grid point with the code's pick,
where each row crosses over, and the threshold that would have picked best on this grid
(least total slowdown against always taking the faster one), beside the code's.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

try:
    from ._timing import format_seconds, measure_many
    from .core import limit_blas_threads, machine_header, print_table, progress
except ImportError:  # run as a script: benchmarks/ is on sys.path
    from _timing import format_seconds, measure_many
    from core import limit_blas_threads, machine_header, print_table, progress

#: a pick within this factor of the faster alternative counts as a tie, not a wrong pick
TIE = 1.10
#: a key of ``Grid.make``'s result that starts with this gives the expected result of the
#: informational alternative named by the rest of the key (checked, not compared)
EXPECT = "expect:"


def constant(module: str, name: str) -> Any:
    """A constant of einopt, read from the installed package (None if it is gone)."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


# --------------------------------------------------------------------------- grids


@dataclass
class Point:
    row: int
    col: int
    times: dict[str, float] = field(default_factory=dict)
    problem: str | None = None

    def ratio(self, a: str, b: str) -> float | None:
        if a in self.times and b in self.times:
            return self.times[a] / self.times[b]
        return None


@dataclass
class Grid:
    """One choice between two alternatives over a grid of (row, col) sizes."""

    title: str
    row_name: str
    col_name: str
    rows: list[int]
    cols: list[int]
    first: str  # the alternative in the numerator of the ratio
    second: str
    marks: tuple[str, str]  # one-letter names of first and second, for the cells
    make: Callable[[int, int], dict[str, Callable[[], Any]] | None]  # None: skip the point
    code_pick: Callable[[int, int], str]  # the alternative einopt's code takes
    code_text: str  # the code's rule, with its constants
    rules: list[tuple[str, Callable[[int, int], str]]] = field(default_factory=list)
    labels: dict[tuple[str, int], str] = field(default_factory=dict)  # ("row"|"col", value)
    extra: list[str] = field(default_factory=list)  # timed for information (--times) only
    points: list[Point] = field(default_factory=list)

    def label(self, kind: str, value: int) -> str:
        return self.labels.get((kind, value), str(value))


def _same(results: dict[str, Any]) -> str | None:
    """None when every alternative gave the same numbers, else which differ."""
    values = {k: np.asarray(v.detach().cpu() if hasattr(v, "detach") else v, dtype=np.float64)
              for k, v in results.items()}
    keys = list(values)
    ref = values[keys[0]].reshape(-1)
    for k in keys[1:]:
        got = values[k].reshape(-1)
        if got.shape != ref.shape or not np.allclose(got, ref, rtol=1e-4, atol=0):
            return f"{k} differs from {keys[0]}"
    return None


def run_grid(grid: Grid, target: float, repeats: int) -> None:
    for r in grid.rows:
        for c in grid.cols:
            fns = grid.make(r, c)
            if fns is None:
                continue
            point = Point(r, c)
            progress(f"{grid.title}: {grid.row_name}={r} {grid.col_name}={c}")
            expect = {k[len(EXPECT):]: fn for k, fn in fns.items() if k.startswith(EXPECT)}
            fns = {k: fn for k, fn in fns.items() if not k.startswith(EXPECT)}
            try:
                point.problem = _same({k: fns[k]() for k in (grid.first, grid.second)})
                for key, want in expect.items():
                    point.problem = point.problem or _same({f"{key} (expected)": want(),
                                                            key: fns[key]()})
            except Exception as exc:  # shown, never skipped silently
                point.problem = f"raised {type(exc).__name__}: {exc}"
            if point.problem is None:
                for key, t in measure_many(fns, target, repeats).items():
                    if isinstance(t, Exception):
                        point.problem = f"{key} raised {type(t).__name__}: {t}"
                    else:
                        point.times[key] = t.median
            grid.points.append(point)


def slowdown(grid: Grid, rule: Callable[[int, int], str]) -> float:
    """Geometric mean over the grid of (time of the rule's pick) / (faster time)."""
    logs = []
    for p in grid.points:
        if grid.first in p.times and grid.second in p.times:
            best = min(p.times[grid.first], p.times[grid.second])
            logs.append(math.log(p.times[rule(p.row, p.col)] / best))
    return math.exp(sum(logs) / len(logs)) if logs else math.nan


def report(grid: Grid, markdown: bool, show_times: bool) -> int:
    """Print the grid, its crossovers and the best-fitting rule; the number of problems."""
    first, second = grid.first, grid.second
    print(f"\n## {grid.title}\n")
    mark = dict(zip((first, second), grid.marks, strict=True))
    print(f"cell: time({first}) / time({second}) (below 1: {first} is faster), then the "
          f"code's pick ({grid.marks[0]} = {first}, {grid.marks[1]} = {second}), with '!' "
          f"where the pick is more than {TIE:.2f}x slower than the other\n")
    by_pos = {(p.row, p.col): p for p in grid.points}
    body = []
    for r in grid.rows:
        cells = [grid.label("row", r)]
        for c in grid.cols:
            p = by_pos.get((r, c))
            if p is None:
                cells.append("")
                continue
            ratio = p.ratio(first, second)
            if ratio is None:
                cells.append("ERROR")
                continue
            pick = grid.code_pick(r, c)
            picked, other = (p.times[pick], p.times[second if pick == first else first])
            flag = "!" if picked > TIE * other else ""
            cells.append(f"{ratio:.2f} {mark[pick]}{flag}")
        body.append(cells)
    print_table([f"{grid.row_name} \\ {grid.col_name}",
                 *(grid.label("col", c) for c in grid.cols)], body, markdown,
                [False, *[True] * len(grid.cols)])

    # Where each row crosses over: the first column at which the winner changes.
    print()
    cross = []
    for r in grid.rows:
        pts = [by_pos[(r, c)] for c in grid.cols if (r, c) in by_pos]
        pts = [p for p in pts if p.ratio(first, second) is not None]
        if not pts:
            continue
        winners = [first if (p.ratio(first, second) or 0) < 1 else second for p in pts]
        changes = [f"{grid.col_name}={grid.label('col', pts[k - 1].col)}->"
                   f"{grid.label('col', pts[k].col)}: {winners[k]}"
                   for k in range(1, len(pts)) if winners[k] != winners[k - 1]]
        cross.append([grid.label("row", r),
                      f"{winners[0]} at {grid.col_name}={grid.label('col', pts[0].col)}",
                      "; ".join(changes) or "none"])
    print_table([grid.row_name, "faster at the smallest size", "winner changes"], cross,
                markdown, [False, False, False])

    print()
    fits = sorted(((slowdown(grid, rule), text) for text, rule in grid.rules),
                  key=lambda f: f[0])
    code = slowdown(grid, grid.code_pick)
    lines = [f"code      : {grid.code_text}  -> slowdown {code:.3f}x (geometric mean over "
             "the grid of pick / faster)"]
    fits = [f for f in fits if not math.isnan(f[0])]
    if fits:
        best_value = fits[0][0]
        ties = [text for value, text in fits if value <= best_value * 1.001]
        lines.append(f"best rule : {ties[0]}  -> slowdown {best_value:.3f}x"
                     + (f" (as good: {'; '.join(ties[1:4])})" if len(ties) > 1 else ""))
    always = {k: slowdown(grid, lambda r, c, k=k: k) for k in (first, second)}
    lines.append("always    : " + ", ".join(f"{k} {v:.3f}x" for k, v in always.items()))
    wrong = []
    for p in grid.points:
        if p.ratio(first, second) is not None:
            lost = p.times[grid.code_pick(p.row, p.col)] / min(p.times[first], p.times[second])
            if lost > TIE:
                wrong.append(f"({grid.row_name}={grid.label('row', p.row)}, {grid.col_name}="
                             f"{grid.label('col', p.col)}: {lost:.2f}x)")
    lines.append(f"code picks the slower one (by > {TIE:.2f}x) at "
                 + (", ".join(wrong) or "no grid point"))
    if markdown:
        print("```")
    print("\n".join(lines))
    if markdown:
        print("```")

    if show_times:
        print()
        keys = [first, second, *grid.extra]
        print_table([grid.row_name, grid.col_name, *keys],
                    [[grid.label("row", p.row), grid.label("col", p.col),
                      *(format_seconds(p.times.get(k)) for k in keys)]
                     for p in grid.points], markdown, [True, True, *[True] * len(keys)])
    problems = [p for p in grid.points if p.problem]
    for p in problems:
        print(f"- PROBLEM {grid.row_name}={grid.label('row', p.row)} "
              f"{grid.col_name}={grid.label('col', p.col)}: {p.problem}")
    return len(problems)


# --------------------------------------------------------------------------- numpy


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def numpy_dot(quick: bool, max_elements: int) -> Grid:
    contract = constant("einopt.plan.kernels", "_DOT_EINSUM_CONTRACT")
    batch = constant("einopt.plan.kernels", "_DOT_EINSUM_BATCH")
    rows = [64, 1024, 16384, 262144] if quick else [16, 64, 256, 1024, 4096, 16384, 65536,
                                                     262144]
    cols = [2, 8, 16, 32, 256] if quick else [1, 2, 4, 8, 16, 32, 64, 256, 1024]

    def make(b: int, c: int) -> dict[str, Callable[[], Any]] | None:
        if b * c > max_elements:
            return None
        rng = _rng()
        x, y = rng.random((b, c)), rng.random((b, c))
        x3, y3 = x.reshape(b, 1, c), y.reshape(b, c, 1)  # einopt's kernel shapes
        return {"einsum loop": lambda: np.einsum("bc,bc->b", x, y),
                "matmul": lambda: np.matmul(x3, y3).reshape(b)}

    def code(b: int, c: int) -> str:
        if contract is None or batch is None:
            return "matmul"
        return "einsum loop" if c <= contract and b >= batch else "matmul"

    rules: list[tuple[str, Callable[[int, int], str]]] = [("never the loop",
                                                           lambda b, c: "matmul")]
    for cmax in cols:
        for bmin in rows:
            rules.append((f"loop when C <= {cmax} and B >= {bmin}",
                          lambda b, c, cm=cmax, bm=bmin: "einsum loop" if c <= cm and b >= bm
                          else "matmul"))
    return Grid("numpy-dot: batched inner product bc,bc->b, numpy.einsum loop vs matmul "
                "(B,1,C)@(B,C,1)", "B", "C", rows, cols, "einsum loop", "matmul", ("L", "M"),
                make, code,
                f"loop when C <= _DOT_EINSUM_CONTRACT = {contract} and "
                f"B >= _DOT_EINSUM_BATCH = {batch}", rules)


def numpy_outer(quick: bool, max_elements: int, batch: int) -> Grid:
    inner = constant("einopt.plan.kernels", "_OUTER_EINSUM_INNER")
    rows = [16, 256, 4096] if quick else [4, 16, 64, 256, 1024, 4096, 16384]
    cols = [64, 1024, 4096, 16384, 65536] if quick else [16, 64, 256, 1024, 2048, 4096, 8192,
                                                          16384, 65536]
    if batch > 1:
        rows = [r for r in rows if r <= 1024]

    def make(left: int, right: int) -> dict[str, Callable[[], Any]] | None:
        if batch * left * right > max_elements:
            return None
        rng = _rng()
        if batch == 1:
            x, y = rng.random(left), rng.random(right)
            xs, ys = x.reshape(left, 1), y.reshape(1, right)  # einopt's broadcast shapes
            return {"einsum loop": lambda: np.einsum("i,j->ij", x, y),
                    "broadcast *": lambda: np.multiply(xs, ys)}
        x, y = rng.random((batch, left)), rng.random((batch, right))
        xs, ys = x.reshape(batch, left, 1), y.reshape(batch, 1, right)
        return {"einsum loop": lambda: np.einsum("bi,bj->bij", x, y),
                "broadcast *": lambda: np.multiply(xs, ys)}

    def code(left: int, right: int) -> str:
        return "einsum loop" if inner is not None and right <= inner else "broadcast *"

    rules: list[tuple[str, Callable[[int, int], str]]] = [
        ("never the loop", lambda r, c: "broadcast *")]
    rules += [(f"loop when R <= {rmax}",
               lambda r, c, rm=rmax: "einsum loop" if c <= rm else "broadcast *")
              for rmax in cols]
    eq = "i,j->ij" if batch == 1 else f"bi,bj->bij (B={batch})"
    return Grid(f"numpy-outer: outer product {eq}, numpy.einsum loop vs broadcast multiply",
                "L" if batch == 1 else "L (left)", "R", rows, cols, "einsum loop",
                "broadcast *", ("L", "B"), make, code,
                f"loop when R (right factor) <= _OUTER_EINSUM_INNER = {inner}", rules)


# --------------------------------------------------------------------------- torch


NORM = "norm (a with itself)"


def torch_dot(quick: bool, max_elements: int, dtype_name: str) -> Grid:
    import torch

    lo = constant("einopt.backends.torch", "_REDUCE_MIN")
    hi = constant("einopt.backends.torch", "_REDUCE_MAX")
    dtype = getattr(torch, dtype_name)
    rows = [4, 256, 10000] if quick else [4, 64, 256, 1000, 10000, 100000]
    cols = [2, 8, 64, 1024, 16384, 262144] if quick else [2, 4, 8, 16, 64, 256, 1024, 4096,
                                                           8192, 16384, 65536, 262144, 1048576]

    def make(b: int, c: int) -> dict[str, Callable[[], Any]] | None:
        if b * c > max_elements:
            return None
        gen = torch.Generator().manual_seed(0)
        x = torch.rand((b, c), generator=gen, dtype=dtype)
        y = torch.rand((b, c), generator=gen, dtype=dtype)
        return {"multiply-sum": lambda: torch.sum(x * y, dim=-1),
                "matmul": lambda: torch.matmul(x.unsqueeze(-2), y.unsqueeze(-1)).reshape(b),
                # what the backend runs for a tensor with itself, at any C (no threshold)
                NORM: lambda: torch.linalg.vector_norm(x, dim=-1).square(),
                EXPECT + NORM: lambda: torch.sum(x * x, dim=-1)}

    def code(b: int, c: int) -> str:
        if lo is None or hi is None:
            return "matmul"
        return "multiply-sum" if lo <= c <= hi else "matmul"

    rules: list[tuple[str, Callable[[int, int], str]]] = [
        ("never the multiply-sum", lambda b, c: "matmul")]
    for k, cmin in enumerate(cols):
        for cmax in cols[k:]:
            rules.append((f"multiply-sum when {cmin} <= C <= {cmax}",
                          lambda b, c, a=cmin, z=cmax: "multiply-sum" if a <= c <= z
                          else "matmul"))
    return Grid(f"torch-dot: batched inner product on torch ({dtype_name}), "
                "(a*b).sum(-1) vs matmul (B,1,C)@(B,C,1)", "B", "C", rows, cols,
                "multiply-sum", "matmul", ("S", "M"), make, code,
                f"multiply-sum when _REDUCE_MIN = {lo} <= C <= _REDUCE_MAX = {hi}", rules,
                extra=[NORM])


#: (K, C, N, L): a (K, C) matrix times each of N (C, L) slices; the first is the 1x1
#: convolution of the depthwise-separable workload of benchmarks/conv.py (32x32 positions)
WIDE_SHAPES = [(128, 128, 32, 1024), (64, 64, 32, 1024), (256, 64, 8, 4096),
               (16, 512, 32, 64), (128, 128, 1, 4096), (32, 3, 64, 1024)]


def torch_wide(quick: bool) -> Grid:
    import torch

    shapes = WIDE_SHAPES[:3] if quick else WIDE_SHAPES
    dtypes = ["float32", "float64"]

    def make(k: int, d: int) -> dict[str, Callable[[], Any]] | None:
        kk, cc, nn, ll = shapes[k]
        dtype = getattr(torch, dtypes[d])
        gen = torch.Generator().manual_seed(0)
        a = torch.rand((kk, cc), generator=gen, dtype=dtype)
        b = torch.rand((nn, cc, ll), generator=gen, dtype=dtype)
        w = a.unsqueeze(-1)
        return {"conv1d": lambda: torch.nn.functional.conv1d(b, w),
                "matmul": lambda: torch.matmul(a, b)}

    def code(k: int, d: int) -> str:
        # TorchBackend.wide_matmul: conv1d for float32 on the CPU, matmul otherwise
        return "conv1d" if dtypes[d] == "float32" else "matmul"

    rules: list[tuple[str, Callable[[int, int], str]]] = [
        ("always matmul", lambda k, d: "matmul"), ("always conv1d", lambda k, d: "conv1d"),
        ("conv1d for float32 only", code)]
    labels = {("col", d): name for d, name in enumerate(dtypes)}
    labels.update({("row", k): f"{kk}x{cc} @ {nn}x{cc}x{ll}"
                   for k, (kk, cc, nn, ll) in enumerate(shapes)})
    return Grid("torch-wide: (K,C) @ (N,C,L) on the CPU, conv1d vs matmul", "K x C @ N x C x L",
                "dtype", list(range(len(shapes))), [0, 1], "conv1d", "matmul", ("C", "M"), make,
                code, "TorchBackend.wide_matmul: conv1d when float32 on the CPU, else matmul",
                rules, labels)


# --------------------------------------------------------------------------- main

SECTIONS = ("numpy-dot", "numpy-outer", "torch-dot", "torch-wide")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="coarser grids, ~0.01 s per measurement and 3 repeats "
                             "(default: 0.05 s and 5)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--markdown", action="store_true", help="Markdown tables")
    parser.add_argument("--times", action="store_true", help="also print every measured time")
    parser.add_argument("--torch-dtype", default="float64", choices=["float32", "float64"],
                        help="dtype of the torch-dot grid (default float64)")
    parser.add_argument("--max-elements", type=int, default=1 << 22,
                        help="largest operand, in elements (default 2^22)")
    parser.add_argument("--blas-threads", type=int, metavar="N", default=None,
                        help="limit BLAS to N threads (default: leave the BLAS setup alone)")
    parser.add_argument("--torch-threads", type=int, metavar="N", default=None,
                        help="torch.set_num_threads(N) (default: torch's own choice)")
    args = parser.parse_args(argv)
    blas_note = limit_blas_threads(args.blas_threads, argv) if args.blas_threads else None
    target, repeats = (0.01, 3) if args.quick else (0.05, 5)

    header = machine_header()
    if blas_note:
        header.append(f"blas limit : {blas_note}")
    torch_wanted = any(s.startswith("torch") for s in args.only)
    torch_mod = None
    if torch_wanted:
        try:
            import torch as torch_mod
        except ImportError:
            header.append("torch      : not installed (torch tables skipped)")
    if torch_mod is not None:
        if args.torch_threads:
            torch_mod.set_num_threads(args.torch_threads)
        header.append(f"torch      : {torch_mod.__version__}, "
                      f"{torch_mod.get_num_threads()} threads")
    header.append(f"timing     : per grid point, the alternatives' results compared, then "
                  f"{repeats} interleaved measurements of ~{target} s each after a warm-up "
                  "call (time.perf_counter, gc off); median")
    if args.markdown:
        print("```")
    print("\n".join(header))
    if args.markdown:
        print("```")

    grids: list[Grid] = []
    if "numpy-dot" in args.only:
        grids.append(numpy_dot(args.quick, args.max_elements))
    if "numpy-outer" in args.only:
        grids.append(numpy_outer(args.quick, args.max_elements, 1))
        grids.append(numpy_outer(args.quick, args.max_elements, 64))
    if torch_mod is not None and "torch-dot" in args.only:
        grids.append(torch_dot(args.quick, args.max_elements, args.torch_dtype))
    if torch_mod is not None and "torch-wide" in args.only:
        grids.append(torch_wide(args.quick))

    problems = 0
    for grid in grids:
        run_grid(grid, target, repeats)
        problems += report(grid, args.markdown, args.times)
    print(f"\nchecks: {'FAILED' if problems else 'every alternative agreed at every point'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
