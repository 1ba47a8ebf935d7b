"""The ``fast`` extra (cotengrust): the same guarantees with it and without it."""

import pytest

from einopt.network import build_network
from einopt.optimize import Budget, auto, get_optimizer, hyper
from einopt.optimize.fast import Compiled, accelerator
from einopt.optimize.objective import Objective
from einopt.optimize.optimal import full_dp
from einopt.optimize.reference import reference_greedy
from einopt.parse import parse
from einopt.tree import tree_cost

from networks import rand_equation

cotengrust = pytest.importorskip("cotengrust")


def network(n, seed, **kw):
    eq, shapes = rand_equation(n, seed, **kw)
    return build_network(parse(eq), shapes)


@pytest.fixture(params=["compiled", "python"])
def mode(request, monkeypatch):
    if request.param == "python":
        monkeypatch.setenv("EINOPT_FAST", "0")
        assert accelerator() is None
    else:
        monkeypatch.delenv("EINOPT_FAST", raising=False)
        assert accelerator() is not None
    return request.param


def test_switch(monkeypatch):
    monkeypatch.setenv("EINOPT_FAST", "off")
    assert accelerator() is None
    monkeypatch.setenv("EINOPT_FAST", "1")
    assert accelerator() is cotengrust


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("objective", ["flops", "write", "size", "combo"])
def test_compiled_exact_search_matches_the_python_one(seed, objective):
    net = network(9, seed, hyper=0.2, num_output=seed % 3)
    obj = Objective(objective)
    mine = tree_cost(net, full_dp(net, obj))
    theirs = Compiled(net, cotengrust).optimal(obj)
    assert theirs is not None and len(theirs.merges) == net.num_tensors - 1
    a, b = obj.score(mine), obj.score(tree_cost(net, theirs))
    assert b == pytest.approx(a, abs=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_compiled_greedy_trees_are_valid_and_seeded(seed):
    net = network(60, seed, hyper=0.3, num_output=2)
    c = Compiled(net, cotengrust)
    a = c.greedy(costmod=0.7, temperature=0.2, seed=seed)
    assert len(a.merges) == net.num_tensors - 1
    assert a == c.greedy(costmod=0.7, temperature=0.2, seed=seed)


@pytest.mark.parametrize("seed", range(6))
def test_auto_and_hyper_never_worse_than_the_floor(mode, seed):
    net = network(80, seed, hyper=0.3, num_output=1 + seed % 2)
    floor = tree_cost(net, reference_greedy(net)).flops
    assert tree_cost(net, auto(net)).flops <= floor
    tree = hyper(net, Budget(max_time=0.3, seed=seed))
    assert tree_cost(net, tree).flops <= floor


@pytest.mark.parametrize("seed", range(4))
def test_optimal_beyond_the_full_search_same_cost(monkeypatch, seed):
    net = network(15, seed, hyper=0.1, degree=2)
    get = get_optimizer("optimal")
    monkeypatch.setenv("EINOPT_FAST", "0")
    plain = tree_cost(net, get(net, Budget())).flops
    monkeypatch.setenv("EINOPT_FAST", "1")
    assert tree_cost(net, get(net, Budget())).flops == plain
