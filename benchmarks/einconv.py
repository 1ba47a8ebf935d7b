"""Einconv: how many decompositions a convolution kernel has, how long listing and
pricing them takes, and what the optimizer makes of the named ones.

Prints, per spatial dimension and number of inner indices: the count (all and
connected) and the time to enumerate; then the time to enumerate and price every 3-d
decomposition with one inner index for a layer (the issue's bound: 30 s); then, for a
2-d layer, the named decompositions and the front of parameters against planned flops
and the pick under a quarter of the dense layer's parameters. Run
``python benchmarks/einconv.py [--markdown] [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

try:
    from .core import machine_header, print_table
except ImportError:  # run as a script: benchmarks/ is on sys.path
    from core import machine_header, print_table

from einopt.cost import count_text
from einopt.nn import enumerate_decompositions, price

COUNTS = [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2), (3, 0), (3, 1), (3, 2)]


def counts(quick: bool, markdown: bool) -> None:
    rows = []
    for d, m in COUNTS:
        if quick and (d, m) == (3, 2):
            continue
        t0 = time.perf_counter()
        found = enumerate_decompositions(d, m)
        dt = time.perf_counter() - t0
        named = sorted({n for e in found for n in e.names})
        rows.append([f"{d}-d", str(m), str(len(found)), str(found.count_connected),
                     f"{dt:.2f}", ", ".join(named) or "-"])
    print_table(["kernel", "inner", "decompositions", "connected", "seconds", "named"],
                rows, markdown, [False, True, True, True, True, False])


def price_3d(markdown: bool) -> float:
    """Seconds to enumerate and price every 3-d decomposition with one inner index."""
    t0 = time.perf_counter()
    found = enumerate_decompositions(3, 1)
    t1 = time.perf_counter()
    price(found, 32, 32, 3, inner_size=8, input_size=16)
    t2 = time.perf_counter()
    print(f"\n3-d kernel, 1 inner index, layer 32 -> 32 channels, 3x3x3, bond 8, input 16^3: "
          f"{len(found)} decompositions enumerated in {t1 - t0:.2f} s, priced (parameters, "
          f"forward and training flops of einopt's plan) in {t2 - t1:.1f} s; total "
          f"{t2 - t0:.1f} s")
    return t2 - t0


def layer_2d(markdown: bool) -> None:
    cin = cout = 64
    budget = cin * cout * 9 // 4
    found = enumerate_decompositions(2, [0, 1, 2])
    fixed = price(found.connected, cin, cout, 3, inner_size=16, input_size=32)
    fitted = price(found.connected, cin, cout, 3, input_size=32, budget=budget)
    dense = next(p for p in fixed if "standard" in p.decomposition.names)
    rows = []

    def row(tag: str, p) -> list[str]:
        bond = str(p.inner_size) if p.decomposition.inner else "-"
        return [tag, str(p.decomposition), bond, str(p.parameters),
                count_text(p.flops), count_text(p.train_flops), f"{dense.flops / p.flops:.1f}"]

    for p in fixed:
        if p.decomposition.names:
            rows.append(row("named, bond 16", p))
    for p in fixed.front():
        rows.append(row("front, bond 16", p))
    best = fitted.pick(budget)
    rows.append(row(f"pick(budget={budget})", best))
    for p in fitted:
        if p.decomposition.names and p is not best:
            rows.append(row(f"named, fitted to {budget}", p))
    print(f"\n2-d layer {cin} -> {cout} channels, 3x3, input 32x32, batch 1 "
          f"({len(fixed)} connected networks; flops planned by einopt)")
    print_table(["entry", "network", "bond", "parameters", "forward flops", "train flops",
                 "dense / flops"], rows, markdown,
                [False, False, True, True, True, True, True])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--markdown", action="store_true", help="Markdown tables")
    parser.add_argument("--quick", action="store_true", help="skip 3-d with 2 inner indices")
    args = parser.parse_args(argv)
    print("\n".join(machine_header()))
    counts(args.quick, args.markdown)
    seconds = price_3d(args.markdown)
    layer_2d(args.markdown)
    return 0 if seconds < 30 else 1


if __name__ == "__main__":
    sys.exit(main())
