"""Many threads plan and evaluate random einsums on shared caches at once.

Eight threads, started together, call ``einopt.einsum`` and ``einopt.plan(...)(*ops)``
on random equations (2 to 5 operands, repeated indices, implicit and explicit outputs,
ellipses, the same array passed twice, sliced plans on the shared thread pool) drawn
from a pool of problems (a few of them often) with some new ones mixed in, while the
caches these calls fill (parses, plans, compiled calls) are shrunk to a few entries, so
that entries are evicted while other threads read them, and one thread empties every
cache now and then. No call may raise and every result must equal ``numpy.einsum``'s,
on numpy and on torch operands.

``EINOPT_STRESS_CALLS`` sets the number of calls per backend (default 2,400).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import einopt
from einopt import parse
from einopt.api import planning
from einopt.caches import BoundedDict, Memo, register, registered

from api_helpers import race_with_clear

THREADS = 8
CALLS = int(os.environ.get("EINOPT_STRESS_CALLS", "2400"))
SMALL = 16  # the bound of the caches the run fills
POOL = 200  # problems drawn again and again: caches hit, miss and evict
HOT = 8  # the first few of them, drawn half the time: mostly hits
LABELS = "abcdefg"
RTOL = 1e-10  # float64; operands are positive, so no sum cancels


@dataclass(frozen=True)
class Problem:
    """One einsum: its equation, operand shapes, which operands are one array, and an
    optional memory limit (a sliced plan)."""

    eq: str
    shapes: tuple[tuple[int, ...], ...]
    same: tuple[int, ...]  # per operand, the first operand holding the same array
    memory_limit: int | None = None


def random_problem(rng: np.random.Generator) -> Problem:
    """A random einsum numpy accepts, with 2 to 5 operands of at most 4 labels each."""
    sizes = {c: int(rng.integers(1, 5)) for c in LABELS}
    ellipsis = rng.random() < 0.15
    batch = tuple(int(d) for d in rng.integers(1, 4, size=int(rng.integers(0, 3))))
    terms: list[str] = []
    shapes: list[tuple[int, ...]] = []
    same: list[int] = []
    for k in range(int(rng.integers(2, 6))):
        if k and rng.random() < 0.15:  # an earlier operand's array, passed again
            j = int(rng.integers(k))
            terms.append(terms[j])
            shapes.append(shapes[j])
            same.append(same[j])
            continue
        term = list(rng.choice(list(LABELS), size=int(rng.integers(0 if k else 1, 4)),
                               replace=False))
        if term and rng.random() < 0.2:  # a repeated index: a diagonal
            term.insert(int(rng.integers(len(term) + 1)), term[int(rng.integers(len(term)))])
        shape = [sizes[c] for c in term]
        if ellipsis and (k == 0 or rng.random() < 0.7):
            pos = int(rng.integers(len(term) + 1))
            dims = [1 if rng.random() < 0.25 else d
                    for d in batch[int(rng.integers(len(batch) + 1)):]]
            term.insert(pos, "...")
            shape[pos:pos] = dims
        terms.append("".join(term))
        shapes.append(tuple(shape))
        same.append(k)
    eq = ",".join(terms)
    if rng.random() < 0.75:  # explicit output: some of the labels, in any order
        seen = sorted({c for t in terms for c in t if c.isalpha()})
        out = [str(c) for c in rng.permutation(seen)[:int(rng.integers(len(seen) + 1))]]
        if ellipsis:
            out.insert(int(rng.integers(len(out) + 1)), "...")
        eq += "->" + "".join(out)
    limit = sliced_limit(eq, shapes) if rng.random() < 0.08 else None
    return Problem(eq, tuple(shapes), tuple(same), limit)


def sliced_limit(eq: str, shapes: list[tuple[int, ...]]) -> int | None:
    """The least of 4, 8, 16, ... elements that einopt plans this einsum within, below
    its unlimited plan's largest tensor (so the plan is sliced); None if there is none."""
    top = einopt.plan(eq, *shapes).max_size
    limit = 4
    while limit < top:
        try:
            einopt.plan(eq, *shapes, memory_limit=limit)
            return limit
        except einopt.EinsumError:  # too little for the result or a kernel's buffer
            limit *= 2
    return None


def operands(p: Problem, rng: np.random.Generator) -> list[np.ndarray]:
    """Positive float64 operands of ``p``; operands marked alike are one array."""
    arrays: list[np.ndarray] = []
    for k, (shape, j) in enumerate(zip(p.shapes, p.same, strict=True)):
        arrays.append(arrays[j] if j != k else rng.uniform(0.5, 1.5, shape))
    return arrays




@pytest.fixture
def small_caches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The caches a call fills bounded at ``SMALL`` entries while the test runs (restored
    after): every :class:`BoundedDict` has its bound lowered; the parse and plan caches
    (``functools.lru_cache``, whose bound is fixed) are replaced by small ones,
    registered under their names so that ``clear_caches()`` empties them.
    """
    einopt.clear_caches()
    for cache in registered().values():
        if isinstance(cache, BoundedDict) and cache.maxsize > SMALL:
            monkeypatch.setattr(cache, "maxsize", SMALL)
    before = registered()
    cached = [(planning, "plan_cached", "plans"), (parse, "parse_cached", "parse")]
    for module, attr, name in cached:
        small = functools.lru_cache(maxsize=SMALL)(getattr(module, attr).__wrapped__)
        monkeypatch.setattr(module, attr, small)
        register(name, Memo(small))
    try:
        yield
    finally:
        einopt.clear_caches()
        for name in ("plans", "parse"):
            register(name, before[name])


def _lib(name: str) -> tuple[Callable[[np.ndarray], Any], Callable[[Any], np.ndarray]]:
    """How to turn numpy operands into library ``name``'s arrays, and results back."""
    if name == "numpy":
        return (lambda x: x), np.asarray
    torch = pytest.importorskip("torch")
    return torch.from_numpy, lambda t: t.numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _call(kind: int, p: Problem, ops: list[Any]) -> Any:
    """One of the ways to evaluate ``p``: einsum, a plan made for the arrays, or for
    their shapes (sliced problems: on the shared thread pool)."""
    if p.memory_limit is not None:
        limit = {"memory_limit": p.memory_limit}
        if kind == 0:
            return einopt.einsum(p.eq, *ops, executor="threads", **limit)
        return einopt.plan(p.eq, *(ops if kind == 1 else p.shapes), **limit)(
            *ops, executor="threads")
    if kind == 0:
        return einopt.einsum(p.eq, *ops)
    return einopt.plan(p.eq, *(ops if kind == 1 else p.shapes))(*ops)


def stress(backend: str, calls: int, threads: int = THREADS, seed: int = 0,
           clear_every: int = 40) -> tuple[int, list[str]]:
    """Run ``calls`` random calls on ``threads`` threads at once (thread 0 empties every
    cache each ``clear_every`` calls); the number of calls made and the failures."""
    to_lib, to_numpy = _lib(backend)
    pool = [random_problem(np.random.default_rng([seed, k])) for k in range(POOL)]
    barrier = threading.Barrier(threads)
    counts = [0] * threads
    errors: list[str] = []

    def work(t: int) -> None:
        rng = np.random.default_rng([seed, POOL, t])
        barrier.wait()
        for n in range(t, calls, threads):
            r = rng.random()
            p = pool[int(rng.integers(HOT))] if r < 0.5 else pool[int(rng.integers(POOL))]
            try:
                if r >= 0.9:  # a new problem (drawing it plans it: more traffic)
                    p = random_problem(rng)
                ops = operands(p, rng)
                got = to_numpy(_call(n % 3, p, [to_lib(x) for x in ops]))
                np.testing.assert_allclose(got, np.einsum(p.eq, *ops), rtol=RTOL, atol=0)
            except Exception as e:  # noqa: BLE001 - every failure is reported
                errors.append(f"{p} call {n % 3}: {type(e).__name__}: {e}")
            counts[t] += 1
            if t == 0 and n % clear_every == 0:
                einopt.clear_caches()

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts), errors


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_threads_plan_and_evaluate_on_shared_evicting_caches(backend: str,
                                                             small_caches: None) -> None:
    made, errors = stress(backend, CALLS)
    assert made == CALLS
    assert not errors, f"{len(errors)} of {made} calls failed:\n" + "\n".join(errors[:5])


def test_random_problems_are_valid_numpy_einsums() -> None:
    """The generator makes what the stress test needs: valid equations of every kind."""
    rng = np.random.default_rng(1)
    problems = [random_problem(rng) for _ in range(500)]
    for p in problems:
        np.einsum(p.eq, *operands(p, rng))
    assert {len(p.shapes) for p in problems} == {2, 3, 4, 5}
    assert any("..." in p.eq for p in problems) and any("->" not in p.eq for p in problems)
    assert any(p.same != tuple(range(len(p.same))) for p in problems)
    assert any(p.memory_limit for p in problems)
    assert any(any(len(set(t)) < len(t) for t in p.eq.split("->")[0].replace(".", "")
                   .split(",")) for p in problems)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_sliced_calls_survive_clear_caches(backend: str) -> None:
    """Sliced plans on the shared thread pool while another thread keeps emptying the
    caches (which shuts that pool down): every call still completes, correctly."""
    to_lib, to_numpy = _lib(backend)
    rng = np.random.default_rng(2)
    a, b, c, d = (rng.uniform(0.5, 1.5, (8, 8)) for _ in range(4))
    want = np.einsum("ab,bc,cd,da->a", a, b, c, d)
    assert einopt.plan("ab,bc,cd,da->a", a, b, c, d, memory_limit=32).tree.sliced
    errors: list[str] = []

    def work() -> None:
        ops = [to_lib(x) for x in (a, b, c, d)]
        for _ in range(40):
            try:
                got = einopt.einsum("ab,bc,cd,da->a", *ops, memory_limit=32,
                                    executor="threads")
                np.testing.assert_allclose(to_numpy(got), want, rtol=RTOL)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(f"{type(e).__name__}: {e}")

    race_with_clear([threading.Thread(target=work) for _ in range(4)], pause=0.0005)
    assert not errors, f"{len(errors)} of 160 calls failed: {sorted(set(errors))[:3]}"
