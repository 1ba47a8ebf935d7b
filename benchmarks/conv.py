"""Convolutions as einsums: einopt with index patterns against native and einsum peers.

Workloads (float32, the sizes of issue 5):

- ``conv``: N=32, C=K=64, 32x32, 3x3, padding 1 -- ``F.conv2d``, einopt (torch), einconv's
  ``convNd`` (bench extra), unfold + matmul, torch.einsum on dense patterns;
- ``conv-numpy``: the same layer on numpy arrays -- ``sliding_window_view`` +
  ``np.einsum(optimize=True)``, einopt;
- ``separable``: depthwise-separable, N=32, C=M=128 -- ``F.conv2d(groups=C)`` + 1x1 conv,
  einopt (one einsum), opt_einsum and torch.einsum on the dense-pattern einsum;
- ``hessian-trace``: ``ncij,ncij,kai,lbj->n`` (N=32, C=64, 32x32, 3x3) -- the hand
  multiplicity form, einopt with patterns, opt_einsum on dense patterns.

Each row gives the median time, its ratio to the workload's first (reference) tool, and
with ``--memory`` the peak memory a call adds above its inputs (each tool measured in a
fresh process, from Linux's resident high-water mark). Run
``python benchmarks/conv.py [--quick] [--memory] [--markdown]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

try:
    from ._timing import format_seconds, measure
    from .core import machine_header, print_table
except ImportError:  # run as a script: benchmarks/ is on sys.path
    from _timing import format_seconds, measure
    from core import machine_header, print_table

import einopt
from einopt import conv_pattern

Tools = dict[str, Callable[[], Any]]


def _torch() -> Any:
    import torch

    torch.manual_seed(0)
    return torch


def conv_tools() -> Tools:
    torch = _torch()
    functional = torch.nn.functional
    x, w = torch.randn(32, 64, 32, 32), torch.randn(64, 64, 3, 3)
    p = conv_pattern(32, 3, padding=1)
    dense = torch.as_tensor(np.asarray(p), dtype=torch.float32)
    tools: Tools = {
        "F.conv2d": lambda: functional.conv2d(x, w, padding=1),
        "einopt": lambda: einopt.einsum("nchw,kcab,axh,byw->nkxy", x, w, p, p),
        "unfold+matmul": lambda: (w.reshape(64, -1) @ functional.unfold(x, 3, padding=1)
                                  ).reshape(32, 64, 32, 32),
        "torch.einsum dense": lambda: torch.einsum("nchw,kcab,axh,byw->nkxy", x, w, dense,
                                                   dense),
    }
    try:
        from einconv.functionals import convNd
    except ImportError:
        pass
    else:
        tools["einconv convNd"] = lambda: convNd(x, w, padding=1)
    return tools


def conv_numpy_tools() -> Tools:
    from numpy.lib.stride_tricks import sliding_window_view

    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 64, 32, 32), dtype=np.float32)
    w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
    p = conv_pattern(32, 3, padding=1)

    def windows() -> Any:
        v = sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3),
                                axis=(2, 3))
        return np.einsum("ncxyab,kcab->nkxy", v, w, optimize=True)

    return {
        "sliding_window_view+np.einsum": windows,
        "einopt": lambda: einopt.einsum("nchw,kcab,axh,byw->nkxy", x, w, p, p),
    }


def conv_jax_tools() -> Tools:
    """The conv layer and its per-example weight gradients under ``jax.jit`` (XLA)."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((32, 64, 32, 32), dtype=np.float32))
    w = jnp.asarray(rng.standard_normal((64, 64, 3, 3), dtype=np.float32))
    p = conv_pattern(32, 3, padding=1)

    def lax_conv(x: Any, w: Any) -> Any:
        return jax.lax.conv_general_dilated(x, w, (1, 1), [(1, 1), (1, 1)],
                                            precision=jax.lax.Precision.HIGHEST)

    ours = jax.jit(lambda x, w: einopt.einsum("nchw,kcab,axh,byw->nkxy", x, w, p, p))
    ref = jax.jit(lax_conv)
    dense = jnp.asarray(np.asarray(p))
    plain = jax.jit(lambda x, w: jnp.einsum("nchw,kcab,axh,byw->nkxy", x, w, dense, dense,
                                            optimize=True))
    return {
        "lax.conv_general_dilated (jit)": lambda: ref(x, w).block_until_ready(),
        "einopt (jit)": lambda: ours(x, w).block_until_ready(),
        "jnp.einsum dense (jit)": lambda: plain(x, w).block_until_ready(),
    }


def grad_batch_jax_tools() -> Tools:
    """Per-example weight gradients of the conv layer under ``jax.jit``: einopt's einsum
    against ``vmap`` of the gradient (XLA's own per-example batching)."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((32, 64, 32, 32), dtype=np.float32))
    g = jnp.asarray(rng.standard_normal((32, 64, 32, 32), dtype=np.float32))
    w = jnp.zeros((64, 64, 3, 3), jnp.float32)
    p = conv_pattern(32, 3, padding=1)

    def one(xn: Any, gn: Any) -> Any:
        def f(w: Any) -> Any:
            y = jax.lax.conv_general_dilated(xn[None], w, (1, 1), [(1, 1), (1, 1)],
                                             precision=jax.lax.Precision.HIGHEST)
            return jnp.sum(y * gn[None])
        return jax.grad(f)(w)

    ref = jax.jit(jax.vmap(one))
    ours = jax.jit(lambda x, g: einopt.einsum("nchw,nkxy,axh,byw->nkcab", x, g, p, p))
    return {
        "vmap(grad) (jit)": lambda: ref(x, g).block_until_ready(),
        "einopt (jit)": lambda: ours(x, g).block_until_ready(),
    }


def separable_tools() -> Tools:
    torch = _torch()
    functional = torch.nn.functional
    x = torch.randn(32, 128, 32, 32)
    depth, point = torch.randn(128, 3, 3), torch.randn(128, 128)
    p = conv_pattern(32, 3, padding=1)
    dense = torch.as_tensor(np.asarray(p), dtype=torch.float32)
    eq = "nchw,cab,axh,byw,mc->nmxy"
    tools: Tools = {
        "F.conv2d(groups=C)+1x1": lambda: functional.conv2d(
            functional.conv2d(x, depth[:, None], padding=1, groups=128), point[:, :, None, None]),
        "einopt": lambda: einopt.einsum(eq, x, depth, p, p, point),
        "torch.einsum dense": lambda: torch.einsum(eq, x, depth, dense, dense, point),
    }
    try:
        import opt_einsum
    except ImportError:
        pass
    else:
        tools["opt_einsum dense"] = lambda: opt_einsum.contract(eq, x, depth, dense, dense, point)
    return tools


def hessian_trace_tools() -> Tools:
    torch = _torch()
    x = torch.randn(32, 64, 32, 32)
    p = conv_pattern(32, 3, padding=1)
    dense = torch.as_tensor(np.asarray(p), dtype=torch.float32)
    mult = dense.sum(dim=(0, 1))  # how many (tap, output) pairs read each input row
    eq = "ncij,ncij,kai,lbj->n"
    tools: Tools = {
        "hand multiplicity form": lambda: (x.square() * torch.outer(mult, mult)).sum((1, 2, 3)),
        "einopt": lambda: einopt.einsum(eq, x, x, p, p),
    }
    try:
        import opt_einsum
    except ImportError:
        pass
    else:
        tools["opt_einsum dense"] = lambda: opt_einsum.contract(eq, x, x, dense, dense)
    return tools


WORKLOADS: dict[str, Callable[[], Tools]] = {
    "conv": conv_tools,
    "conv-numpy": conv_numpy_tools,
    "conv-jax": conv_jax_tools,
    "grad-batch-jax": grad_batch_jax_tools,
    "separable": separable_tools,
    "hessian-trace": hessian_trace_tools,
}


def _check(tools: Tools) -> None:
    """Every tool's result equals the reference's (float32 tolerance)."""
    values = {name: np.asarray(fn()) for name, fn in tools.items()}
    ref_name = next(iter(values))
    ref = values[ref_name]
    scale = float(np.abs(ref).max()) or 1.0
    for name, got in values.items():
        err = float(np.abs(got - ref).max()) / scale
        if got.shape != ref.shape or err > 1e-4:
            raise AssertionError(f"{name} differs from {ref_name}: relative error {err:.2e}")


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _peak(workload: str, tool: str) -> None:
    """Child process: print the peak resident memory (bytes) one call adds above what
    the process holds before it (Linux: the high-water mark is reset first)."""
    fn = WORKLOADS[workload]()[tool]
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident size
    base = _status_kib("VmRSS")
    fn()
    print((_status_kib("VmHWM") - base) * 1024)


def peak_bytes(workload: str, tool: str) -> int | None:
    """Peak memory of one call of ``tool``, measured in a fresh process with glibc's
    default thresholds (large blocks mapped when allocated, so they count)."""
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    out = subprocess.run([sys.executable, __file__, "--peak", workload, tool],
                         capture_output=True, text=True, env=env)
    return int(out.stdout.strip()) if out.returncode == 0 else None


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.0f} MiB"


def plan_flops() -> list[list[str]]:
    """einopt's planned flops for the conv layer, and the dense-pattern count."""
    import opt_einsum

    p = conv_pattern(32, 3, padding=1)
    shapes = [(32, 64, 32, 32), (64, 64, 3, 3), p.shape, p.shape]
    plan = einopt.plan("nchw,kcab,axh,byw->nkxy", np.zeros(shapes[0], np.float32),
                       np.zeros(shapes[1], np.float32), p, p)
    _, info = opt_einsum.contract_path("nchw,kcab,axh,byw->nkxy", *shapes, shapes=True)
    direct = 32 * 64 * 64 * 9 * 32 * 32
    return [["einopt plan, patterns", f"{plan.flops:.3e}"],
            ["direct multiply-adds", f"{direct:.3e}"],
            ["opt_einsum, dense patterns", f"{float(info.opt_cost):.3e}"]]


#: glibc returns large freed blocks to the system and faults them in again on the next
#: call, which adds up to 10 ms per call to whichever tool happens to trigger it; with
#: these set every tool reuses its memory, and times measure the kernels.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 34), "MALLOC_TRIM_THRESHOLD_": str(1 << 34)}


def main(argv: Sequence[str] | None = None) -> int:
    args_in = sys.argv if argv is None else argv
    if any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()) and "--no-pin" not in \
            args_in and "--peak" not in args_in:
        os.execve(sys.executable, [sys.executable, __file__, *(sys.argv[1:] if argv is None
                                                                 else argv)],
                  {**os.environ, **MALLOC_ENV})
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short measurements")
    parser.add_argument("--memory", action="store_true", help="also measure peak memory")
    parser.add_argument("--markdown", action="store_true", help="Markdown tables")
    parser.add_argument("--only", nargs="*", choices=sorted(WORKLOADS), help="workloads")
    parser.add_argument("--no-pin", action="store_true",
                        help="leave glibc's malloc thresholds as they are")
    parser.add_argument("--peak", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak:
        _peak(*args.peak)
        return 0
    target, repeats = (0.1, 3) if args.quick else (0.5, 7)
    print("\n".join(machine_header()))
    print(f"torch      : {_torch().__version__} ({_torch().get_num_threads()} threads)")
    pinned = all(os.environ.get(k) == v for k, v in MALLOC_ENV.items())
    print(f"malloc     : {'thresholds pinned (MALLOC_*_THRESHOLD_=2**34)' if pinned else 'as is'}")
    print()
    print_table(["flops of the conv layer", "count"], plan_flops(), args.markdown,
                [False, True])
    for name in args.only or WORKLOADS:
        tools = WORKLOADS[name]()
        _check(tools)
        rows, ref = [], None
        for tool, fn in tools.items():
            t = measure(fn, target=target, repeats=repeats).median
            ref = ref or t
            row = [tool, format_seconds(t), f"{t / ref:.2f}"]
            if args.memory:
                row.append(_mib(peak_bytes(name, tool)))
            rows.append(row)
        print()
        print(f"## {name}")
        header = ["tool", "time", "ratio"] + (["peak memory"] if args.memory else [])
        print_table(header, rows, args.markdown, [False] + [True] * (len(header) - 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
