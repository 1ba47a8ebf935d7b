"""Per-example and curvature quantities: einopt's naive einsums against hand forms,
torch.func, opt_einsum and BackPACK (bench extra), float32 on torch.

Workloads (the sizes of issue 6):

- ``norms-linear``: per-example gradient squared norms of a linear layer, n=256,
  i=j=1024, as ``ni,ni,nj,nj->n``;
- ``norms-conv-A`` / ``norms-conv-B``: per-example gradient squared norms of a 3x3 conv
  layer (A: N=32, C=K=64, 32x32; B: N=32, C=K=256, 8x8), against materializing the
  per-example gradients and against the Gram ("ghost norm") form;
- ``track-conv-A`` / ``track-conv-B``: forward and backward of that layer with the norms
  tracked, against BackPACK's ``BatchL2Grad`` and ``torch.func.vmap(grad)``;
- ``hessian-trace-linear``: the exact Hessian trace of a 3-layer deep linear network
  (width 256, batch 64, MSE) from the extra-index einsum, against the closed form;
- ``hessian-trace-conv``: per-example Hessian traces of a conv layer (N=32, C=K=64,
  32x32, 3x3, MSE) written ``nci,ncj,koi,koj->n``-style, against the multiplicity form.

Run ``python benchmarks/quantities.py [--quick] [--markdown] [--only NAME ...]``; like
``conv.py`` it pins glibc's malloc thresholds (``--no-pin`` leaves them alone).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

try:
    from ._timing import format_seconds, measure
    from .conv import MALLOC_ENV
    from .core import machine_header, print_table
except ImportError:  # run as a script: benchmarks/ is on sys.path
    from _timing import format_seconds, measure
    from conv import MALLOC_ENV
    from core import machine_header, print_table

import torch

import einopt
import einopt.torch as et
from einopt.quantities import LayerEinsum, quantity

F = torch.nn.functional
Tools = dict[str, Callable[[], Any]]


def norms_linear() -> Tools:
    torch.manual_seed(0)
    b, a = torch.randn(256, 1024), torch.randn(256, 1024)
    eq = "ni,ni,nj,nj->n"
    tools: Tools = {
        "hand: vector_norm(B)**2 * vector_norm(A)**2":
            lambda: (torch.linalg.vector_norm(b, dim=1) ** 2
                     * torch.linalg.vector_norm(a, dim=1) ** 2),
        "einopt": lambda: einopt.einsum(eq, b, b, a, a),
        "torch.einsum": lambda: torch.einsum(eq, b, b, a, a),
    }
    _add_opt_einsum(tools, eq, b, b, a, a)
    return tools


def _conv_norm_tools(n: int, c: int, h: int) -> Tools:
    torch.manual_seed(0)
    x, w, g = torch.randn(n, c, h, h), torch.randn(c, c, 3, 3), torch.randn(n, c, h, h)
    p = einopt.conv_pattern(h, 3, padding=1)
    layer = LayerEinsum.of("nchw,kcab,axh,byw->nkxy")

    def materialize() -> Any:
        u = F.unfold(x, 3, padding=1)
        return torch.bmm(g.reshape(n, c, -1), u.transpose(1, 2)).square().sum((1, 2))

    def ghost() -> Any:
        u = F.unfold(x, 3, padding=1)
        gg = g.reshape(n, c, -1)
        return (torch.bmm(u.transpose(1, 2), u) * torch.bmm(gg.transpose(1, 2), gg)).sum((1, 2))

    tools: Tools = {"materialize (unfold + bmm)": materialize, "ghost (Gram)": ghost,
                    "einopt": lambda: quantity("grad_norm2", layer, [x, w, p, p], g)}
    dense = torch.as_tensor(np.asarray(p), dtype=torch.float32)
    _add_opt_einsum(tools, "nchw,axh,byw,nkxy,nctu,azt,bqu,nkzq->n", x, dense, dense, g, x,
                    dense, dense, g)
    return tools


def _track_tools(n: int, c: int, h: int) -> Tools:
    torch.manual_seed(0)
    x, y = torch.randn(n, c, h, h), torch.randn(n, c, h, h)
    model = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)

    def ours() -> Any:
        model.zero_grad()
        with et.track(model, ["grad_norm2"], convention="batch") as t:
            F.mse_loss(model(x), y).backward()
        return t[model.weight]["grad_norm2"]

    def plain() -> Any:
        model.zero_grad()
        F.mse_loss(model(x), y).backward()
        return model.weight.grad

    params = {"weight": model.weight.detach()}

    def per_example() -> Any:
        def loss_n(p: Any, xn: Any, yn: Any) -> Any:
            out = torch.func.functional_call(model, p, (xn[None],))
            return F.mse_loss(out, yn[None], reduction="sum") / y.numel()

        grads = torch.func.vmap(torch.func.grad(loss_n), in_dims=(None, 0, 0))(params, x, y)
        return grads["weight"].flatten(1).square().sum(1)

    tools: Tools = {"einopt track": ours, "torch.func vmap(grad)": per_example}
    try:
        from backpack import backpack, extend
        from backpack.extensions import BatchL2Grad
    except ImportError:
        pass
    else:
        bmodel = extend(torch.nn.Conv2d(c, c, 3, padding=1, bias=False))
        bmodel.weight.data.copy_(model.weight.data)
        lossfn = extend(torch.nn.MSELoss())

        def backpack_l2() -> Any:
            bmodel.zero_grad()
            with backpack(BatchL2Grad()):
                lossfn(bmodel(x), y).backward()
            return bmodel.weight.batch_l2

        tools["BackPACK BatchL2Grad"] = backpack_l2
    tools["forward+backward alone"] = plain
    return tools


def hessian_trace_linear() -> Tools:
    """Tr of the Hessian of mean((x W1 W2 W3 - t)^2) w.r.t. W1, W2, W3 (exact: the loss
    is quadratic in each weight, so its diagonal blocks are J_k^T H J_k)."""
    torch.manual_seed(0)
    x = torch.randn(64, 256)
    ws = [torch.randn(256, 256) / 16 for _ in range(3)]
    scale = 2.0 / (64 * 256)

    def hand() -> Any:
        l1, l2 = x, x @ ws[0]
        l3 = l2 @ ws[1]
        r1 = ws[1] @ ws[2]
        sq = torch.linalg.vector_norm
        return scale * (sq(l1) ** 2 * sq(r1) ** 2 + sq(l2) ** 2 * sq(ws[2]) ** 2
                        + sq(l3) ** 2 * 256)

    tools: Tools = {"hand closed form": hand,
                    "einopt extra-index einsum":
                        lambda: scale * einopt.hessian_trace_einsum(x, ws)}
    try:
        import opt_einsum
    except ImportError:
        return tools
    terms = _dense_terms(x, ws)
    tools["opt_einsum (same einsum, expanded)"] = lambda: scale * sum(
        opt_einsum.contract(*args) for args in terms)
    return tools


def _dense_terms(x: Any, ws: Sequence[Any]) -> list[list[Any]]:
    """The extra-index einsum's terms in sublist form with dense deltas (opt_einsum
    takes no structured operands)."""
    from einopt.autodiff import trace_arguments
    from einopt.structured.switch import expand

    eq, ops = trace_arguments(x, ws)
    out = []
    for term_eq, term_ops, factor in expand(eq, ops):
        labels = sorted({lab for t in term_eq.inputs for lab in t}, key=str)
        num = {lab: k for k, lab in enumerate(labels)}
        args: list[Any] = []
        for op, t in zip(term_ops, term_eq.inputs, strict=True):
            dense = op if isinstance(op, torch.Tensor) else torch.as_tensor(np.asarray(op),
                                                                           dtype=x.dtype)
            args += [dense, [num[lab] for lab in t]]
        out.append([*args, []] if factor == 1 else [*args, torch.tensor(float(factor)), [],
                                                       []])
    return out


def hessian_trace_conv() -> Tools:
    torch.manual_seed(0)
    x = torch.randn(32, 64, 32, 32)
    p = einopt.conv_pattern(32, 3, padding=1)
    k_out, scale = 64, 2.0 / (32 * 64 * 32 * 32)
    mult = torch.as_tensor(np.asarray(p), dtype=torch.float32).sum((0, 1))
    eq = "ncij,ncuv,axi,byj,axu,byv->n"  # per example: sum over W of (d y / d W)^2

    return {
        "hand multiplicity form":
            lambda: scale * k_out * (x.square() * torch.outer(mult, mult)).sum((1, 2, 3)),
        "einopt": lambda: scale * k_out * einopt.einsum(eq, x, x, p, p, p, p),
    }


def _add_opt_einsum(tools: Tools, eq: str, *ops: Any, scale: float = 1.0) -> None:
    try:
        import opt_einsum
    except ImportError:
        return
    tools["opt_einsum"] = lambda: scale * opt_einsum.contract(eq, *ops)


WORKLOADS: dict[str, Callable[[], Tools]] = {
    "norms-linear": norms_linear,
    "norms-conv-A": lambda: _conv_norm_tools(32, 64, 32),
    "norms-conv-B": lambda: _conv_norm_tools(32, 256, 8),
    "track-conv-A": lambda: _track_tools(32, 64, 32),
    "track-conv-B": lambda: _track_tools(32, 256, 8),
    "hessian-trace-linear": hessian_trace_linear,
    "hessian-trace-conv": hessian_trace_conv,
}


def _check(name: str, tools: Tools) -> None:
    values = {k: fn() for k, fn in tools.items() if k != "forward+backward alone"}
    ref_name = next(iter(values))
    ref = torch.as_tensor(values[ref_name]).double()
    for k, v in values.items():
        got = torch.as_tensor(v).double()
        err = float((got - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
        if got.shape != ref.shape or err > 2e-3:
            raise AssertionError(f"{name}: {k} differs from {ref_name} ({err:.1e})")


def main(argv: Sequence[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else list(argv)
    if any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()) and "--no-pin" not in args_in:
        os.execve(sys.executable, [sys.executable, __file__, *args_in],
                  {**os.environ, **MALLOC_ENV})
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--only", nargs="*", choices=sorted(WORKLOADS))
    args = parser.parse_args(args_in)
    target, repeats = (0.1, 3) if args.quick else (0.5, 7)
    print("\n".join(machine_header()))
    print(f"torch      : {torch.__version__} ({torch.get_num_threads()} threads)")
    for name in args.only or WORKLOADS:
        tools = WORKLOADS[name]()
        _check(name, tools)
        rows, ref = [], None
        for tool, fn in tools.items():
            t = measure(fn, target=target, repeats=repeats).median
            ref = ref or t
            rows.append([tool, format_seconds(t), f"{t / ref:.2f}"])
        print(f"\n## {name}")
        print_table(["tool", "time", "ratio"], rows, args.markdown, [False, True, True])
    return 0


if __name__ == "__main__":
    sys.exit(main())
