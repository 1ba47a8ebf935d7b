"""Every cache is registered in one place, bounded, filled by use, emptied by clear_caches,
and safe when many threads use (and clear) it at once."""

import gc
import threading
from concurrent.futures import Future

import numpy as np
import pytest

import einopt
from einopt.caches import BoundedDict, registered
from einopt.network import build_network
from einopt.optimize.partition import partition_tree
from einopt.parse import parse
from einopt.plan import Plan as PlanValue

from api_helpers import race_with_clear

rng = np.random.default_rng(0)


class InlineExecutor:
    """Runs each task at once in this process (a stand-in for a remote executor: tasks
    receive the plan as JSON, as worker processes do)."""

    def submit(self, fn, *args, **kwargs):
        f = Future()
        f.set_result(fn(*args, **kwargs))
        return f


def _fill_numpy():
    a, b = rng.random((3, 4)), rng.random((4, 5))
    for _ in range(2):  # the second call takes the front cache
        einopt.einsum("ij,jk->ik", a, b)
    x = rng.random((1, 3, 8))
    w = rng.random((2, 3, 3))
    einopt.einsum("nci,mck,koi->nmo", x, w, einopt.conv_pattern(8, 3))  # rewrites, structured
    einopt.hessian_trace_einsum(rng.random((4, 3)), [rng.random((3, 3)) for _ in range(2)])
    big = rng.random((8, 8))
    einopt.einsum("ij,jk,kl->il", big, big, big, memory_limit=100, executor="threads")
    p = einopt.plan("ij,jk,kl->il", big, big, big, memory_limit=100)
    p(big, big, big, executor=InlineExecutor())  # tasks rebuild the plan from JSON
    ring = build_network(parse("ab,bc,cd,de,ea->"), [(2, 3), (3, 4), (4, 5), (5, 2), (2, 2)])
    partition_tree(ring, seed=0)  # the reduced network its splits read


def _fill_torch():
    torch = pytest.importorskip("torch")
    import einopt.torch as et

    t = torch.randn(3, 3)
    einopt.einsum("ii->i", t)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    with et.track(model, ["grad_norm2"]):
        model(torch.randn(5, 4)).square().sum().backward()


def test_every_cache_is_registered_bounded_filled_and_emptied():
    einopt.clear_caches()
    _fill_numpy()
    _fill_torch()
    caches = registered()
    expected = {"parse", "plans", "structured plans", "front", "switch schedules", "rewrites",
                "switch expansions", "array types", "backends", "executor pools",
                "worker plans", "torch diagonals", "tracked backward forms", "reduced networks"}
    assert expected <= set(caches)
    empty = [name for name, c in caches.items() if len(c) == 0]
    assert not empty, f"not filled by use: {empty}"
    einopt.clear_caches()
    left = {name: len(c) for name, c in registered().items() if len(c)}
    assert not left, f"not emptied by clear_caches: {left}"


def test_bounded_dict_keeps_its_bound_and_evicts_oldest():
    dropped = []
    d = BoundedDict("test bound", 3, on_evict=dropped.append)
    for k in range(5):
        d[k] = k * 10
    assert list(d) == [2, 3, 4] and dropped == [0, 10]
    assert d.setdefault(9, lambda: 90) == 90 and d.setdefault(9, lambda: -1) == 90
    assert len(d) == 3
    d.clear()
    assert len(d) == 0 and dropped == [0, 10, 20, 30, 40, 90]


def test_threads_share_caches_while_another_clears_them():
    """8 threads evaluate random einsums on shared caches while a 9th keeps clearing
    them: no error, every result equal to numpy's."""
    equations = ["ij,jk->ik", "ij,ij->i", "ii->i", "ijk,kl->ijl", "i,i->", "ab,bc,cd->ad",
                 "...i,i->...", "ij->ji"]
    errors = []
    def work(seed):
        r = np.random.default_rng(seed)
        try:
            for _ in range(150):
                eq = equations[r.integers(len(equations))]
                n = int(r.integers(1, 5))
                ins = eq.split("->")[0].split(",")
                ops = [r.random(((2,) if "..." in term else ())
                                + tuple(n for c in term if c.isalpha())) for term in ins]
                got = einopt.einsum(eq, *ops)
                want = np.einsum(eq, *ops)
                if not np.allclose(got, want):
                    errors.append((eq, got, want))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    race_with_clear([threading.Thread(target=work, args=(k,)) for k in range(8)])
    assert not errors, errors[:3]


def _bound(cache) -> int:
    """The most entries ``cache`` may hold."""
    if isinstance(cache, BoundedDict):
        return cache.maxsize
    return int(cache.fn.cache_info().maxsize)  # a memoized function


def _plans() -> list:
    """Every plan alive (by type, not ``isinstance``: that reads ``__class__``, which some
    objects in memory answer with a warning)."""
    return [x for x in gc.get_objects() if issubclass(type(x), PlanValue)]


def test_many_distinct_shapes_keep_every_cache_within_its_bound():
    """3,000 shapes never seen before, planned and evaluated: every cache stays within
    its bound (the plan and front caches fill and evict), and once emptied no plan is
    left alive (nothing outside the registered caches keeps them)."""
    einopt.clear_caches()
    gc.collect()
    before = {id(x) for x in _plans()}  # other tests' plans
    for k in range(3000):
        x, y, z = 2 + k % 20, 2 + k // 20 % 20, 2 + k // 400
        shapes = [((x, y), (y, z)), ((z, x, y), (z, y, 2)), ((x, x, y), (y, z))][k % 3]
        eq = ["ij,jk->ik", "bij,bjk->bik", "aab,bc->ac"][k % 3]
        einopt.plan(eq, *shapes)
        einopt.einsum(eq, *[np.ones(s) for s in shapes])
    sizes = {name: (len(c), _bound(c)) for name, c in registered().items()}
    assert all(n <= bound for n, bound in sizes.values()), sizes
    assert sizes["plans"][0] == sizes["plans"][1] and sizes["front"][0] == sizes["front"][1]
    einopt.clear_caches()
    gc.collect()
    alive = [x for x in _plans() if id(x) not in before]
    assert not alive, f"{len(alive)} plans alive after clear_caches()"
