"""``hyper`` under a cut budget and a shared CPU: never below its floor, never far over time.

The wall-time bounds here are loose (a test must not fail on a slow machine); the
benchmark ``benchmarks/paths.py`` reports the measured wall time against the budget.
"""

import multiprocessing
import time

import pytest

from einopt.network import build_network
from einopt.optimize import Budget, hyper
from einopt.optimize.fast import Compiled, accelerator
from einopt.optimize.reference import reference_greedy
from einopt.parse import parse
from einopt.tree import tree_cost

from networks import rand_equation


def _burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


@pytest.fixture
def busy_cpu():
    """Two processes spinning (this machine's CPU shared) for the test's duration."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_burn, args=(20.0,), daemon=True) for _ in range(2)]
    for p in procs:
        p.start()
    yield
    for p in procs:
        p.terminate()
        p.join()


@pytest.mark.parametrize(("n", "budget"), [(300, 0.1), (1500, 0.2)])
def test_cut_budget_on_a_busy_machine_keeps_the_floor(busy_cpu, n, budget):
    eq, shapes = rand_equation(n, 1, hyper=0.3, num_output=2)
    net = build_network(parse(eq), shapes)
    start = time.perf_counter()
    floor_tree = reference_greedy(net)
    floor_time = time.perf_counter() - start
    start = time.perf_counter()
    tree = hyper(net, Budget(max_time=budget, seed=0))
    wall = time.perf_counter() - start
    floor = tree_cost(net, floor_tree).flops
    assert tree_cost(net, tree).flops <= floor
    module = accelerator()
    if module is not None:
        assert tree_cost(net, tree).flops <= tree_cost(net, Compiled(net, module).greedy()).flops
    assert wall < 3 * (budget + floor_time) + 0.5


@pytest.mark.parametrize("budget", [0.05, 0.3, 1.0])
def test_any_budget_keeps_the_floor(budget):
    eq, shapes = rand_equation(200, 3, hyper=0.3, num_output=1)
    net = build_network(parse(eq), shapes)
    tree = hyper(net, Budget(max_time=budget, seed=1))
    assert tree_cost(net, tree).flops <= tree_cost(net, reference_greedy(net)).flops


def test_long_samplers_stop_at_the_deadline():
    """Greedy runs and partition trees take a deadline: past it they raise OutOfTime (a
    single draw on a large hypergraph could otherwise outlast hyper's whole budget)."""
    from einopt.optimize.greedy import greedy_tree
    from einopt.optimize.objective import OutOfTime
    from einopt.optimize.partition import partition_tree

    eq, shapes = rand_equation(2500, 3, hyper=0.3, num_output=1)
    net = build_network(parse(eq), shapes)
    past = time.perf_counter() - 1.0
    with pytest.raises(OutOfTime):
        greedy_tree(net, deadline=past)
    with pytest.raises(OutOfTime):
        partition_tree(net, deadline=past, partitioner="builtin")
    assert greedy_tree(net, deadline=time.perf_counter() + 60).num_leaves == net.num_tensors


@pytest.mark.parametrize("seed", [0, 1])
def test_wall_time_on_a_large_hypergraph(seed):
    """Hyper's wall time stays within 10% of its budget on 6,000 tensors (each sampled
    tree there takes a sizable share of the budget)."""
    eq, shapes = rand_equation(6000, seed, hyper=0.3, num_output=2)
    net = build_network(parse(eq), shapes)
    start = time.perf_counter()
    tree = hyper(net, Budget(max_time=2.0, seed=seed, started=start))
    wall = time.perf_counter() - start
    assert tree_cost(net, tree).flops <= tree_cost(net, reference_greedy(net)).flops
    assert wall <= 2.2


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_during_a_search_and_restored(monkeypatch, enabled):
    """A full collection walks the caller's whole heap (1.5 s on 15 million objects, past
    a 2 s budget): hyper pauses the cyclic collector while it searches, then restores it."""
    import gc
    import importlib

    module = importlib.import_module("einopt.optimize.hyper")
    seen = []
    offer = module._Search.offer

    def watched(self, tree):
        seen.append(gc.isenabled())
        return offer(self, tree)

    monkeypatch.setattr(module._Search, "offer", watched)
    eq, shapes = rand_equation(60, 0, hyper=0.3, num_output=1)
    net = build_network(parse(eq), shapes)
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        hyper(net, Budget(max_time=0.05, seed=0))
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
    assert seen and not any(seen)
