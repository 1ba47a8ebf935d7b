"""Small array modules for ``backend=`` tests: opt_einsum runs a contraction with the
``einsum``/``tensordot``/``transpose`` of the module named, so these change what "sum"
and "product" mean (log-sum-exp, max-product) or count the calls."""

from __future__ import annotations

import sys
import types

import numpy as np


def _register(name: str, einsum, tensordot) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.einsum = einsum
    mod.tensordot = tensordot
    mod.transpose = np.transpose
    sys.modules[name] = mod
    return mod


def logsumexp_module(name: str = "einopt_test_logsumexp") -> types.ModuleType:
    """Operands are logs; a contraction returns the log of the contraction of their
    exponentials (funsor's ``numpy_log`` semiring), shifted by each operand's max."""

    def einsum(eq, *ops):
        shifts = [float(np.max(x)) if np.size(x) else 0.0 for x in ops]
        r = np.einsum(eq, *[np.exp(np.asarray(x) - s) for x, s in zip(ops, shifts, strict=True)])
        return np.log(r) + sum(shifts)

    def tensordot(x, y, axes=2):
        sx, sy = float(np.max(x)), float(np.max(y))
        return np.log(np.tensordot(np.exp(x - sx), np.exp(y - sy), axes=axes)) + sx + sy

    return _register(name, einsum, tensordot)


def maxproduct_module(name: str = "einopt_test_maxproduct") -> types.ModuleType:
    """Products as usual, sums replaced by maxima (one or two operands)."""

    def einsum(eq, *ops):
        lhs, out = eq.split("->")
        terms = lhs.split(",")
        letters = sorted(set("".join(terms)))
        sizes: dict[str, int] = {}
        for t, x in zip(terms, ops, strict=True):
            for c, d in zip(t, np.shape(x), strict=True):
                sizes[c] = max(sizes.get(c, 1), d)
        joint = np.ones([sizes[c] for c in letters])
        for t, x in zip(terms, ops, strict=True):
            uniq = "".join(dict.fromkeys(t))
            y = np.einsum(f"{t}->{''.join(sorted(uniq))}", np.asarray(x))
            shape = [y.shape[sorted(uniq).index(c)] if c in uniq else 1 for c in letters]
            joint = joint * y.reshape(shape)
        drop = tuple(k for k, c in enumerate(letters) if c not in out)
        r = joint.max(axis=drop) if drop else joint
        kept = [c for c in letters if c in out]
        return np.transpose(r, [kept.index(c) for c in out])

    def tensordot(x, y, axes=2):
        if isinstance(axes, int):
            axes = (list(range(x.ndim - axes, x.ndim)), list(range(axes)))
        ax, ay = axes
        letters = "abcdefghijklmnopqrstuvwxyz"
        tx, ty = list(letters[:x.ndim]), list(letters[x.ndim:x.ndim + y.ndim])
        for i, j in zip(ax, ay, strict=True):
            ty[j] = tx[i]
        out = [c for k, c in enumerate(tx) if k not in ax] + \
            [c for k, c in enumerate(ty) if k not in ay]
        return einsum("".join(tx) + "," + "".join(ty) + "->" + "".join(out), x, y)

    return _register(name, einsum, tensordot)


def counting_module(name: str = "einopt_test_counting") -> types.ModuleType:
    """numpy's einsum and tensordot, counting the calls in ``module.calls``."""

    def einsum(eq, *ops):
        mod.calls += 1
        return np.einsum(eq, *ops)

    def tensordot(x, y, axes=2):
        mod.calls += 1
        return np.tensordot(x, y, axes=axes)

    mod = _register(name, einsum, tensordot)
    mod.calls = 0
    return mod
