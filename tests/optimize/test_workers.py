"""``hyper`` with worker processes: independent searches on one clock, the best tree kept."""

import math
import time

import numpy as np
import pytest

import einopt
from einopt.errors import PathError, PathTypeError
from einopt.network import build_network
from einopt.optimize import Budget, hyper, workers_of
from einopt.optimize.reference import reference_greedy
from einopt.optimize.workers import collect, submit
from einopt.parse import parse
from einopt.tree import ContractionTree, tree_cost

from networks import rand_equation

hyper_module = __import__("einopt.optimize.hyper", fromlist=["_score"])


def _network(n=60, seed=0):
    eq, shapes = rand_equation(n, seed, hyper=0.3, num_output=1)
    return build_network(parse(eq), shapes)


def test_collect_keeps_what_is_done_in_time_and_drops_failures():
    futures = submit(math.sqrt, [(4.0,), (-1.0,)])  # the second raises ValueError
    assert collect(futures, time.perf_counter() + 30) == [2.0]
    start = time.perf_counter()
    late = submit(time.sleep, [(0.8,)])
    assert collect(late, time.perf_counter() + 0.1) == []
    assert time.perf_counter() - start < 0.6


@pytest.mark.parametrize(("parallel", "expected"), [(False, 1), (None, 1), (1, 1), (3, 3)])
def test_workers_of(parallel, expected):
    assert workers_of(parallel) == expected


def test_workers_of_true_is_one_per_cpu_and_bad_values_are_refused():
    assert workers_of(True) >= 1
    with pytest.raises(PathError, match="at least 1"):
        workers_of(0)
    with pytest.raises(PathTypeError, match="parallel"):
        workers_of("2")
    with pytest.raises(PathTypeError, match="parallel"):
        workers_of(2.5)


def test_the_best_tree_of_all_searches_is_kept(monkeypatch):
    """The workers' trees are scored as this process's: a cheaper one wins, a costlier
    one does not, and each worker searches from a seed of its own."""
    net = _network()
    cheap, costly = sorted([reference_greedy(net), ContractionTree.left_to_right(
        net.num_tensors)], key=lambda t: tree_cost(net, t).flops)
    assert tree_cost(net, cheap).flops < tree_cost(net, costly).flops
    calls = []

    def fake_submit(fn, args):
        calls.extend(args)
        return []

    monkeypatch.setattr(hyper_module, "submit", fake_submit)
    for own, theirs, best in [(cheap, costly, cheap), (costly, cheap, cheap)]:
        monkeypatch.setattr(hyper_module, "hyper", lambda network, budget, own=own: own)
        monkeypatch.setattr(hyper_module, "collect", lambda futures, end, t=theirs: [t])
        assert hyper_module._best_of_workers(net, Budget(max_time=0.2, seed=5,
                                                          workers=3)) is best
    assert [budget.seed for _, budget, _ in calls[:2]] == [5 + 7919, 5 + 2 * 7919]
    assert all(budget.workers == 1 and not budget.progress for _, budget, _ in calls)


def test_workers_search_on_the_callers_clock():
    """A real run: the worker's tree comes back before the budget ends, and the result is
    no worse than the greedy floor, in the budget's time."""
    net = _network(120, 1)
    returned = []
    original = hyper_module.collect

    def spy(futures, end):
        found = original(futures, end)
        returned.append(len(found))
        return found

    hyper_module.collect = spy
    try:
        start = time.perf_counter()
        tree = hyper(net, Budget(max_time=2.0, seed=0, workers=2, started=start))
        wall = time.perf_counter() - start
    finally:
        hyper_module.collect = original
    assert returned == [1]
    assert tree_cost(net, tree).flops <= tree_cost(net, reference_greedy(net)).flops
    assert wall < 2.2


def test_plan_and_path_optimizer_take_parallel():
    eq, shapes = rand_equation(30, 2, hyper=0.3, num_output=1)
    p = einopt.plan(eq, *shapes, optimize="hyper", max_time=0.5, seed=0, parallel=2)
    ops = [np.random.default_rng(k).random(s) for k, s in enumerate(shapes)]
    np.testing.assert_allclose(p(*ops), np.einsum(eq, *ops, optimize=["einsum_path", *p.path]),
                               rtol=1e-6)
    opt = einopt.PathOptimizer("hyper", max_time=0.3, parallel=2)
    assert "parallel=2" in repr(opt)
    with pytest.raises(PathError):
        einopt.plan(eq, *shapes, optimize="hyper", parallel=0)
