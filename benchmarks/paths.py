"""Contraction-path quality and planning time: einopt vs opt_einsum vs cotengra.

Usage::

    python benchmarks/paths.py                      # full run, all corpus problems
    python benchmarks/paths.py --quick              # T=1 s only, problems with <= 64 tensors
    python benchmarks/paths.py --filter lattice --times 1,2 --skip-dp
    python benchmarks/paths.py --markdown --json paths.json

Every path, whichever tool found it, is priced by einopt itself
(``einopt.plan(eq, *shapes, optimize=path)``), so all columns use one cost function:
``log10(flops)``, ``log2(largest intermediate)`` and the wall time of the planning call.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    from ._timing import format_seconds
except ImportError:  # run as a script: benchmarks/ is on sys.path
    from _timing import format_seconds

import einopt

try:
    import opt_einsum
except ImportError:
    opt_einsum = None

try:
    import cotengra
except ImportError:
    cotengra = None

from core import machine_header as core_header  # noqa: E402 - beside this script
from core import print_table  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "dev.json"

DP_MAX_TENSORS = 40  # opt_einsum's dp is not even tried on larger networks
#: cotengra's HyperOptimizer stops after max_repeats trials or max_time seconds, whichever
#: comes first (default 128 trials); this many trials make max_time the limit everywhere
CTG_MAX_REPEATS = 10**6
#: cotengra's path is also contracted, on random operands, up to this many flops
RESULT_CHECK_FLOPS = 10**7
QUICK_MAX_TENSORS = 64  # --quick keeps the problems with at most this many tensors
TIE_RTOL = 1e-9  # two costs within this relative distance count as a tie


# --------------------------------------------------------------------------- problems


@dataclass
class Problem:
    name: str
    eq: str  # as given to every tool (after relabelling, if any)
    shapes: list[tuple[int, ...]]
    original_eq: str
    relabelled: dict[str, str] = field(default_factory=dict)  # corpus label -> new label

    @property
    def n_tensors(self) -> int:
        return len(self.shapes)

    def terms(self) -> tuple[list[str], str]:
        """Input label strings and the output label string (implicit output resolved)."""
        if "->" in self.eq:
            lhs, out = self.eq.split("->")
        else:
            lhs = self.eq
            counts: dict[str, int] = {}
            for ch in lhs.replace(",", ""):
                counts[ch] = counts.get(ch, 0) + 1
            out = "".join(sorted(c for c, k in counts.items() if k == 1))
        return lhs.split(","), out

    def size_dict(self) -> dict[str, int]:
        inputs, _ = self.terms()
        sizes: dict[str, int] = {}
        for term, shape in zip(inputs, self.shapes, strict=True):
            for label, dim in zip(term, shape, strict=True):
                sizes[label] = max(sizes.get(label, 1), dim)
        return sizes


def relabel(eq: str) -> tuple[str, dict[str, str]]:
    """Map every label that is not a letter (``str.isalpha``) to an unused letter.

    Some corpus equations use symbols such as ``×``, ``÷`` or digits as labels; renaming
    them changes neither the network nor any cost, and lets every tool read the same text.
    """
    used = {c for c in eq if c not in ",->"}
    mapping: dict[str, str] = {}
    code = 0x100
    for ch in dict.fromkeys(eq):  # first-appearance order
        if ch in ",->" or ch.isalpha():
            continue
        while not chr(code).isalpha() or chr(code) in used:
            code += 1
        mapping[ch] = chr(code)
        used.add(chr(code))
    if not mapping:
        return eq, mapping
    return "".join(mapping.get(c, c) for c in eq), mapping


def load_corpus(path: Path, do_relabel: bool) -> list[Problem]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    problems = []
    for item in raw:
        eq = item["eq"].replace(" ", "")
        new_eq, mapping = relabel(eq) if do_relabel else (eq, {})
        problems.append(Problem(item["name"], new_eq, [tuple(s) for s in item["shapes"]],
                                eq, mapping))
    return problems


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    status: str  # "ok", "error", "timeout", "unavailable", "skipped"
    flops: int | float | None = None
    max_size: int | float | None = None
    seconds: float | None = None  # wall time of the planning call only
    message: str = ""
    path: list[tuple[int, ...]] | None = None
    check: str = ""  # a failed check of the tool's own claims (cost, result); "" if none
    checked: str = ""  # what was checked, e.g. "cost" or "cost, result"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def log10_flops(self) -> float | None:
        return _log(self.flops, 10) if self.ok else None

    @property
    def log2_size(self) -> float | None:
        return _log(self.max_size, 2) if self.ok else None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "flops": None if self.flops is None else str(self.flops),
            "max_size": None if self.max_size is None else str(self.max_size),
            "log10_flops": self.log10_flops,
            "log2_max_size": self.log2_size,
            "seconds": self.seconds,
            "message": self.message,
            "path": None if self.path is None else [list(p) for p in self.path],
            "checked": self.checked,
            "check_failed": self.check,
        }


def _log(value: int | float | None, base: int) -> float | None:
    """Logarithm that works on arbitrarily large Python ints; 0 for values below 1."""
    if value is None:
        return None
    if value <= 1:
        return 0.0
    return math.log10(value) / math.log10(base) if base != 10 else math.log10(value)


def short_message(exc: BaseException, limit: int = 60) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def price(problem: Problem, path: Sequence[Sequence[int]]) -> tuple[Any, Any]:
    """einopt's flops and largest intermediate for a path in opt_einsum's linear format."""
    plan = einopt.plan(problem.eq, *problem.shapes, optimize=[tuple(p) for p in path])
    return plan.flops, plan.max_size


def priced(problem: Problem, path: Sequence[Sequence[int]], seconds: float) -> Result:
    path = [tuple(int(i) for i in p) for p in path]
    try:
        flops, size = price(problem, path)
    except Exception as exc:  # noqa: BLE001 - shown in the cell
        return Result("error", seconds=seconds, message="pricing: " + short_message(exc),
                      path=path)
    return Result("ok", flops, size, seconds, path=path)


# --------------------------------------------------------------------------- tools


@dataclass(frozen=True)
class Tool:
    key: str  # column header
    run: Callable[[Problem], Result]


def einopt_tool(strategy: str, max_time: float | None = None) -> Callable[[Problem], Result]:
    def run(problem: Problem) -> Result:
        kwargs: dict[str, Any] = {"optimize": strategy, "seed": 0}
        if max_time is not None:
            kwargs["max_time"] = max_time
        einopt.clear_caches()
        start = time.perf_counter()
        plan = einopt.plan(problem.eq, *problem.shapes, **kwargs)
        seconds = time.perf_counter() - start
        return Result("ok", plan.flops, plan.max_size, seconds,
                      path=[tuple(p) for p in plan.path])
    return run


def opt_einsum_tool(strategy: str) -> Callable[[Problem], Result]:
    def run(problem: Problem) -> Result:
        start = time.perf_counter()
        path, _ = opt_einsum.contract_path(problem.eq, *problem.shapes, shapes=True,
                                           optimize=strategy)
        seconds = time.perf_counter() - start
        return priced(problem, path, seconds)
    return run


def _dp_child(eq: str, shapes: list[tuple[int, ...]], conn: Any) -> None:
    try:
        start = time.perf_counter()
        path, _ = opt_einsum.contract_path(eq, *shapes, shapes=True, optimize="dp")
        conn.send(("ok", [tuple(p) for p in path], time.perf_counter() - start))
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        conn.send(("error", short_message(exc), None))
    finally:
        conn.close()


def opt_einsum_dp_tool(timeout: float) -> Callable[[Problem], Result]:
    """opt_einsum's ``dp`` in a child process, given up after ``timeout`` seconds."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")

    def run(problem: Problem) -> Result:
        if problem.n_tensors > DP_MAX_TENSORS:
            return Result("skipped", message=f"> {DP_MAX_TENSORS} tensors")
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_dp_child, args=(problem.eq, problem.shapes, child),
                           daemon=True)
        proc.start()
        child.close()
        try:
            if not parent.poll(timeout):
                return Result("timeout", message=f"> {timeout:g} s")
            status, payload, seconds = parent.recv()
        except EOFError:
            return Result("error", message=f"child exited with code {proc.exitcode}")
        finally:
            if proc.is_alive():
                proc.terminate()
            proc.join(5)
            parent.close()
        if status != "ok":
            return Result("error", message=payload)
        return priced(problem, payload, seconds)
    return run


def random_operands(problem: Problem, seed: int = 0) -> list[Any]:
    """Positive operands scaled so that every sum stays near 1: each tensor is divided by
    ``d ** (1/k)`` for each of its indices of size ``d`` shared by ``k`` tensors."""
    import numpy as np

    inputs, output = problem.terms()
    count: dict[str, int] = {}
    for term in inputs:
        for c in set(term):
            count[c] = count.get(c, 0) + 1
    sizes = problem.size_dict()
    rng = np.random.default_rng(seed)
    ops = []
    for term, shape in zip(inputs, problem.shapes, strict=True):
        scale = math.prod(sizes[c] ** (-1 / count[c]) for c in set(term) if c not in output)
        ops.append(rng.uniform(0.5, 1.5, shape) * scale)
    return ops


def check_path(problem: Problem, path: Sequence[Sequence[int]], flops: Any,
               claimed: Any) -> tuple[str, str]:
    """(what was checked, what failed) for a path another tool found: its own cost
    ``claimed`` against einopt's price ``flops``, and, on small enough networks, its
    result on random operands against einopt's own plan."""
    import numpy as np

    failed = []
    checked = ["cost"]
    if not math.isclose(float(claimed), float(flops), rel_tol=1e-9):
        failed.append(f"cost {float(claimed):.6g} != einopt's price {float(flops):.6g}")
    if opt_einsum is not None and flops <= RESULT_CHECK_FLOPS:
        checked.append("result")
        ops = random_operands(problem)
        theirs = np.asarray(opt_einsum.contract(problem.eq, *ops,
                                                optimize=[tuple(p) for p in path]))
        ours = np.asarray(einopt.einsum(problem.eq, *ops))
        if not np.all(np.isfinite(ours)):
            checked[-1] = "result (not finite, skipped)"
        elif theirs.shape != ours.shape or not np.allclose(theirs, ours, rtol=1e-6, atol=0):
            err = float(np.max(np.abs(theirs - ours) / np.abs(ours))) if theirs.shape == \
                ours.shape else math.inf
            failed.append(f"result along its path differs from einopt's (max relative "
                          f"error {err:.3g})")
    return ", ".join(checked), "; ".join(failed)


def cotengra_tool(max_time: float) -> Callable[[Problem], Result]:
    def run(problem: Problem) -> Result:
        inputs, output = problem.terms()
        opt = cotengra.HyperOptimizer(max_time=max_time, max_repeats=CTG_MAX_REPEATS,
                                      parallel=False, minimize="flops", progbar=False)
        start = time.perf_counter()
        tree = opt.search([tuple(t) for t in inputs], tuple(output), problem.size_dict())
        seconds = time.perf_counter() - start
        result = priced(problem, tree.get_path(), seconds)
        if result.ok and result.path is not None:
            try:
                result.checked, result.check = check_path(problem, result.path, result.flops,
                                                          tree.contraction_cost())
            except Exception as exc:  # noqa: BLE001 - reported as a failed check
                result.checked, result.check = "cost, result", f"check raised {short_message(exc)}"
        return result
    return run


def unavailable(message: str) -> Callable[[Problem], Result]:
    def run(problem: Problem) -> Result:
        return Result("unavailable", message=message)
    return run


def probe_einopt_hyper() -> str | None:
    """None if einopt knows the "hyper" strategy, else the reason it does not."""
    try:
        einopt.plan("ij,jk,kl->il", (2, 3), (3, 4), (4, 5), optimize="hyper", max_time=0.05,
                    seed=0)
    except einopt.EinsumError as exc:  # unknown strategy name
        return short_message(exc)
    except Exception as exc:  # noqa: BLE001 - a strategy that exists but fails is not usable
        return short_message(exc)
    return None


def build_tools(times: Sequence[float], skip_dp: bool, dp_timeout: float) -> list[Tool]:
    tools = [Tool("einopt greedy", einopt_tool("greedy")),
             Tool("einopt auto", einopt_tool("auto"))]
    hyper_missing = probe_einopt_hyper()
    for t in times:
        run = unavailable(hyper_missing) if hyper_missing else einopt_tool("hyper", t)
        tools.append(Tool(f"einopt hyper {t:g}s", run))
    if opt_einsum is None:
        missing = unavailable("opt_einsum not installed")
        tools += [Tool("oe greedy", missing), Tool("oe dp", missing), Tool("oe auto-hq", missing)]
    else:
        tools.append(Tool("oe greedy", opt_einsum_tool("greedy")))
        if skip_dp:
            tools.append(Tool("oe dp", lambda p: Result("skipped", message="--skip-dp")))
        else:
            tools.append(Tool("oe dp", opt_einsum_dp_tool(dp_timeout)))
        tools.append(Tool("oe auto-hq", opt_einsum_tool("auto-hq")))
    for t in times:
        run = cotengra_tool(t) if cotengra else unavailable("cotengra not installed")
        tools.append(Tool(f"ctg {t:g}s", run))
    return tools


def warm_up() -> None:
    """One untimed call of every tool, so imports and first-use set-up are not timed."""
    eq, shapes = "ab,bc,cd,da->", [(3, 4), (4, 5), (5, 6), (6, 3)]
    einopt.clear_caches()
    einopt.plan(eq, *shapes, optimize="greedy")
    einopt.plan(eq, *shapes, optimize="auto")
    if opt_einsum is not None:
        for strategy in ("greedy", "auto-hq"):
            opt_einsum.contract_path(eq, *shapes, shapes=True, optimize=strategy)
    if cotengra is not None:
        opt = cotengra.HyperOptimizer(max_time=0.2, max_repeats=4, parallel=False,
                                      progbar=False)
        opt.search([tuple("ab"), tuple("bc"), tuple("cd"), tuple("da")], (),
                   {c: 4 for c in "abcd"})
    einopt.clear_caches()


def run_problem(problem: Problem, tools: Sequence[Tool]) -> dict[str, Result]:
    results: dict[str, Result] = {}
    for tool in tools:
        progress(f"  {problem.name}: {tool.key} ...")
        try:
            results[tool.key] = tool.run(problem)
        except Exception as exc:  # noqa: BLE001 - one bad cell must not stop the run
            results[tool.key] = Result("error", message=short_message(exc))
            if os.environ.get("EINOPT_BENCH_TRACEBACKS"):
                traceback.print_exc()
    return results


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- output


def cell(result: Result, what: str) -> str:
    if result.status == "ok":
        if what == "flops":
            return f"{result.log10_flops:.2f}" + (" CHECK" if result.check else "")
        if what == "size":
            return f"{result.log2_size:.1f}"
        return format_seconds(result.seconds)
    if result.status == "error":
        return f"error: {result.message}"
    if result.status == "timeout":
        return "timeout"
    if result.status == "unavailable":
        return "unavailable"
    return "skipped"


def machine_header() -> list[str]:
    lines = list(core_header())
    lines.append(f"cotengra   : {cotengra.__version__ if cotengra else 'not installed'}")
    return lines


def heading(text: str, markdown: bool) -> None:
    print()
    print(f"### {text}" if markdown else f"== {text} ==")
    print()


# --------------------------------------------------------------------------- summary


def is_tie(a: int | float, b: int | float) -> bool:
    # exact for Python ints of any size; no float conversion of the costs themselves
    if isinstance(a, int) and isinstance(b, int):
        return abs(a - b) * 10**9 <= max(abs(a), abs(b))
    return abs(a - b) <= TIE_RTOL * max(abs(a), abs(b))


def compare(rows: Sequence[tuple[Problem, dict[str, Result]]], mine: str, other: str
            ) -> dict[str, Any] | None:
    """Flops of column ``mine`` against column ``other`` on the problems where both ran."""
    pairs = [(p, r[mine], r[other]) for p, r in rows if r[mine].ok and r[other].ok]
    if not pairs:
        return None
    wins = ties = losses = 0
    diffs: list[tuple[float, str]] = []  # log10(mine / other)
    for problem, a, b in pairs:
        if is_tie(a.flops, b.flops):
            ties += 1
        elif a.flops < b.flops:
            wins += 1
        else:
            losses += 1
        diffs.append((a.log10_flops - b.log10_flops, problem.name))
    worst = max(diffs)
    best = min(diffs)
    return {
        "n": len(pairs), "wins": wins, "ties": ties, "losses": losses,
        "fraction_le": (wins + ties) / len(pairs),
        "geomean_ratio_log10": sum(d for d, _ in diffs) / len(diffs),
        "worst_ratio_log10": worst[0], "worst_problem": worst[1],
        "best_ratio_log10": best[0], "best_problem": best[1],
    }


def ratio_text(log10_ratio: float) -> str:
    """A cost ratio given as its log10, printed as a plain number or as 10^x if huge."""
    if abs(log10_ratio) < 6:
        return f"{10 ** log10_ratio:.3g}"
    return f"10^{log10_ratio:.1f}"


def time_ratio(rows: Sequence[tuple[Problem, dict[str, Result]]], mine: str, other: str,
               min_tensors: int) -> dict[str, Any] | None:
    ratios = [(r[mine].seconds / r[other].seconds, p.name) for p, r in rows
              if p.n_tensors > min_tensors and r[mine].ok and r[other].ok
              and r[other].seconds and r[mine].seconds]
    if not ratios:
        return None
    return {"n": len(ratios),
            "geomean": math.exp(sum(math.log(x) for x, _ in ratios) / len(ratios)),
            "max": max(ratios)[0], "max_problem": max(ratios)[1],
            "min": min(ratios)[0], "min_problem": min(ratios)[1]}


def summarize(rows: Sequence[tuple[Problem, dict[str, Result]]], tools: Sequence[Tool],
              times: Sequence[float], markdown: bool) -> dict[str, Any]:
    summary: dict[str, Any] = {"hyper_vs_cotengra": {}, "vs_oe_greedy": {}}

    heading("einopt hyper vs cotengra HyperOptimizer, same max_time (flops)", markdown)
    body = []
    for t in times:
        mine, other = f"einopt hyper {t:g}s", f"ctg {t:g}s"
        c = compare(rows, mine, other)
        summary["hyper_vs_cotengra"][f"{t:g}"] = c
        if c is None:
            status = sorted({r[mine].status for _, r in rows if not r[mine].ok})
            body.append([f"{t:g} s", "0", "-", "-", "-", "-", "-",
                         "einopt: " + "/".join(status) if status else "no data"])
            continue
        body.append([f"{t:g} s", str(c["n"]), f"{c['wins']}/{c['ties']}/{c['losses']}",
                     f"{c['fraction_le']:.0%}", ratio_text(c["geomean_ratio_log10"]),
                     f"{ratio_text(c['worst_ratio_log10'])} ({c['worst_problem']})",
                     f"{ratio_text(c['best_ratio_log10'])} ({c['best_problem']})", ""])
    print_table(["max_time", "problems", "einopt W/T/L", "einopt <= ctg",
                 "geomean einopt/ctg", "worst einopt/ctg", "best einopt/ctg", "note"],
                body, markdown, [False, True, True, True, True, False, False, False])

    heading("einopt greedy / auto vs opt_einsum greedy", markdown)
    body = []
    for mine in ("einopt greedy", "einopt auto"):
        c = compare(rows, mine, "oe greedy")
        tr = time_ratio(rows, mine, "oe greedy", 100)
        summary["vs_oe_greedy"][mine] = {"flops": c, "planning_time_over_100_tensors": tr}
        if c is None:
            body.append([mine, "0", "-", "-", "-", "-", "-"])
            continue
        body.append([mine, str(c["n"]), f"{c['wins']}/{c['ties']}/{c['losses']}",
                     ratio_text(c["geomean_ratio_log10"]),
                     f"{ratio_text(c['worst_ratio_log10'])} ({c['worst_problem']})",
                     "-" if tr is None else f"{tr['geomean']:.2f} (n={tr['n']})",
                     "-" if tr is None else
                     f"{tr['min']:.2f} .. {tr['max']:.2f} ({tr['max_problem']})"])
    print_table(["einopt", "problems", "W/T/L vs oe greedy", "geomean flops ratio",
                 "worst flops ratio", "time ratio >100 tensors (geomean)",
                 "time ratio range"], body, markdown,
                [False, True, True, True, False, True, False])

    heading("every column against the best path found by any tool (flops)", markdown)
    body = []
    summary["vs_best"] = {}
    for tool in tools:
        gaps, hits, n = [], 0, 0
        for _, r in rows:
            oks = [x for x in r.values() if x.ok]
            if not r[tool.key].ok or not oks:
                continue
            best = min(oks, key=lambda x: x.flops)
            n += 1
            hits += is_tie(r[tool.key].flops, best.flops)
            gaps.append(r[tool.key].log10_flops - best.log10_flops)
        statuses: dict[str, int] = {}
        for _, r in rows:
            if not r[tool.key].ok:
                statuses[r[tool.key].status] = statuses.get(r[tool.key].status, 0) + 1
        other = ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())) or "-"
        summary["vs_best"][tool.key] = {"n": n, "best": hits, "statuses": statuses,
                                        "geomean_gap_log10": sum(gaps) / n if n else None}
        body.append([tool.key, str(n), str(hits),
                     ratio_text(sum(gaps) / n) if n else "-",
                     ratio_text(max(gaps)) if n else "-", other])
    print_table(["column", "ran", "found best", "geomean cost/best", "worst cost/best",
                 "not run"], body, markdown, [False, True, True, True, True, False])
    return summary


# --------------------------------------------------------------------------- main


def report_checks(rows: Sequence[tuple[Problem, dict[str, Result]]], keys: Sequence[str]
                  ) -> list[str]:
    """Print how many paths were checked against their tool's own cost (and contracted)
    and every failure; returns the failures."""
    checked = [(p, k, r[k]) for p, r in rows for k in keys if r[k].checked]
    failed = [f"{p.name} / {k}: {res.check}" for p, k, res in checked if res.check]
    with_result = sum(1 for _, _, res in checked if "result" in res.checked
                      and "skipped" not in res.checked)
    print()
    print(f"path checks: {len(checked)} cotengra paths checked (their cost against einopt's "
          f"price; {with_result} also contracted on random operands, up to "
          f"{RESULT_CHECK_FLOPS:.0e} flops, against einopt's own plan): "
          f"{'all passed' if not failed else f'{len(failed)} FAILED'}")
    for line in failed:
        print(f"- {line}")
    return failed


def parse_times(text: str) -> list[float]:
    try:
        times = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad --times {text!r}: {exc}") from None
    if not times or any(t <= 0 for t in times):
        raise argparse.ArgumentTypeError("--times needs positive numbers, e.g. 1,2,5")
    return times


def estimate_seconds(problems: Sequence[Problem], times: Sequence[float], skip_dp: bool,
                     dp_timeout: float) -> float:
    """Lower bound of the run time: the time budgets given to the anytime searches."""
    total = 2 * sum(times) * len(problems)  # einopt hyper and cotengra, each T
    if not skip_dp:
        total += dp_timeout * sum(1 for p in problems if p.n_tensors <= DP_MAX_TENSORS)
    return total


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                        help=f"problem list (default: {DEFAULT_CORPUS})")
    parser.add_argument("--times", type=parse_times, default=None, metavar="T1,T2,...",
                        help="max_time values in seconds for einopt hyper and cotengra "
                             "(default 1,2,5; 1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help=f"T=1 s only, problems with <= {QUICK_MAX_TENSORS} tensors, "
                             "dp time limit 5 s")
    parser.add_argument("--filter", metavar="SUBSTR", default=None,
                        help="only problems whose name contains SUBSTR (comma-separated "
                             "alternatives allowed)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--skip-dp", action="store_true", help="do not run opt_einsum's dp")
    parser.add_argument("--dp-timeout", type=float, default=None, metavar="S",
                        help="wall-clock limit of one dp search (default 30 s; 5 s with "
                             "--quick)")
    parser.add_argument("--no-relabel", action="store_true",
                        help="give the corpus equations to every tool unchanged")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT",
                        help="write all raw results (paths included) to OUT")
    parser.add_argument("--kahypar-profile", default=None, metavar="INI",
                        help="KaHyPar profile for einopt's partitioner (default: the cut "
                             "profile cotengra ships, so both use the same KaHyPar); "
                             "'none' for einopt's built-in partitioner")
    args = parser.parse_args(argv)
    profile = args.kahypar_profile
    if profile is None and cotengra is not None:
        bundled = (Path(cotengra.__file__).parent / "pathfinders" / "kahypar_profiles"
                   / "cut_kKaHyPar_sea20.ini")
        profile = str(bundled) if bundled.is_file() else None
    if profile and profile != "none":
        os.environ["EINOPT_KAHYPAR_PROFILE"] = profile
    else:
        os.environ.pop("EINOPT_KAHYPAR_PROFILE", None)

    times = args.times or ([1.0] if args.quick else [1.0, 2.0, 5.0])
    dp_timeout = args.dp_timeout or (5.0 if args.quick else 30.0)

    problems = load_corpus(args.corpus, not args.no_relabel)
    if args.quick:
        problems = [p for p in problems if p.n_tensors <= QUICK_MAX_TENSORS]
    if args.filter:
        wanted = [s for s in args.filter.split(",") if s]
        problems = [p for p in problems if any(s in p.name for s in wanted)]
    if not problems:
        print("no problem matches", file=sys.stderr)
        return 2

    header = machine_header()
    for line in header:
        print(line)
    print(f"corpus     : {args.corpus} ({len(problems)} problems)")
    print(f"kahypar    : {os.environ.get('EINOPT_KAHYPAR_PROFILE', 'built-in partitioner')}"
          " (einopt)")
    print(f"max_time   : {', '.join(f'{t:g} s' for t in times)} (einopt hyper and cotengra)")
    print(f"dp         : {'skipped' if args.skip_dp else f'<= {DP_MAX_TENSORS} tensors, '}"
          f"{'' if args.skip_dp else f'{dp_timeout:g} s limit, in a child process'}")
    estimate = estimate_seconds(problems, times, args.skip_dp, dp_timeout)
    print(f"budget     : at least {estimate / 60:.1f} min of search time limits "
          "(plus greedy, auto-hq and overruns)")
    relabelled = [p for p in problems if p.relabelled]
    if relabelled:
        print(f"relabelled : {len(relabelled)} problems use labels that are not letters "
              f"({''.join(sorted({c for p in relabelled for c in p.relabelled}))}); "
              "renamed to letters for every tool (--no-relabel to keep them)")

    tools = build_tools(times, args.skip_dp, dp_timeout)
    warm_up()
    started = time.perf_counter()
    rows: list[tuple[Problem, dict[str, Result]]] = []
    for k, problem in enumerate(problems, 1):
        progress(f"[{k}/{len(problems)}] {problem.name} ({problem.n_tensors} tensors)")
        rows.append((problem, run_problem(problem, tools)))
    elapsed = time.perf_counter() - started

    keys = [t.key for t in tools]
    right = [False, True, *([True] * len(keys))]
    first = ["problem", "tensors"]

    def best_of(r: dict[str, Result]) -> str:
        oks = [x for x in r.values() if x.ok]
        return f"{min(x.log10_flops for x in oks):.2f}" if oks else "-"

    heading("log10(flops), every path priced by einopt", args.markdown)
    print_table([*first, *keys, "best"],
                [[p.name, str(p.n_tensors), *(cell(r[k], "flops") for k in keys), best_of(r)]
                 for p, r in rows], args.markdown, [*right, True])
    heading("log2(largest intermediate), elements", args.markdown)
    print_table([*first, *keys], [[p.name, str(p.n_tensors), *(cell(r[k], "size") for k in keys)]
                                  for p, r in rows], args.markdown, right)
    heading("planning wall time (planning call only)", args.markdown)
    print_table([*first, *keys], [[p.name, str(p.n_tensors), *(cell(r[k], "time") for k in keys)]
                                  for p, r in rows], args.markdown, right)

    summary = summarize(rows, tools, times, args.markdown)
    failed_checks = report_checks(rows, keys)
    summary["failed_checks"] = failed_checks
    print()
    print(f"total wall time: {elapsed / 60:.1f} min")

    if args.json:
        data = {
            "header": header,
            "corpus": str(args.corpus),
            "times": times,
            "skip_dp": args.skip_dp,
            "dp_timeout": dp_timeout,
            "elapsed_seconds": elapsed,
            "problems": [{
                "name": p.name, "n_tensors": p.n_tensors, "eq": p.eq,
                "original_eq": p.original_eq, "relabelled": p.relabelled,
                "shapes": [list(s) for s in p.shapes],
                "results": {k: r[k].to_json() for k in keys},
            } for p, r in rows],
            "summary": summary,
        }
        args.json.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
        print(f"raw results written to {args.json}")
    return 1 if failed_checks else 0


if __name__ == "__main__":
    sys.exit(main())
