"""The models of ``models.py`` and, for each tool, one per-example-gradient-norm step and
one DP-SGD step on them.

Every model is a classifier with a mean-reduced cross-entropy loss; ``Spec.loss`` is that
loss, and each example's own loss is the same function on a batch of one (for the
language model: the mean over that sequence's tokens). Per-example quantities are those
of each example's own loss, as Opacus and ``einopt.torch.track(convention="example")``
give them.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

F = nn.functional

__all__ = ["Spec", "SPECS", "TOOLS", "TASKS", "FLOOR", "NotApplicable", "make_step", "build"]

TASKS = ("norms", "dpsgd")
#: ``plain`` (forward and backward alone) first; the reference (torch.func) second
TOOLS = ("plain", "torch.func", "einopt", "opacus hooks", "opacus ghost", "backpack")
#: The plain step plus the Gaussian draw every DP-SGD step makes (one value per
#: parameter): a floor under any tool's DP-SGD step on the same machine.
FLOOR = "plain + noise"
MAX_GRAD_NORM = 1.0


class NotApplicable(Exception):
    """The tool cannot run this model (a layer it does not support)."""


# --------------------------------------------------------------------------- models


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, 10))


def gn_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.GroupNorm(8, 32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.GroupNorm(8, 64), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1, stride=2), nn.GroupNorm(8, 64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


class Residual(nn.Module):
    """``relu(x + gn(conv(relu(gn(conv(x))))))``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.gn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.GroupNorm(8, c)
        self.conv2, self.gn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.GroupNorm(8, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.gn1(self.conv1(x)))
        return F.relu(x + self.gn2(self.conv2(h)))


def resnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.GroupNorm(8, 32), nn.ReLU(),
        Residual(32),
        nn.Conv2d(32, 64, 3, padding=1, stride=2, bias=False), nn.GroupNorm(8, 64), nn.ReLU(),
        Residual(64), Residual(64),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


class Block(nn.Module):
    """Pre-LayerNorm causal self-attention (q, k, v, out projections) and a GELU MLP."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.out = (nn.Linear(d, d) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        h = self.ln1(x)

        def split(z: torch.Tensor) -> torch.Tensor:
            return z.reshape(n, t, self.heads, d // self.heads).transpose(1, 2)

        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        att = scores.masked_fill(future, float("-inf")).softmax(-1)
        x = x + self.out((att @ v).transpose(1, 2).reshape(n, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class GPT(nn.Module):
    """Token and position embeddings, blocks, a final LayerNorm and a vocabulary head."""

    def __init__(self, vocab: int = 256, positions: int = 64, d: int = 128, heads: int = 4,
                 layers: int = 2) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(positions, d)
        self.blocks = nn.Sequential(*(Block(d, heads) for _ in range(layers)))
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, idx: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return self.head(self.ln(self.blocks(self.tok(idx) + self.pos(pos))))


def cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross entropy over the batch (and every position of a sequence)."""
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    make: Callable[[int], nn.Module]  # the argument: sequence length (unused elsewhere)
    batch: int
    quick_batch: int
    shape: tuple[int, ...]  # one example's input (an image, a vector; (T,) for tokens)
    quick_shape: tuple[int, ...]
    tokens: bool = False

    def sizes(self, quick: bool) -> tuple[int, tuple[int, ...]]:
        return (self.quick_batch, self.quick_shape) if quick else (self.batch, self.shape)


SPECS = {
    "mlp": Spec("mlp", "MLP 784-512-512-10, ReLU", lambda t: mlp(), 128, 32, (784,), (784,)),
    "cnn": Spec("cnn", "GroupNorm CNN, 3 convs + linear", lambda t: gn_cnn(), 32, 8,
                (3, 32, 32), (3, 16, 16)),
    "gpt": Spec("gpt", "GPT, 2 blocks, d=128, 4 heads, vocab 256", lambda t: GPT(positions=t),
                16, 4, (64,), (16,), tokens=True),
    "resnet": Spec("resnet", "ResNet, 3 residual blocks, GroupNorm", lambda t: resnet(), 32, 8,
                   (3, 32, 32), (3, 16, 16)),
}


def build(spec: Spec, quick: bool, dtype: torch.dtype = torch.float32, seed: int = 0
          ) -> tuple[nn.Module, tuple[torch.Tensor, ...], torch.Tensor]:
    """The model (seeded weights), its inputs and the targets."""
    n, shape = spec.sizes(quick)
    torch.manual_seed(seed)
    model = spec.make(shape[0]).to(dtype)
    if spec.tokens:
        t = shape[0]
        idx = torch.randint(0, 256, (n, t))
        inputs: tuple[torch.Tensor, ...] = (idx, torch.arange(t).expand(n, t))
        y = torch.randint(0, 256, (n, t))
    else:
        inputs = (torch.randn(n, *shape, dtype=dtype),)
        y = torch.randint(0, 10, (n,))
    return model, inputs, y


# --------------------------------------------------------------------------- tools

Step = Callable[[], Any]


def _zero(params: list[nn.Parameter]) -> None:
    for p in params:
        p.grad = None


def _clip_factors(sq_norms: torch.Tensor) -> torch.Tensor:
    return (MAX_GRAD_NORM / (sq_norms.sqrt() + 1e-6)).clamp(max=1.0)


def _noised(total: torch.Tensor, sigma: float, n: int) -> torch.Tensor:
    if sigma > 0:
        total = total + sigma * MAX_GRAD_NORM * torch.randn_like(total)
    return total / n


def _plain(model: nn.Module, xs: tuple[Any, ...], y: Any, task: str, sigma: float) -> Step:
    params = list(model.parameters())

    def step() -> Any:
        _zero(params)
        cross_entropy(model(*xs), y).backward()
        return [p.grad for p in params]

    return step


def _plain_noise(model: nn.Module, xs: tuple[Any, ...], y: Any, task: str, sigma: float
                 ) -> Step:
    plain = _plain(model, xs, y, task, sigma)
    count = sum(p.numel() for p in model.parameters())

    def step() -> Any:
        grads = plain()
        torch.randn(count)
        return grads

    return step


def _torch_func(model: nn.Module, xs: tuple[Any, ...], y: Any, task: str, sigma: float
                ) -> Step:
    names = [k for k, _ in model.named_parameters()]
    params = dict(model.named_parameters())
    n = y.shape[0]

    def loss_one(p: dict[str, Any], *args: Any) -> Any:
        *ins, target = args
        out = torch.func.functional_call(model, p, tuple(a[None] for a in ins))
        return cross_entropy(out, target[None])

    per_example = torch.func.vmap(torch.func.grad(loss_one),
                                  in_dims=(None, *([0] * (len(xs) + 1))))

    def grads() -> dict[str, Any]:
        return per_example({k: v.detach() for k, v in params.items()}, *xs, y)

    if task == "norms":
        return lambda: sum(g.flatten(1).square().sum(1) for g in grads().values())

    def step() -> Any:
        g = grads()
        c = _clip_factors(sum(v.flatten(1).square().sum(1) for v in g.values()))
        for k in names:
            params[k].grad = _noised(torch.tensordot(c, g[k], dims=1), sigma, n)
        return [params[k].grad for k in names]

    return step


def _einopt(model: nn.Module, xs: tuple[Any, ...], y: Any, task: str, sigma: float) -> Step:
    import einopt.torch as et

    params = list(model.parameters())
    if task == "norms":
        def norms() -> Any:
            _zero(params)
            with et.track(model, ["grad_norm2"]) as t:
                cross_entropy(model(*xs), y).backward()
            return sum(t[p]["grad_norm2"] for p in params)

        return norms
    dp = et.DPSGD(model, MAX_GRAD_NORM, sigma)

    def step() -> Any:
        _zero(params)
        with dp.step():
            cross_entropy(model(*xs), y).backward()
        return [p.grad for p in params]

    return step


def _opacus_optimizer(cls: Any, model: nn.Module, sigma: float, n: int) -> Any:
    sgd = torch.optim.SGD(model.parameters(), lr=0.0)
    return cls(sgd, noise_multiplier=sigma, max_grad_norm=MAX_GRAD_NORM,
               expected_batch_size=n, loss_reduction="mean")


def _opacus_hooks(model: nn.Module, xs: tuple[Any, ...], y: Any, task: str, sigma: float
                  ) -> Step:
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    gsm = GradSampleModule(model, loss_reduction="mean")
    params = list(model.parameters())
    if task == "norms":
        def norms() -> Any:
            for p in params:
                p.grad, p.grad_sample = None, None
            cross_entropy(gsm(*xs), y).backward()
            return sum(p.grad_sample.flatten(1).square().sum(1) for p in params)

        return norms
    opt = _opacus_optimizer(DPOptimizer, gsm, sigma, y.shape[0])

    def step() -> Any:
        opt.zero_grad(set_to_none=True)
        cross_entropy(gsm(*xs), y).backward()
        opt.pre_step()  # clip, sum, noise, divide: p.grad (the SGD step itself is left out)
        return [p.grad for p in params]

    return step


def _opacus_ghost(model: nn.Module, xs: tuple[Any, ...], y: Any, task: str, sigma: float
                  ) -> Step:
    from opacus.grad_sample import GradSampleModuleFastGradientClipping
    from opacus.optimizers import DPOptimizerFastGradientClipping
    from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping

    gsm = GradSampleModuleFastGradientClipping(model, loss_reduction="mean",
                                               max_grad_norm=MAX_GRAD_NORM,
                                               use_ghost_clipping=True)
    params = list(model.parameters())
    # its embedding norm sampler views the indices: expanded positions need a copy
    xs = tuple(x.contiguous() for x in xs)
    if task == "norms":
        def norms() -> Any:
            _zero(params)
            cross_entropy(gsm(*xs), y).backward()
            return gsm.get_norm_sample().square()

        return norms
    opt = _opacus_optimizer(DPOptimizerFastGradientClipping, gsm, sigma, y.shape[0])
    criterion = DPLossFastGradientClipping(gsm, opt, nn.CrossEntropyLoss(), "mean")

    def step() -> Any:
        opt.zero_grad(set_to_none=True)
        out = gsm(*xs)
        shape = out.shape if out.dim() == 3 else None  # per sequence: mean over tokens
        loss = criterion(out.reshape(-1, out.shape[-1]), y.reshape(-1), shape=shape)
        loss.backward()  # two backward passes: norms, then the clipped sum
        opt.pre_step()
        return [p.grad for p in params]

    return step


def _backpack(model: nn.Module, xs: tuple[Any, ...], y: Any, task: str, sigma: float
              ) -> Step:
    try:
        from backpack import backpack, extend
        from backpack.extensions import BatchGrad, BatchL2Grad
    except ImportError:
        raise NotApplicable("not installed") from None
    known = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)
    for m in model.modules():
        if any(True for _ in m.parameters(recurse=False)) and not isinstance(m, known):
            raise NotApplicable(f"no {type(m).__name__}")
    if len(xs) != 1 or y.dim() != 1:
        raise NotApplicable("not a single-input classifier")
    model = extend(model)
    lossfn = extend(nn.CrossEntropyLoss())
    params = list(model.parameters())
    n = y.shape[0]
    if task == "norms":
        def norms() -> Any:
            _zero(params)
            with backpack(BatchL2Grad()):
                lossfn(model(*xs), y).backward()
            return sum(p.batch_l2 for p in params) * n**2  # BackPACK's: of the mean loss

        return norms

    def step() -> Any:
        _zero(params)
        with backpack(BatchGrad()):
            lossfn(model(*xs), y).backward()
        c = _clip_factors(sum(p.grad_batch.flatten(1).square().sum(1) for p in params)
                          * n**2) * n
        for p in params:
            p.grad = _noised(torch.tensordot(c, p.grad_batch, dims=1), sigma, n)
        return [p.grad for p in params]

    return step


_MAKERS = {"plain": _plain, FLOOR: _plain_noise, "torch.func": _torch_func, "einopt": _einopt,
           "opacus hooks": _opacus_hooks, "opacus ghost": _opacus_ghost,
           "backpack": _backpack}


def make_step(tool: str, model: nn.Module, xs: tuple[Any, ...], y: Any, task: str,
              sigma: float, copy_model: bool = True) -> Step:
    """One step of ``tool`` for ``task`` on a copy of ``model`` (on ``model`` itself with
    ``copy_model=False``: Opacus and BackPACK hook into it for good): it returns the
    per-example squared gradient norms (``norms``) or the parameters' gradients after
    the clipped, noised step (``dpsgd``; the plain step returns the plain gradients)."""
    if tool not in _MAKERS or task not in (*TASKS, "plain"):
        raise ValueError(f"unknown tool {tool!r} or task {task!r}")
    return _MAKERS[tool](copy.deepcopy(model) if copy_model else model, xs, y, task, sigma)
