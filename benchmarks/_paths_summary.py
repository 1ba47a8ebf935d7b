"""Summaries of the path-search benchmark, printed and returned for ``--json``.

All comparisons are made on log10 costs (medians over seeds), so nothing overflows; a
ratio is printed as a number, or as ``10^x`` beyond a million.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from _paths_problems import Problem, log2_int
from _paths_tools import TIE_RTOL, Run, Tool, same_cost
from core import print_table

Rows = list[tuple[Problem, dict[str, list[Run]]]]

TIE_LOG10 = math.log10(1 + TIE_RTOL)  # a 1e-9 relative tie, in log10
#: the corpus gives its best costs to 4 decimals of log10: a cost within this of one is
#: the same cost, and only a cost below it by more lowers the best known
BEST_TOL_LOG10 = 1e-4


def median_of(runs: Sequence[Run], what: str) -> float | None:
    """Median over the runs that succeeded of log10 flops, log2 size or seconds."""
    pick = {"flops": lambda r: r.log10_flops, "size": lambda r: log2_int(r.max_size),
            "time": lambda r: r.seconds}[what]
    values = [v for v in (pick(r) for r in runs if r.ok) if v is not None]
    return statistics.median(values) if values else None


def best_of(problem: Problem, results: dict[str, list[Run]]) -> tuple[float | None, str]:
    """log10 of the best known cost and who found it: the corpus' figure, lowered by any
    cheaper path of this run (any tool, any seed)."""
    found = [(r.log10_flops, key) for key, runs in results.items() for r in runs if r.ok]
    run_best = min(found) if found else None
    corpus = problem.best_known_log10
    if corpus is not None and (run_best is None or run_best[0] >= corpus - BEST_TOL_LOG10):
        return corpus, f"corpus: {problem.best_known_by or '?'}"
    return run_best if run_best else (None, "")


def ratio_text(log10_ratio: float) -> str:
    """A cost ratio given as its log10, printed as a plain number or as 10^x if huge."""
    if abs(log10_ratio) < 6:
        return f"{10 ** log10_ratio:.3g}"
    return f"10^{log10_ratio:.1f}"


def heading(text: str, markdown: bool) -> None:
    print()
    print(f"### {text}" if markdown else f"== {text} ==")
    print()


def pair_stats(pairs: Sequence[tuple[str, float, float]], tol: float) -> dict[str, Any] | None:
    """W/T/L of the first cost against the second, the share <= it, and the geomean,
    worst and best ratio; ``pairs`` holds (problem, log10 first, log10 second)."""
    if not pairs:
        return None
    diffs = sorted((a - b, name) for name, a, b in pairs)
    ties = sum(abs(d) <= tol for d, _ in diffs)
    wins = sum(d < -tol for d, _ in diffs)
    return {"n": len(diffs), "wins": wins, "ties": ties, "losses": len(diffs) - wins - ties,
            "le": wins + ties, "fraction_le": (wins + ties) / len(diffs),
            "geomean_log10": sum(d for d, _ in diffs) / len(diffs),
            "worst_log10": diffs[-1][0], "worst_problem": diffs[-1][1],
            "best_log10": diffs[0][0], "best_problem": diffs[0][1]}


def hyper_vs_cotengra(rows: Rows, times: Sequence[float], markdown: bool) -> dict[str, Any]:
    """(a) einopt hyper against cotengra at the same max_time, medians over seeds."""
    heading("(a) einopt hyper vs cotengra HyperOptimizer, same max_time, median cost over "
            "seeds", markdown)
    out: dict[str, Any] = {}
    body = []
    for t in times:
        mine, other = f"einopt hyper {t:g}s", f"ctg {t:g}s"
        pairs = [(p.name, a, b) for p, r in rows
                 if (a := median_of(r[mine], "flops")) is not None
                 and (b := median_of(r[other], "flops")) is not None]
        c = out[f"{t:g}"] = pair_stats(pairs, TIE_LOG10)
        if c is None:
            body.append([f"{t:g} s", "0", "-", "-", "-", "-", "-"])
            continue
        body.append([f"{t:g} s", str(c["n"]), f"{c['le']} ({c['fraction_le']:.0%})",
                     f"{c['wins']}/{c['ties']}/{c['losses']}", ratio_text(c["geomean_log10"]),
                     f"{ratio_text(c['worst_log10'])} ({c['worst_problem']})",
                     f"{ratio_text(c['best_log10'])} ({c['best_problem']})"])
    print_table(["max_time", "problems", "hyper <= ctg", "hyper W/T/L", "geomean hyper/ctg",
                 "worst hyper/ctg", "best hyper/ctg"], body, markdown,
                [False, True, True, True, True, False, False])
    return out


def versus_best(rows: Rows, tools: Sequence[Tool], markdown: bool) -> dict[str, Any]:
    """(b) every column's median cost against the best known cost of each problem."""
    heading("(b) every column against the best known cost (corpus figure, lowered by this "
            "run)", markdown)
    best = {p.name: best_of(p, r) for p, r in rows}
    out: dict[str, Any] = {"columns": {}, "hyper_over_10x": {}, "new_best": []}
    body = []
    for tool in tools:
        gaps = [(m - best[p.name][0], p.name) for p, r in rows
                if (m := median_of(r[tool.key], "flops")) is not None
                and best[p.name][0] is not None]
        hits = sum(g <= BEST_TOL_LOG10 for g, _ in gaps)
        entry = {"n": len(gaps), "at_best": hits,
                 "geomean_log10": sum(g for g, _ in gaps) / len(gaps) if gaps else None,
                 "worst_log10": max(gaps)[0] if gaps else None,
                 "worst_problem": max(gaps)[1] if gaps else None}
        out["columns"][tool.key] = entry
        if tool.key.startswith("einopt hyper"):
            out["hyper_over_10x"][tool.key] = [{"problem": n, "log10_ratio": g}
                                               for g, n in sorted(gaps, reverse=True) if g > 1]
        body.append([tool.key, str(len(gaps)), str(hits),
                     ratio_text(entry["geomean_log10"]) if gaps else "-",
                     f"{ratio_text(max(gaps)[0])} ({max(gaps)[1]})" if gaps else "-"])
    print_table(["column", "problems", "at best", "geomean cost/best", "worst cost/best"],
                body, markdown, [False, True, True, True, False])
    print()
    for key, over in out["hyper_over_10x"].items():
        print(f"{key} more than 10x the best known: {len(over) or 'none'}"
              + "".join(f"\n- {o['problem']}: {ratio_text(o['log10_ratio'])}" for o in over))
    for p, _ in rows:
        value, by = best[p.name]
        if p.best_known_log10 is not None and value is not None and not by.startswith("corpus"):
            out["new_best"].append({"problem": p.name, "corpus": p.best_known_log10,
                                    "found": value, "by": by})
    print(f"cheaper than the corpus' best known: {len(out['new_best']) or 'none'}"
          + "".join(f"\n- {b['problem']}: {b['found']:.4f} by {b['by']} (corpus "
                    f"{b['corpus']:.4f})" for b in out["new_best"]))
    return out


def auto_vs_greedy(rows: Rows, markdown: bool) -> dict[str, Any]:
    """(c) einopt auto against opt_einsum greedy: exact costs, and planning time above 100
    tensors."""
    heading("(c) einopt auto vs opt_einsum greedy", markdown)
    wins = ties = losses = 0
    worse: list[dict[str, Any]] = []
    ratios: list[tuple[float, str]] = []
    for p, r in rows:
        a, g = r["einopt auto"][0], r["oe greedy"][0]
        if not (a.ok and g.ok):
            continue
        if same_cost(a.flops, g.flops):
            ties += 1
        elif a.flops < g.flops:
            wins += 1
        else:
            losses += 1
            worse.append({"problem": p.name,
                          "log10_ratio": (a.log10_flops or 0) - (g.log10_flops or 0)})
        if p.n_tensors > 100 and a.seconds and g.seconds:
            ratios.append((g.seconds / a.seconds, p.name))
    out: dict[str, Any] = {"wins": wins, "ties": ties, "losses": losses, "auto_worse": worse,
                           "time_ratio_over_100_tensors": None}
    print(f"cost, auto vs greedy: W/T/L {wins}/{ties}/{losses} (1e-9 relative ties)")
    print(f"auto worse than greedy: {len(worse) or 'none'}"
          + "".join(f"\n- {w['problem']}: {ratio_text(w['log10_ratio'])}x" for w in worse))
    if ratios:
        geo = math.exp(sum(math.log(x) for x, _ in ratios) / len(ratios))
        lo, hi = min(ratios), max(ratios)
        out["time_ratio_over_100_tensors"] = {"n": len(ratios), "geomean": geo, "min": lo[0],
                                              "min_problem": lo[1], "max": hi[0],
                                              "max_problem": hi[1]}
        print(f"planning time oe greedy / einopt auto, {len(ratios)} problem(s) above 100 "
              f"tensors: min {lo[0]:.2f} ({lo[1]}), geomean {geo:.2f}, max {hi[0]:.2f} "
              f"({hi[1]}); above 1 means einopt auto plans faster")
    return out


def overruns(rows: Rows, times: Sequence[float], markdown: bool) -> dict[str, Any]:
    """(d) wall time of the anytime searches over their max_time, worst problem and seed."""
    heading("(d) wall time / max_time of the anytime searches (max over problems and seeds)",
            markdown)
    out: dict[str, Any] = {}
    body = []
    for t in times:
        for key in (f"einopt hyper {t:g}s", f"ctg {t:g}s"):
            worst = max(((run.seconds / t, p.name, run.seed) for p, r in rows for run in r[key]
                         if run.ok and run.seconds is not None), default=None)
            out[key] = None if worst is None else {"max_ratio": worst[0], "problem": worst[1],
                                                   "seed": worst[2]}
            body.append([key, "-" if worst is None else f"{worst[0]:.2f}",
                         "-" if worst is None else f"{worst[1]} (seed {worst[2]})"])
    print_table(["column", "max wall / max_time", "where"], body, markdown,
                [False, True, False])
    return out


def summarize(rows: Rows, tools: Sequence[Tool], times: Sequence[float],
              markdown: bool) -> dict[str, Any]:
    """Print every summary; return them for ``--json``."""
    return {"hyper_vs_cotengra": hyper_vs_cotengra(rows, times, markdown),
            "vs_best": versus_best(rows, tools, markdown),
            "auto_vs_oe_greedy": auto_vs_greedy(rows, markdown),
            "wall_over_budget": overruns(rows, times, markdown)}
