"""Stage 6a: the operands of a rewritten (structured) einsum, made from the call's.

A :class:`~einopt.structured.rewrite.Rewrite` says, per operand of the dense einsum,
which call operand it views and how. Sliding windows are strided views where the
library has them (numpy ``as_strided``, torch ``unfold``: no copy beyond the padding),
flipped ones (a transposed convolution's) too where it reverses an axis as a view;
otherwise, and for zero-stuffed (strided transposed) views, one gather with a small
index array. Selectors gather rows by their integer indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backends import Backend, backend_for
from ..errors import ShapeError
from ..structured.operands import Selector, Structured
from ..structured.rewrite import Affine, Gather, Rewrite, output_mask

__all__ = ["dense_operands", "structured_inputs", "embed_output"]


def _strided(v: Affine | Gather, be: Backend | None = None) -> bool:
    """Whether ``v`` is a window the library reads as a view: steps of 1 divisor and
    no negative step, or (where ``be`` reverses an axis as a view) a negative tap step
    (the flipped windows of a transposed convolution)."""
    if not isinstance(v, Affine) or v.divisor != 1 or v.coef[1] < 0:
        return False
    return v.coef[0] >= 0 or (be is not None and be.reverses)


def _unflipped(v: Affine) -> Affine:
    """``v`` with its tap axis read backwards: ``x[a1*u1 + ...]`` for ``a1 < 0`` is
    ``x[|a1|*(n1 - 1 - u1) + ... + a1*(n1 - 1)]``, a window with non-negative steps."""
    if v.coef[0] >= 0:
        return v
    return Affine(v.axis, v.sizes, (-v.coef[0], v.coef[1]),
                  v.offset + v.coef[0] * (v.sizes[0] - 1), v.divisor, v.length)


def _bounds(v: Affine) -> tuple[int, int]:
    """Zeros needed before and after the source axis for every window to be in range."""
    (n1, n2), (a1, a2) = v.sizes, v.coef
    lo, hi = v.offset, a1 * (n1 - 1) + a2 * (n2 - 1) + v.offset
    return max(0, -lo), max(0, hi - (v.length - 1))


def _windows(be: Backend, x: Any, views: Sequence[Affine], axes: Sequence[int]) -> Any | None:
    """Sliding-window views (``views[k]`` on axis ``axes[k]`` of ``x`` as it is now),
    after one padding of ``x``; None when the library has no strided views."""
    plain = [_unflipped(v) for v in views]
    widths = {a: _bounds(v) for a, v in zip(axes, plain, strict=True) if any(_bounds(v))}
    if widths:
        x = be.pad(x, widths)
    for a, v, w in zip(axes, plain, views, strict=True):
        x = be.window(x, v.axis, v.sizes, v.coef, v.offset + widths.get(a, (0, 0))[0])
        if x is None:
            return None
        if w is not v:  # the tap axis, which now stands at v.axis, read backwards
            x = be.reverse(x, v.axis)
    return x


def _viewed(be: Backend, x: Any, views: Sequence[Affine | Gather],
            operands: Sequence[Any]) -> Any:
    """``x`` with ``views`` applied in order. The leading sliding windows on the source's
    own axes share one padding; the others are taken one by one."""
    run, axes = 0, []
    orig: list[int | None] = list(range(len(x.shape)))
    while run < len(views) and _strided(views[run], be) and orig[views[run].axis] is not None:
        a = views[run].axis
        axes.append(orig[a])
        orig[a:a + 1] = [None, None]
        run += 1
    windowed = _windows(be, x, views[:run], axes) if run else None  # type: ignore[arg-type]
    if windowed is not None:
        x, views = windowed, views[run:]
    for v in views:
        if isinstance(v, Gather):
            sel = operands[v.operand]
            assert isinstance(sel, Selector)
            x = be.take(x, _indices(be, sel, v.operand), v.axis)
        else:
            one = _windows(be, x, [v], [v.axis]) if _strided(v, be) else None
            x = _gathered(be, x, v) if one is None else one
    return x


def _gathered(be: Backend, x: Any, v: Affine) -> Any:
    pos, _ = v.index()
    return be.take(be.pad(x, {v.axis: (0, 1)}), pos, v.axis)


def _indices(be: Backend, sel: Selector, k: int) -> Any:
    idx = sel.indices
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= sel.num_classes:
        raise ShapeError(f"one_hot operand {k} has index {lo if lo < 0 else hi} outside "
                         f"[0, {sel.num_classes})")
    if be.name == "numpy":
        return np.asarray(idx)
    return idx if backend_for([idx]).name == be.name else be.asarray(np.asarray(idx))


def dense_operands(operands: Sequence[Any], dtype: Any = None,
                   casting: str = "safe") -> tuple[Backend, list[Any]]:
    """The backend of the call's arrays, and the arrays converted to one dtype (the
    structured operands, which take no part in promotion, left as they are)."""
    arrays = [x for x in operands if not isinstance(x, Structured)]
    if not arrays:  # structured operands only: numpy
        return backend_for([np.zeros(())]), list(operands)
    be = backend_for(arrays)
    dense: list[Any] = be.prepare(arrays, dtype, casting)
    it = iter(dense)
    return be, [x if isinstance(x, Structured) else next(it) for x in operands]


def structured_inputs(rw: Rewrite, be: Backend, operands: Sequence[Any],
                      raw: frozenset[int] = frozenset(), dtype: Any = None) -> list[Any]:
    """The dense einsum's operands. ``operands`` are the call's, arrays already of one
    library and dtype; a structured one stands where the call had it. Operands in
    ``raw`` are passed unviewed (a native convolution reads them). ``dtype`` is the
    result's when there are structured operands only (default float64)."""
    like = next((x for x in operands if not isinstance(x, Structured)), None)
    if like is None:
        like = np.zeros((), dtype=np.float64 if dtype is None else dtype)
    out = []
    made: dict[Any, Any] = {}  # alike views of one array are one object (read once)
    for k, src in enumerate(rw.sources):
        if k in raw:  # a constant here is one the program never reads
            out.append(operands[src.operand] if src.const is None else None)
            continue
        if src.const is not None:  # a pattern's multiplicities, perhaps gathered
            c = be.constant(src.const, like)
            out.append(_viewed(be, c, src.views, operands) if src.views else c)
            continue
        key = (id(operands[src.operand]), src.views, src.dense)
        if key in made:
            out.append(made[key])
            continue
        x = operands[src.operand]
        if isinstance(x, Structured):
            assert src.dense, "a structured operand is either substituted or dense"
            x = be.constant(x.dense(), like)
        x = _viewed(be, x, src.views, operands)
        made[key] = x
        out.append(x)
    return out


def embed_output(rw: Rewrite, be: Backend, result: Any, sizes: dict[Any, int]) -> Any:
    """The result placed on the diagonal its repeated output labels describe."""
    src, mask = output_mask(rw, sizes)
    shape = tuple(1 if s < 0 else sizes[lab] for s, lab in zip(src, rw.output, strict=True))
    r = be.reshape(result, shape)
    return be.multiply(r, be.constant(mask, result))
