"""Every cache is registered in one place, bounded, filled by use, emptied by clear_caches,
and safe when many threads use (and clear) it at once."""

import threading
from concurrent.futures import Future

import numpy as np
import pytest

import einopt
from einopt.caches import BoundedDict, registered

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
    einopt.einsum("ij,jk,kl->il", big, big, big, memory_limit=16, executor="threads")
    p = einopt.plan("ij,jk,kl->il", big, big, big, memory_limit=16)
    p(big, big, big, executor=InlineExecutor())  # tasks rebuild the plan from JSON


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
                "worker plans", "torch diagonals", "tracked backward forms"}
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
    stop = threading.Event()

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

    def clear():
        while not stop.is_set():
            einopt.clear_caches()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    cleaner = threading.Thread(target=clear)
    cleaner.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    cleaner.join()
    assert not errors, errors[:3]
