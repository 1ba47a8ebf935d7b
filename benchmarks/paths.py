"""Contraction-path search on realistic instances: einopt vs opt_einsum vs cotengra.

Usage::

    python benchmarks/paths.py                          # both corpus files, T = 5 s, 3 seeds
    python benchmarks/paths.py --quick                  # T = 1 s, 1 seed, <= 1,000 tensors
    python benchmarks/paths.py --generated --filter gen_ --times 1
    python benchmarks/paths.py --filter mera,sentence --times 1,5 --seeds 5 --json out.json

Only paths are planned, nothing is contracted (except small paths, as a check). Every
tool's path is priced by one cost function written here (``_paths_problems.path_cost``),
not by any tool: ``log10(flops)``, ``log2(largest intermediate)``, and the wall time of
the planning call alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:
    from ._timing import format_seconds
except ImportError:  # run as a script: benchmarks/ is on sys.path
    from _timing import format_seconds

from _paths_problems import DEFAULT_CORPUS, Problem, generated_problems, load_corpus  # noqa: E402
from _paths_summary import Rows, best_of, heading, median_of, summarize  # noqa: E402
from _paths_tools import (  # noqa: E402
    DP_MAX_TENSORS,
    RESULT_CHECK_FLOPS,
    RESULT_CHECK_MAX_TENSORS,
    Run,
    build_tools,
    cotengra_setup,
)
from _paths_worker import InProcess, Settings, Worker, physical_memory  # noqa: E402
from core import machine_header as core_header  # noqa: E402 - beside this script
from core import print_table  # noqa: E402

QUICK_MAX_TENSORS = 1000  # --quick keeps the problems with at most this many tensors


# --------------------------------------------------------------------------- problems


def select_problems(args: argparse.Namespace) -> tuple[list[Problem], list[str]]:
    """The problems to run (corpus files, then generated ones) and the load failures."""
    wanted_parts = [s for s in (args.filter or "").split(",") if s]

    def wanted(name: str) -> bool:
        return not wanted_parts or any(s in name for s in wanted_parts)

    problems: list[Problem] = []
    failed: list[str] = []
    for path in args.corpus:
        if not path.is_file():
            failed.append(f"{path}: no such file")
            continue
        found, bad = load_corpus(path, not args.no_relabel)
        problems += found
        failed += bad
    if args.generated:
        found, bad = generated_problems(not args.no_relabel, wanted)
        problems += found
        failed += bad
    seen: Counter[str] = Counter()
    for p in problems:  # the same name in two files: the later one gets its file's name
        seen[p.name] += 1
        if seen[p.name] > 1:
            p.name = f"{p.name}@{p.origin}"
    limit = args.max_tensors or (QUICK_MAX_TENSORS if args.quick else None)
    problems = [p for p in problems if wanted(p.name) and (not limit or p.n_tensors <= limit)]
    return problems, failed


# --------------------------------------------------------------------------- output


def cell(runs: Sequence[Run], what: str) -> str:
    """A table cell: the median over seeds, with markers for failed checks and runs."""
    value = median_of(runs, what)
    if value is None:
        first = runs[0]
        if first.status != "error":
            return first.status
        return "error: " + (first.message if len(first.message) <= 60 else
                            first.message[:57] + "...")
    text = (f"{value:.2f}" if what == "flops" else f"{value:.1f}" if what == "size"
            else format_seconds(value))
    if what == "flops":
        if any(r.failures for r in runs):
            text += " CHECK"
        if any(r.print_failures for r in runs):
            text += " PRINT"
    bad = sum(not r.ok for r in runs)
    return text + (f" ({len(runs) - bad}/{len(runs)} ok)" if bad else "")


def print_tables(rows: Rows, keys: Sequence[str], markdown: bool) -> None:
    right = [False, True, *([True] * len(keys))]
    first = ["problem", "tensors"]

    def known(p: Problem) -> str:
        return "-" if p.best_known_log10 is None else f"{p.best_known_log10:.2f}"

    heading("log10(flops), median over seeds, every path priced by path_cost", markdown)
    print_table([*first, "corpus best", *keys, "best"],
                [[p.name, str(p.n_tensors), known(p), *(cell(r[k], "flops") for k in keys),
                  "-" if best_of(p, r)[0] is None else f"{best_of(p, r)[0]:.2f}"]
                 for p, r in rows], markdown, [*right, True, True])
    heading("log2(largest intermediate), elements, median over seeds", markdown)
    print_table([*first, *keys], [[p.name, str(p.n_tensors), *(cell(r[k], "size") for k in keys)]
                                  for p, r in rows], markdown, right)
    heading("planning wall time (the planning call alone), median over seeds or repeats",
            markdown)
    print_table([*first, *keys], [[p.name, str(p.n_tensors), *(cell(r[k], "time") for k in keys)]
                                  for p, r in rows], markdown, right)


def issues(rows: Rows, load_failures: Sequence[str]) -> dict[str, list[str]]:
    """Every crash, failed check and failed print of the run, as lines."""
    out: dict[str, list[str]] = {"load": list(load_failures), "errors": [], "checks": [],
                                 "prints": []}
    for p, results in rows:
        for key, runs in results.items():
            for r in runs:
                where = f"{p.name} / {key}" + (f" / seed {r.seed}" if len(runs) > 1 else "")
                if r.status == "error" or (r.status == "timeout" and key != "oe dp"):
                    out["errors"].append(f"{where}: {r.status}: {r.message}")
                out["checks"] += [f"{where}: {f}" for f in r.failures]
                out["prints"] += [f"{where}: {f}" for f in r.print_failures]
    return out


def report_issues(found: dict[str, list[str]], rows: Rows, markdown: bool) -> None:
    heading("crashes, failed checks and plans that do not print", markdown)
    titles = {"load": "problems that could not be read or generated",
              "errors": "tool errors and --tool-timeout stops (the cell reads error: ... "
                        "or timeout)",
              "checks": "failed checks (CHECK in the flops table)",
              "prints": "einopt plans whose str / repr / speedup / explain raised (PRINT)"}
    for kind, lines in found.items():
        print(f"{titles[kind]}: {len(lines) or 'none'}")
        for line in lines:
            print(f"- {line}")
    runs = [r for _, res in rows for rs in res.values() for r in rs if r.ok]
    crossed = [r for r in runs if r.agreement]
    lone = sum(r.agreement == "lone indices" for r in crossed)
    contracted = sum("result" in r.checked for r in runs)
    claimed = sum("claimed cost" in r.checked for r in runs)
    print(f"checked: {len(crossed)} paths also priced by einopt.plan(...).flops "
          f"({len(crossed) - lone - sum(r.agreement == 'DISAGREE' for r in crossed)} equal; "
          f"{lone} differ only by indices one input alone holds, which einopt sums inside "
          "that tensor first and path_cost counts in its first merge); "
          f"{claimed} cotengra costs against path_cost; {contracted} paths contracted on "
          f"random operands (<= {RESULT_CHECK_FLOPS:.0e} flops, <= {RESULT_CHECK_MAX_TENSORS}"
          " tensors) against einopt.einsum")


def print_cotengra_methods(rows: Rows, markdown: bool) -> dict[str, Any]:
    """Which of cotengra's methods ran trials, and which found the trees it returned."""
    trials: Counter[str] = Counter()
    best: Counter[str] = Counter()
    for _, results in rows:
        for key, runs in results.items():
            if key.startswith("ctg "):
                for r in runs:
                    trials.update(r.extra.get("methods", {}))
                    if r.extra.get("best_method"):
                        best[r.extra["best_method"]] += 1
    if trials:
        print(f"cotengra trials by method: {', '.join(f'{m} {n}' for m, n in trials.most_common())}"
              f"; returned tree found by: {', '.join(f'{m} {n}' for m, n in best.most_common())}")
    return {"trials": dict(trials), "best": dict(best)}


# --------------------------------------------------------------------------- main


def parse_times(text: str) -> list[float]:
    try:
        times = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad --times {text!r}: {exc}") from None
    if not times or any(t <= 0 for t in times):
        raise argparse.ArgumentTypeError("--times needs positive numbers, e.g. 1,5")
    return times


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, nargs="+", default=DEFAULT_CORPUS,
                        metavar="FILE", help="problem files (default: dev.json and "
                        f"realistic.json in {DEFAULT_CORPUS[0].parent})")
    parser.add_argument("--generated", action="store_true",
                        help="add the einsum_benchmark generators' instances (gen_*)")
    parser.add_argument("--times", type=parse_times, default=None, metavar="T1,T2,...",
                        help="max_time in seconds of einopt hyper and cotengra "
                             "(default 5; 1 with --quick)")
    parser.add_argument("--seeds", type=int, default=None, metavar="K",
                        help="seeds 0..K-1 of the randomized searches, and repeats of the "
                             "timing of the deterministic ones (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help=f"T = 1 s, 1 seed, problems with <= {QUICK_MAX_TENSORS} tensors, "
                             "dp limit 5 s")
    parser.add_argument("--filter", metavar="SUBSTR", default=None,
                        help="only problems whose name contains SUBSTR (comma-separated "
                             "alternatives allowed)")
    parser.add_argument("--max-tensors", type=int, default=None, metavar="N",
                        help="only problems with at most N tensors")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--skip-dp", action="store_true", help="do not run opt_einsum's dp")
    parser.add_argument("--dp-timeout", type=float, default=None, metavar="S",
                        help="wall-clock limit of one dp search (default 30 s; 5 s with "
                             "--quick)")
    parser.add_argument("--no-relabel", action="store_true",
                        help="give the corpus equations to every tool unchanged")
    parser.add_argument("--no-print-check", action="store_true",
                        help="skip str / repr / speedup / explain of einopt's plans")
    parser.add_argument("--no-cross-check", action="store_true",
                        help="do not also price every path with einopt.plan(...).flops")
    ram = physical_memory()
    parser.add_argument("--memory-limit", type=float, default=None, metavar="GB",
                        help="address-space limit of the process the tools run in (default "
                             "80%% of the RAM" + (f", {0.8 * ram / 2**30:.0f} GB here" if ram
                                                 else "") + "; 0 for none)")
    parser.add_argument("--tool-timeout", type=float, default=900.0, metavar="S",
                        help="stop a tool (all its seeds and checks) after S seconds "
                             "(default 900)")
    parser.add_argument("--in-process", action="store_true",
                        help="run the tools in this process, not in a worker process that "
                             "a crash or a stall can take down alone")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT",
                        help="write all raw results (paths included) and the summary to OUT")
    parser.add_argument("--parallel", type=int, default=1, metavar="K",
                        help="processes of each anytime search, einopt hyper's and "
                             "cotengra's alike (default 1: serial)")
    parser.add_argument("--kahypar-profile", default=None, metavar="INI",
                        help="KaHyPar profile for einopt's partitioner (default: the one "
                             "einopt ships, where kahypar is installed); 'none' for "
                             "einopt's built-in partitioner")
    args = parser.parse_args(argv)
    args.times = args.times or ([1.0] if args.quick else [5.0])
    args.seeds = args.seeds or (1 if args.quick else 3)
    args.dp_timeout = args.dp_timeout or (5.0 if args.quick else 30.0)
    if args.memory_limit is None:
        args.memory_limit = 0.8 * ram / 2**30 if ram else 0.0
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    return args


def set_kahypar_profile(profile: str | None) -> None:
    if profile is None:
        os.environ.pop("EINOPT_KAHYPAR_PROFILE", None)  # einopt's own choice
    else:
        os.environ["EINOPT_KAHYPAR_PROFILE"] = profile


def header_lines(args: argparse.Namespace, problems: Sequence[Problem]) -> list[str]:
    lines = [*core_header(), *cotengra_setup()]
    origins = Counter(p.origin for p in problems)
    lines.append(f"problems   : {len(problems)} ("
                 + ", ".join(f"{n} from {o}" for o, n in origins.items()) + ")")
    from einopt.optimize.fast import accelerator
    from einopt.optimize.partition import kahypar_profile

    lines.append(f"kahypar    : {kahypar_profile() or 'built-in partitioner'} (einopt)")
    lines.append(f"fast       : {'cotengrust' if accelerator() else 'off'} (einopt)")
    lines.append(f"max_time   : {', '.join(f'{t:g} s' for t in args.times)} (einopt hyper and "
                 f"cotengra); seeds 0..{args.seeds - 1}; "
                 + ("serial" if args.parallel == 1 else
                    f"{args.parallel} processes each (einopt parallel={args.parallel}, "
                    f"cotengra parallel={args.parallel})"))
    limit = f"{args.memory_limit:.1f} GB" if args.memory_limit else "none"
    lines.append("worker     : " + ("none, the tools run in this process" if args.in_process
                                    else f"one process runs every tool; memory limit {limit}, "
                                    f"{args.tool_timeout:g} s per tool, PYTHONHASHSEED="
                                    f"{os.environ.get('PYTHONHASHSEED', '0')}"))
    lines.append("dp         : " + ("skipped" if args.skip_dp else
                                    f"<= {DP_MAX_TENSORS} tensors, {args.dp_timeout:g} s limit, "
                                    "in a child process"))
    budget = 2 * sum(args.times) * args.seeds * len(problems)
    if not args.skip_dp:
        budget += args.dp_timeout * sum(p.n_tensors <= DP_MAX_TENSORS for p in problems)
    total = format_seconds(budget) if budget < 60 else f"{budget / 60:.1f} min"
    lines.append(f"budget     : at least {total} of search time limits "
                 "(plus greedy, auto, auto-hq, overruns and checks)")
    relabelled = [p for p in problems if p.relabelled]
    if relabelled:
        labels = {c for p in relabelled for c in p.relabelled}
        kinds = Counter("digits" if c.isdigit() else "Unicode spaces" if c.isspace() else
                        "other symbols" for c in labels)
        lines.append(f"relabelled : {len(relabelled)} problems use labels that are not letters "
                     f"({', '.join(f'{n} {k}' for k, n in kinds.items())}); renamed to unused "
                     "letters for every tool (--no-relabel keeps them)")
    return lines


def run_all(problems: Sequence[Problem], keys: Sequence[str], runner: Worker | InProcess
            ) -> Rows:
    """Every tool on every problem, in order; progress on stderr."""
    rows: Rows = []

    def report(key: str, runs: list[Run], seconds: float) -> None:
        done = f"{cell(runs, 'flops')}, {cell(runs, 'time')}" if any(r.ok for r in runs) \
            else cell(runs, "flops")
        progress(f"  {key}: {done} ({seconds:.1f} s with checks)")

    for k, problem in enumerate(problems, 1):
        progress(f"[{k}/{len(problems)}] {problem.name} ({problem.n_tensors} tensors)")
        rows.append((problem, runner.run(problem, keys, report)))
    return rows


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    set_kahypar_profile(args.kahypar_profile)
    problems, load_failures = select_problems(args)
    for line in load_failures:
        progress(f"could not load: {line}")
    if not problems:
        print("no problem matches", file=sys.stderr)
        return 2
    header = header_lines(args, problems)
    for line in header:
        print(line)
    tools = build_tools(args.times, args.skip_dp, args.dp_timeout, args.parallel)
    keys = [t.key for t in tools]
    settings = Settings(tuple(args.times), args.seeds, args.skip_dp, args.dp_timeout,
                        not args.no_cross_check, not args.no_print_check,
                        int(args.memory_limit * 2**30) if args.memory_limit else None,
                        args.parallel)
    runner = InProcess(settings) if args.in_process else Worker(settings, args.tool_timeout)
    started = time.perf_counter()
    try:
        rows = run_all(problems, keys, runner)
    finally:
        runner.stop()
    elapsed = time.perf_counter() - started

    print_tables(rows, keys, args.markdown)
    summary = summarize(rows, tools, args.times, args.markdown)
    print()
    summary["cotengra_methods"] = print_cotengra_methods(rows, args.markdown)
    found = issues(rows, load_failures)
    report_issues(found, rows, args.markdown)
    print()
    print(f"total wall time: {elapsed / 60:.1f} min"
          + (f"; the worker process was restarted {runner.restarts} time(s)" if runner.restarts
             else ""))
    if args.json:
        write_json(args, header, rows, keys, summary, found, elapsed)
    return 1 if any(found.values()) else 0


def write_json(args: argparse.Namespace, header: list[str], rows: Rows, keys: Sequence[str],
               summary: dict[str, Any], found: dict[str, list[str]], elapsed: float) -> None:
    data = {
        "header": header,
        "options": {"corpus": [str(c) for c in args.corpus], "generated": args.generated,
                    "times": args.times, "seeds": args.seeds, "skip_dp": args.skip_dp,
                    "dp_timeout": args.dp_timeout, "relabel": not args.no_relabel,
                    "print_check": not args.no_print_check,
                    "cross_check": not args.no_cross_check},
        "elapsed_seconds": elapsed,
        "problems": [{
            "name": p.name, "origin": p.origin, "family": p.family, "source": p.source,
            "n_tensors": p.n_tensors, "eq": p.eq, "original_eq": p.original_eq,
            "relabelled": p.relabelled, "shapes": [list(s) for s in p.shapes],
            "corpus_best_log10_flops": p.best_known_log10, "corpus_best_by": p.best_known_by,
            "best_log10_flops": best_of(p, r)[0], "best_by": best_of(p, r)[1],
            "results": {k: {"median_log10_flops": median_of(r[k], "flops"),
                            "median_log2_max_size": median_of(r[k], "size"),
                            "median_seconds": median_of(r[k], "time"),
                            "runs": [run.to_json() for run in r[k]]} for k in keys},
        } for p, r in rows],
        "summary": summary,
        "issues": found,
    }
    args.json.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"raw results written to {args.json}")


if __name__ == "__main__":
    sys.exit(main())
