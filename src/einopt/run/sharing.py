"""Intermediates shared between contractions: opt_einsum's ``shared_intermediates``.

Inside ``with shared_intermediates() as cache:``, every step that ``einopt.contract``
and compiled expressions (``contract_expression``) run is looked up in ``cache`` first
(``einopt.einsum`` keeps its direct path), keyed by what it computes and from which
arrays: the identity (``id``) of its inputs and its canonical subscripts (the two inputs
ordered by identity, letters renamed in order of appearance, so ``"ab,bc->ac"`` on
``(x, y)`` and ``"bc,ab->ac"`` on ``(y, x)`` are one entry). A second contraction that
forms the same intermediate from the same arrays reuses it. Every array a key names is
kept in the cache too, so that its ``id`` is not reused while the cache lives.

The cache is a plain dict, as opt_einsum's: keys are tuples whose first item says what
the entry is (``"einsum"``: a step's result, ``"transpose"``: an output laid out,
``"tensor"``: an array kept for its ``id``, ``"convert"``: an operand converted to
another library), so :func:`count_cached_ops` counts them by kind. It lives as long as
the context (or the caller's reference to it): it is the caller's memory, not one of
einopt's caches, so ``einopt.clear_caches`` leaves it alone. Contexts nest, per thread;
the innermost one's cache is used, and a cache may be passed to a later context to
resume sharing.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from ..backends import Backend
from ..plan import Plan, StepKind
from .execute import cached, compile_program, final_function, program_for, step_function

__all__ = ["shared_intermediates", "currently_sharing", "get_sharing_cache",
           "count_cached_ops", "sharing_program", "shared_call", "canonical_subscripts"]

CacheType = dict[Any, Any]

_STACKS: dict[int, list[CacheType]] = {}
_LOCK = threading.Lock()


def currently_sharing() -> bool:
    """Whether this thread is inside a :func:`shared_intermediates` context."""
    return threading.get_ident() in _STACKS


def get_sharing_cache() -> CacheType:
    """The cache of this thread's innermost :func:`shared_intermediates` context."""
    return _STACKS[threading.get_ident()][-1]


@contextlib.contextmanager
def shared_intermediates(cache: CacheType | None = None) -> Iterator[CacheType]:
    """A context in which contractions share their intermediates (see the module doc).

    Args:
        cache: a dict to keep the intermediates in: one yielded by an earlier context,
            to resume sharing with it (a new one by default).

    Yields:
        The cache. Its arrays are freed when the context ends, unless it is kept.

    Example:
        >>> import numpy as np, einopt
        >>> x, y, z = np.ones((2, 3)), np.ones((3, 4)), np.ones((4, 5))
        >>> with einopt.shared_intermediates() as cache:
        ...     a = einopt.contract("ab,bc,cd->a", x, y, z)
        ...     b = einopt.contract("ab,bc,cd->d", x, y, z)  # reuses x @ y or y @ z
    """
    if cache is None:
        cache = {}
    tid = threading.get_ident()
    with _LOCK:
        _STACKS.setdefault(tid, []).append(cache)
    try:
        yield cache
    finally:
        with _LOCK:
            stack = _STACKS[tid]
            stack.pop()
            if not stack:
                del _STACKS[tid]


def count_cached_ops(cache: CacheType) -> Counter[str]:
    """How many entries of each kind ``cache`` holds (``"einsum"``, ``"tensor"``, ...)."""
    return Counter(key[0] for key in cache)


def canonical_subscripts(terms: list[str], output: str) -> str:
    """``terms -> output`` with its letters renamed in order of first appearance."""
    names: dict[str, str] = {}
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

    def text(term: str) -> str:
        out = []
        for ch in term:
            if ch not in names:
                names[ch] = letters[len(names)]
            out.append(names[ch])
        return "".join(out)

    lhs = ",".join(text(t) for t in terms)
    return f"{lhs}->{text(output)}"


def _keep(cache: CacheType, *arrays: Any) -> None:
    for x in arrays:
        cache["tensor", id(x)] = x


def shared_call(cache: CacheType, key: tuple[Any, ...], inputs: tuple[Any, ...],
                fn: Callable[[], Any]) -> Any:
    """``cache[key]``, computed by ``fn()`` and stored when absent; ``inputs`` (the arrays
    whose ids ``key`` holds) are kept in ``cache`` for as long as it lives."""
    found = cache.get(key, _NONE)
    if found is _NONE:
        _keep(cache, *inputs)
        found = cache[key] = fn()
    return found


_NONE = object()


def _pair_keys(step: Any, plan: Plan) -> tuple[Any, Any]:
    """A pairwise step's canonical equation for its inputs in either identity order."""
    subs = step.subscripts
    if subs is None:  # no letters for it: the step itself, in this plan only
        own = ("step", id(plan), step.out)
        return own, own
    lhs, out = subs.split("->")
    a, b = lhs.split(",")
    return canonical_subscripts([a, b], out), canonical_subscripts([b, a], out)


def sharing_program(plan: Plan, be: Backend) -> Callable[..., Any]:
    """``plan`` on ``be`` as a function of the operands that looks every step up in the
    current sharing cache (see the module doc; compiled once per plan and backend).

    Sliced and structured plans run as usual, without sharing."""
    if plan.tree.sliced or plan.structure is not None:
        return program_for(plan, be)
    return cached(plan, ("sharing", be.name), lambda: _build(plan, be))  # type: ignore[no-any-return]


def _build(plan: Plan, be: Backend) -> Callable[..., Any]:
    if plan.shared is not None:
        sh = plan.shared
        inner = sharing_program(sh.inner, be)
        outer = _steps_program(plan, be)
        first, rest = sh.first, sh.rest

        def prog(*operands: Any) -> Any:
            r = inner(*[operands[k] for k in first])
            return outer(r, r, *[operands[k] for k in rest])

        return prog
    return _steps_program(plan, be)


def _steps_program(plan: Plan, be: Backend) -> Callable[..., Any]:
    name = be.name
    preps = []
    pairs = []
    for s in plan.steps:
        fn = step_function(s, be)
        if s.kind is StepKind.PREP:
            preps.append((s.out, fn, ("prep", s.cast, s.squeeze, s.diagonal, s.sum_axes)))
        else:
            pairs.append((s.args[0], s.args[1], fn, _pair_keys(s, plan)))
    final = final_function(plan, be)
    final_tag = (plan.output_perm, plan.output_reshape)
    if not pairs and not preps and final is None:
        return compile_program(plan, be)

    def prog(*operands: Any) -> Any:
        cache = get_sharing_cache() if currently_sharing() else {}
        regs = list(operands)
        for k, f, tag in preps:
            x = regs[k]
            regs[k] = shared_call(cache, ("einsum", name, tag, (id(x),)), (x,),
                                  lambda f=f, x=x: f(x))  # type: ignore[misc]
        for i, j, f, (ab, ba) in pairs:
            a, b = regs[i], regs[j]
            key = ("einsum", name, ab, (id(a), id(b))) if id(a) <= id(b) else \
                ("einsum", name, ba, (id(b), id(a)))
            regs.append(shared_call(cache, key, (a, b),
                                    lambda f=f, a=a, b=b: f(a, b)))  # type: ignore[misc]
            regs[i] = regs[j] = None
        r = regs[-1]
        if final is not None:
            r = shared_call(cache, ("transpose", name, id(r), final_tag), (r,),
                            lambda: final(r))
        return r

    return prog
