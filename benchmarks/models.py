"""Per-example gradient norms and DP-SGD steps on real models: einopt against torch.func,
Opacus (per-sample-gradient hooks and ghost clipping) and BackPACK, side by side.

Tasks, on one batch, float32 (mean-reduced cross entropy; per-example quantities are
those of each example's own loss, as DP-SGD clips them):

- ``norms``: every example's squared gradient norm, summed over all parameters
  (the plain gradient is formed too, where the tool's backward pass forms it);
- ``dpsgd``: one clipped, noised step: each example's flat gradient clipped to norm 1,
  summed, Gaussian noise (sigma 1) added, divided by the batch size, into ``p.grad``.

Tools: ``einopt`` (``einopt.torch.track(model, ["grad_norm2"])``; ``DPSGD(model, 1, 1)``),
``torch.func`` (``functional_call`` + ``vmap(grad)``, clipped by hand), ``opacus hooks``
(``GradSampleModule``; ``DPOptimizer.pre_step``), ``opacus ghost``
(``GradSampleModuleFastGradientClipping``'s norms; ``DPLossFastGradientClipping``'s two
backward passes), ``backpack`` (``BatchL2Grad``; ``BatchGrad`` clipped by hand; n/a for
models with layers it has no extension for). ``plain`` is the forward and backward pass
alone; every time is also given as a ratio to it. ``plain + noise`` (dpsgd) is that pass
and one draw of the step's Gaussian noise (a value per parameter, torch's sampler): no
DP-SGD step on the machine is faster.

Models (``_models_zoo.py``):

- ``mlp``: 784-512-512-10, ReLU, batch 128;
- ``cnn``: Conv(3,32)-GN-ReLU-Conv(32,64,stride 2)-GN-ReLU-Conv(64,64,stride 2)-GN-ReLU,
  average pool, Linear(64,10); 3x32x32 inputs, batch 32;
- ``gpt``: token (vocab 256) and position embeddings (positions
  ``torch.arange(T).expand(N, T)``; Opacus ghost clipping gets a contiguous copy, as its
  embedding norm sampler views them), 2 pre-LayerNorm blocks of causal self-attention
  (q, k, v, out ``nn.Linear``, d=128, 4 heads) and a GELU MLP (128-512-128), final
  LayerNorm, Linear head; batch 16, 64 tokens, loss over every token;
- ``resnet``: a stem conv, three residual blocks (Conv-GN-ReLU-Conv-GN + skip) at 32 and
  64 channels, average pool, Linear; 3x32x32, batch 32.

Before timing, every tool's result is checked against torch.func in float64 (norms; the
dpsgd gradients with noise off): a relative error above 1e-5 marks the tool WRONG.
Times are the minimum (and median) per call over interleaved measurements: each round
measures every tool once, in a rotating order, after warm-up calls. Peak memory is the
resident-memory high-water mark one step adds, after a warm-up step, each tool in a
fresh process (glibc's mmap threshold fixed, so freed blocks leave the process).

Run ``python benchmarks/models.py [--quick] [--markdown] [--only MODEL ...]
[--tasks norms,dpsgd] [--repeats K] [--no-memory] [--threads N]``; ``--quick`` takes
small batches and images, 16 tokens and 3 measurements. Like ``conv.py``, timing runs
pin glibc's malloc thresholds (``--no-pin`` leaves them alone).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import subprocess
import sys
import warnings
from collections.abc import Sequence
from typing import Any

try:
    from ._models_zoo import FLOOR, SPECS, TASKS, TOOLS, NotApplicable, build, make_step
    from ._timing import Timing, measure_many
    from .conv import MALLOC_ENV
    from .core import machine_header, print_table, progress
except ImportError:  # run as a script: benchmarks/ is on sys.path
    from _models_zoo import FLOOR, SPECS, TASKS, TOOLS, NotApplicable, build, make_step
    from _timing import Timing, measure_many
    from conv import MALLOC_ENV
    from core import machine_header, print_table, progress

import torch

warnings.filterwarnings("ignore", message="Full backward hook is firing")

TOLERANCE = 1e-5
SIGMA = 1.0
REFERENCE = "torch.func"
PEERS = [t for t in TOOLS if t not in ("plain", "einopt")]
#: the child process of a memory measurement: a fixed mmap threshold, so large freed
#: blocks go back to the system and the resident size follows the live memory
PEAK_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 16)}

Key = tuple[str, str]  # (task, tool); ("plain", "plain") for the baseline


def _keys(tasks: Sequence[str]) -> list[Key]:
    """The baseline, then each task's tools (DP-SGD's led by its floor, ``FLOOR``)."""
    return [("plain", "plain")] + [
        (task, tool) for task in tasks
        for tool in ((FLOOR,) if task == "dpsgd" else ()) + TOOLS[1:]]


def _flat(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().flatten()
    return torch.cat([v.detach().flatten() for v in value])


def _rel_err(got: Any, ref: Any) -> float:
    a, b = _flat(got).double(), _flat(ref).double()
    if a.shape != b.shape:
        return float("inf")
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


# --------------------------------------------------------------------------- checks


def check(name: str, quick: bool, tasks: Sequence[str]) -> dict[Key, Any]:
    """Per (task, tool): the relative error against torch.func in float64 (a float),
    or the NotApplicable / exception that stopped the tool."""
    model, xs, y = build(SPECS[name], quick, torch.float64)
    out: dict[Key, Any] = {}
    for task in tasks:
        ref = make_step(REFERENCE, model, xs, y, task, 0.0)()
        for tool in TOOLS[1:]:
            try:
                out[task, tool] = _rel_err(make_step(tool, model, xs, y, task, 0.0)(), ref)
            except Exception as exc:  # NotApplicable, or a tool failing: reported
                out[task, tool] = exc
    return out


def _check_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, NotApplicable):
        return "n/a"
    if isinstance(value, Exception):
        return "ERROR"
    text = f"{value:.1e}"
    return text + " WRONG" if value > TOLERANCE else text


def _wrong(value: Any) -> bool:
    return isinstance(value, float) and not value <= TOLERANCE


# --------------------------------------------------------------------------- timing


def time_model(name: str, quick: bool, tasks: Sequence[str], repeats: int, warmup: int,
               target: float) -> dict[Key, Any]:
    """Per (task, tool): a Timing, or the exception that stopped the tool."""
    model, xs, y = build(SPECS[name], quick)
    fns, out = {}, {}
    for key in _keys(tasks):
        task, tool = key
        try:
            fns[f"{task}/{tool}"] = make_step(tool, model, xs, y, task, SIGMA)
        except Exception as exc:
            out[key] = exc
    timings = measure_many(fns, target=target, repeats=repeats, warmup=warmup)
    for label, result in timings.items():
        task, tool = label.split("/", 1)
        out[task, tool] = result
    return out


# --------------------------------------------------------------------------- memory


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _peak(name: str, task: str, tool: str, quick: bool) -> None:
    """Child process: print the peak resident memory (bytes) one step adds above what
    the process holds before it, after a warm-up step (Linux: the high-water mark is
    reset first; elsewhere ``ru_maxrss``, which may hide a step below an earlier peak)."""
    model, xs, y = build(SPECS[name], quick)
    step = make_step(tool, model, xs, y, task, SIGMA, copy_model=False)
    step()  # plans, caches and lazily built state
    for p in model.parameters():
        p.grad = None
        for attr in ("grad_sample", "summed_grad", "_norm_sample", "grad_batch", "batch_l2"):
            if hasattr(p, attr):
                setattr(p, attr, None)
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current resident size
        base, peak_field = _status_kib("VmRSS"), "VmHWM"
    except OSError:
        base, peak_field = None, None
    if base is None or peak_field is None:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        step()
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024)
        return
    step()
    print(((_status_kib(peak_field) or base) - base) * 1024)


def peak_mb(name: str, task: str, tool: str, quick: bool, threads: int) -> float | None:
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    args = [sys.executable, __file__, "--peak", name, task, tool, "--threads", str(threads)]
    out = subprocess.run(args + (["--quick"] if quick else []), capture_output=True,
                         text=True, env={**env, **PEAK_ENV})
    try:
        return int(out.stdout.strip().splitlines()[-1]) / 2**20
    except (ValueError, IndexError):
        return None


# --------------------------------------------------------------------------- report


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}" if seconds < 10 else f"{seconds * 1e3:.0f}"


def model_table(name: str, checks: dict[Key, Any], times: dict[Key, Any],
                memory: dict[Key, float | None], tasks: Sequence[str], markdown: bool
                ) -> dict[Key, float]:
    """Print a model's table; return each good tool's ratio (min time / plain's)."""
    base = times.get(("plain", "plain"))
    plain = base.best if isinstance(base, Timing) else None
    rows, ratios = [], {}
    for key in _keys(tasks):
        task, tool = key
        err, t = checks.get(key), times.get(key)
        mem = memory.get(key)
        mem_text = "-" if mem is None else f"{mem:.0f}"
        task_cell = task if task != "plain" else "-"
        if isinstance(t, NotApplicable) or isinstance(err, NotApplicable):
            why = t if isinstance(t, NotApplicable) else err
            rows.append([task_cell, tool, f"n/a: {why}", "n/a", "-", "-", "-"])
            continue
        cells = [task_cell, tool, "ref" if tool == REFERENCE else _check_cell(err)]
        if not isinstance(t, Timing):
            rows.append([*cells, f"ERROR ({type(t).__name__})", "-", "-", mem_text])
            continue
        flag = ("WRONG " if _wrong(err) else "UNCHECKED " if isinstance(err, Exception)
                else "")
        ratio = t.best / plain if plain else None
        if ratio is not None and not flag:
            ratios[key] = ratio
        rows.append([*cells, flag + _ms(t.best), _ms(t.median),
                     "-" if ratio is None else f"{ratio:.2f}", mem_text])
    print_table(["task", "tool", "check (f64)", "min ms", "median ms", "/ plain", "peak MB"],
                rows, markdown, [False, False, True, True, True, True, True])
    return ratios


def summary(all_ratios: dict[str, dict[Key, float]], tasks: Sequence[str],
            markdown: bool) -> None:
    rows = []
    for name, ratios in all_ratios.items():
        for task in tasks:
            ours = ratios.get((task, "einopt"))
            peers = [(r, tool) for (t, tool), r in ratios.items()
                     if t == task and tool in PEERS]
            best = min(peers) if peers else None
            rows.append([name, task, "-" if ours is None else f"{ours:.2f}",
                         "-" if best is None else best[1],
                         "-" if best is None else f"{best[0]:.2f}",
                         "-" if ours is None or best is None else f"{ours / best[0]:.2f}"])
    print_table(["model", "task", "einopt / plain", "best peer", "peer / plain",
                 "einopt / peer"], rows, markdown, [False, False, True, False, True, True])


def _describe(name: str, quick: bool) -> str:
    spec = SPECS[name]
    model, xs, _ = build(spec, quick)
    count = sum(p.numel() for p in model.parameters())
    n, shape = spec.sizes(quick)
    what = f"{shape[0]} tokens" if spec.tokens else "input " + "x".join(map(str, shape))
    return f"{name}: {spec.title} (batch {n}, {what}; {count:,} parameters)"


def _problems(name: str, checks: dict[Key, Any], times: dict[Key, Any]) -> list[str]:
    out = []
    for key, value in [*checks.items(), *times.items()]:
        if isinstance(value, Exception) and not isinstance(value, NotApplicable):
            out.append(f"{name} {key[0]} {key[1]}: {type(value).__name__}: {value}")
        elif _wrong(value):
            out.append(f"{name} {key[0]} {key[1]}: relative error {value:.1e} in float64")
    return list(dict.fromkeys(out))


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for pkg in ("opacus", "backpack-for-pytorch"):
        try:
            found.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            found.append(f"{pkg} not installed")
    return ", ".join(found)


def main(argv: Sequence[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else list(argv)
    if any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()) and not (
            {"--no-pin", "--peak"} & set(args_in)):
        os.execve(sys.executable, [sys.executable, __file__, *args_in],
                  {**os.environ, **MALLOC_ENV})
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, 1 warm-up, 3 measurements")
    parser.add_argument("--markdown", action="store_true", help="Markdown tables")
    parser.add_argument("--only", nargs="*", choices=list(SPECS), metavar="MODEL",
                        help=f"models to run (of {', '.join(SPECS)})")
    parser.add_argument("--tasks", default=",".join(TASKS),
                        help="comma-separated tasks (default: norms,dpsgd)")
    parser.add_argument("--repeats", type=int, default=None, metavar="K",
                        help="measurements per tool (default 15; --quick 3)")
    parser.add_argument("--no-memory", action="store_true", help="skip peak memory")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--no-pin", action="store_true",
                        help="leave glibc's malloc thresholds as they are")
    parser.add_argument("--peak", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(args_in)
    torch.set_num_threads(args.threads)
    if args.peak:
        _peak(*args.peak, quick=args.quick)
        return 0
    tasks = [t for t in args.tasks.split(",") if t]
    if not tasks or any(t not in TASKS for t in tasks):
        parser.error(f"--tasks: a comma-separated subset of {','.join(TASKS)}")
    repeats = args.repeats or (3 if args.quick else 15)
    warmup, target = (1, 0.01) if args.quick else (3, 0.05)
    names = args.only or list(SPECS)

    header = machine_header()
    header.append(f"torch      : {torch.__version__} ({torch.get_num_threads()} threads), "
                  f"{_versions()}")
    header.append(f"timing     : {warmup} warm-up call(s), then {repeats} interleaved "
                  f"measurements of >= {target} s per tool (time.perf_counter, gc off); "
                  "min and median per call")
    header.append(f"dp-sgd     : max_grad_norm 1.0, noise_multiplier {SIGMA}, float32; "
                  f"checks in float64 against torch.func (WRONG above {TOLERANCE:g})")
    if args.markdown:
        print("```")
    print("\n".join(header))
    if args.markdown:
        print("```")

    checks: dict[str, dict[Key, Any]] = {}
    for name in names:
        progress(f"checking {name} ...")
        checks[name] = check(name, args.quick, tasks)
    print("\n## Checks: relative error against torch.func, float64\n")
    print_table(["model", "tool", *tasks],
                [[name, tool, *(_check_cell(checks[name].get((task, tool))) for task in tasks)]
                 for name in names for tool in TOOLS[2:]],
                args.markdown, [False, False, *[True] * len(tasks)])

    all_ratios: dict[str, dict[Key, float]] = {}
    problems: list[str] = []
    for name in names:
        progress(f"timing {name} ...")
        times = time_model(name, args.quick, tasks, repeats, warmup, target)
        memory: dict[Key, float | None] = {}
        if not args.no_memory:
            for key in _keys(tasks):
                if isinstance(times.get(key), Timing):
                    progress(f"memory {name} {key[0]} {key[1]} ...")
                    memory[key] = peak_mb(name, *key, args.quick, args.threads)
        print(f"\n## {_describe(name, args.quick)}\n")
        all_ratios[name] = model_table(name, checks[name], times, memory, tasks,
                                       args.markdown)
        problems += _problems(name, checks[name], times)

    print("\n## Summary: time / plain forward+backward (min times)\n")
    summary(all_ratios, tasks, args.markdown)
    if problems:
        print("\nProblems\n")
        for p in problems:
            print(f"- {p}")
    print(f"\nchecks: {'FAILED (see Problems)' if problems else 'every tool agreed'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
