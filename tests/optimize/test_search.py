"""Randomized and anytime searches: valid, deterministic per seed, never worse than their start."""

import math
import random
import time

import numpy as np
import pytest

import einopt
from einopt.network import build_network
from einopt.optimize import Budget, hyper, parse_objective
from einopt.optimize.anneal import anneal
from einopt.optimize.greedy import greedy, greedy_tree
from einopt.optimize.optimal import optimal
from einopt.optimize.partition import bisect, partition_tree
from einopt.optimize.refine import reconfigure
from einopt.parse import parse
from einopt.tree import ContractionTree, tree_cost

from networks import brute_force_flops, rand_equation


def network(n, seed, **kw):
    eq, shapes = rand_equation(n, seed, **kw)
    return build_network(parse(eq), shapes)


def flops(net, tree):
    return tree_cost(net, tree).flops


@pytest.mark.parametrize("seed", range(6))
def test_random_greedy_valid_and_seeded(seed):
    net = network(30, seed, hyper=0.3)
    a = greedy_tree(net, alpha=0.7, temperature=0.3, seed=seed)
    b = greedy_tree(net, alpha=0.7, temperature=0.3, seed=seed)
    assert a == b and len(a.merges) == 29
    assert greedy_tree(net, temperature=0.0) == greedy_tree(net)


@pytest.mark.parametrize("seed", range(6))
def test_partition_tree_valid_and_seeded(seed):
    net = network(40, seed, hyper=0.3, degree=3)
    a = partition_tree(net, imbalance=0.2, cutoff=5, seed=seed)
    assert a == partition_tree(net, imbalance=0.2, cutoff=5, seed=seed)
    assert len(a.merges) == 39


def test_partition_handles_disconnected_networks():
    net = build_network(parse("ab,bc,de,ef,g,h->"), [(2, 3), (3, 4), (2, 3), (3, 4), (5,), (6,)])
    tree = partition_tree(net, cutoff=2, seed=0)
    assert len(tree.merges) == 5


def test_bisect_is_balanced_and_beats_random():
    net = network(200, 1, hyper=0.0, degree=3)
    nodes = list(range(net.num_tensors))
    edges = [list(t) for t in net.terms]
    w = [math.log2(s) for s in net.sizes]
    side = bisect(nodes, edges, w, 0.1, random.Random(0))
    assert 90 <= len(side) <= 110

    def cut(a):
        return sum(w[i] for i in range(net.num_indices)
                   if 0 < sum(1 for t in a if i in net.terms[t]) < sum(i in t for t in net.terms))

    rand = set(random.Random(0).sample(nodes, 100))
    assert cut(side) < 0.5 * cut(rand)


@pytest.mark.parametrize("seed", range(8))
def test_reconfigure_never_worse_and_exact_when_k_covers_all(seed):
    net = network(7, seed, hyper=0.3, num_output=seed % 2)
    start = greedy_tree(net, temperature=1.0, seed=seed)
    better = reconfigure(net, start, k=8)
    assert flops(net, better) <= flops(net, start)
    assert flops(net, better) == brute_force_flops(net)


@pytest.mark.parametrize("local", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_anneal_never_worse_and_seeded(seed, local):
    net = network(40, seed, hyper=0.2)
    start = greedy(net)
    t = 0.5 if local else 0.05
    a = anneal(net, start, 3000, seed=seed, t_start=t, local=local)
    assert a == anneal(net, start, 3000, seed=seed, t_start=t, local=local)
    assert flops(net, a) <= flops(net, start)
    assert a.num_leaves == net.num_tensors and len(a.merges) == net.num_tensors - 1


@pytest.mark.parametrize("local", [False, True])
@pytest.mark.parametrize("seed", [48, 58, 164, 170])
def test_anneal_prices_merges_of_scalars(seed, local):
    """Tensors whose indices are all summed inside them are scalars (empty index sets);
    a merge of two is priced as one multiplication, not as the last size priced, so
    the tree returned is never costlier than the start."""
    eq, shapes = rand_equation(12, seed, hyper=0.2, num_output=0)
    inputs = eq.split("->")[0].split(",")
    net = build_network(parse(",".join([*inputs, "A", "B", "C"]) + "->"),
                        [*shapes, (7,), (3,), (5,)])
    start = greedy_tree(net, temperature=1.0, seed=seed)
    tree = anneal(net, start, 2000, seed, t_start=0.5 if local else 0.05, local=local)
    assert flops(net, tree) <= flops(net, start)


def test_local_acceptance_applies_to_flops_alone():
    """The local criterion compares the two changed merges' log costs, a flop measure;
    an objective that counts writes keeps the global one, so the flag changes nothing."""
    net = network(30, 2, hyper=0.2)
    start = greedy(net)
    write = parse_objective("write")
    assert anneal(net, start, 2000, 3, write, local=True) == anneal(net, start, 2000, 3, write)
    assert anneal(net, start, 2000, 3, local=True, t_start=0.5) != anneal(
        net, start, 2000, 3, t_start=0.5)


def test_hyper_exact_on_small_networks():
    for seed in range(5):
        net = network(8, seed, hyper=0.3)
        tree = hyper(net, Budget(max_time=0.2, seed=0))
        assert flops(net, tree) == flops(net, optimal(net))


def test_hyper_beats_greedy_and_honours_time():
    net = network(60, 3, hyper=0.2, degree=3)
    t0 = time.perf_counter()
    tree = hyper(net, Budget(max_time=0.5, seed=1))
    elapsed = time.perf_counter() - t0
    assert flops(net, tree) <= flops(net, greedy(net))
    assert elapsed < 0.5 * 1.1 + 0.05


@pytest.mark.parametrize("minimize", ["size", "write", "combo", "combo-8"])
def test_objectives_pick_their_optimum(minimize):
    net = network(7, 2, hyper=0.3)
    obj = parse_objective(minimize)
    tree = einopt.optimize._optimal(net, Budget(objective=obj))
    best = min(obj.score(tree_cost(net, t)) for t in _all_trees(7))
    assert obj.score(tree_cost(net, tree)) == pytest.approx(best)


def _all_trees(n):
    from networks import all_trees

    return list(all_trees(n))


def test_bad_objective():
    with pytest.raises(einopt.PathError, match="minimize"):
        einopt.plan("ij,jk->ik", (2, 3), (3, 4), minimize="speed")


@pytest.mark.parametrize("optimize", ["greedy", "auto", "hyper"])
def test_memory_limit_met_and_results_equal(optimize):
    eq, shapes = rand_equation(9, 4, hyper=0.3, num_output=2, max_size=4)
    rng = np.random.default_rng(0)
    ops = [rng.standard_normal(s) for s in shapes]
    full = einopt.plan(eq, *shapes, optimize=optimize, max_time=0.2, seed=0)
    limit = max(1, full.max_size // 16)
    sliced = einopt.plan(eq, *shapes, optimize=optimize, max_time=0.2, seed=0,
                         memory_limit=limit)
    assert sliced.max_size <= limit and sliced.sliced
    np.testing.assert_allclose(sliced(*ops), np.einsum(eq, *ops), rtol=1e-9, atol=1e-9)


def test_large_network_greedy_and_tree_roundtrip():
    from einopt.parse import parse_sublist

    rng = random.Random(0)
    n = 2000
    stubs = [t for t in range(n) for _ in range(3)]
    rng.shuffle(stubs)
    terms: list[list[int]] = [[] for _ in range(n)]
    for e in range(len(stubs) // 2):
        terms[stubs[2 * e]].append(e)
        terms[stubs[2 * e + 1]].append(e)
    args: list = []
    for t in terms:
        args += [None, t]
    eq, _ = parse_sublist([*args, []])
    net = build_network(eq, [tuple(2 for _ in t) for t in terms])
    tree = greedy(net)
    assert len(tree.merges) == n - 1
    back = ContractionTree.from_linear_path(n, tree.linear_path())
    assert [frozenset(m) for m in back.merges] == [frozenset(m) for m in tree.merges]


@pytest.mark.parametrize("seed", range(6))
def test_sweeping_greedy_valid(seed):
    net = network(40, seed, hyper=0.3, degree=3)
    tree = greedy_tree(net, regime="sweep", temperature=0.1 * (seed % 2), seed=seed)
    assert len(tree.merges) == 39
    assert tree == greedy_tree(net, regime="sweep", temperature=0.1 * (seed % 2), seed=seed)


def test_sweeping_greedy_disconnected():
    net = build_network(parse("ab,bc,cd,ef,fg,h->"), [(2, 3), (3, 4), (4, 2), (2, 3), (3, 2), (5,)])
    assert len(greedy_tree(net, regime="sweep").merges) == 5


def test_auto_never_worse_than_plain_greedy():
    for seed in range(5):
        net = network(60, seed, hyper=0.2, degree=3)
        assert flops(net, einopt.optimize.auto(net)) <= flops(net, greedy(net))


@pytest.mark.parametrize("seed", range(5))
def test_greedy_run_counts_its_flops_exactly(seed):
    from einopt.optimize.greedy import REGIMES, greedy_run

    net = network(30, seed, hyper=0.3)
    for regime in REGIMES:
        tree, total = greedy_run(net, temperature=0.2, seed=seed, regime=regime)
        assert total == flops(net, tree)


def test_kahypar_profile_shipped_or_chosen(monkeypatch):
    from einopt.optimize.partition import kahypar_profile

    pytest.importorskip("kahypar")
    monkeypatch.delenv("EINOPT_KAHYPAR_PROFILE", raising=False)
    assert kahypar_profile().endswith("kahypar_cut.ini")
    monkeypatch.setenv("EINOPT_KAHYPAR_PROFILE", "none")
    assert kahypar_profile() is None
    monkeypatch.setenv("EINOPT_KAHYPAR_PROFILE", "/no/such/profile.ini")
    assert kahypar_profile() is None


def _kahypar_ready():
    from einopt.optimize.partition import kahypar_profile

    return kahypar_profile() is not None


@pytest.mark.skipif(not _kahypar_ready(), reason="kahypar or EINOPT_KAHYPAR_PROFILE not set")
def test_kahypar_partition_tree_valid():
    from einopt.optimize.partition import kahypar_bisect, kahypar_profile

    net = network(60, 1, hyper=0.2, degree=3)
    tree = partition_tree(net, imbalance=0.1, cutoff=5, seed=0)
    assert len(tree.merges) == 59
    nodes = list(range(60))
    side = kahypar_bisect(nodes, [list(t) for t in net.terms],
                          [math.log2(s) for s in net.sizes], 0.1, 0, kahypar_profile())
    assert 25 <= len(side) <= 35


@pytest.mark.parametrize("seed", range(4))
def test_hybrid_greedy_is_opt_einsums_rule_and_auto_beats_it(seed):
    """On graphs without hyperedges the hybrid regime finds opt_einsum's greedy tree."""
    oe = pytest.importorskip("opt_einsum")
    eq, shapes = rand_equation(40, seed, hyper=0.0, num_output=0)
    net = build_network(parse(eq), shapes)
    path, _ = oe.contract_path(eq, *shapes, shapes=True, optimize="greedy")
    theirs = flops(net, ContractionTree.from_linear_path(net.num_tensors, list(path)))
    assert flops(net, greedy_tree(net, regime="hybrid")) == theirs
    assert flops(net, einopt.optimize.auto(net)) <= theirs


@pytest.mark.parametrize("local", [False, True])
@pytest.mark.parametrize("temp", [0.01, 1.0, 100.0])
def test_annealing_over_a_huge_range_of_costs(temp, local):
    """Moves whose cost passes 2^1000 times the tree's largest merge, and the running
    total's rounding, leave annealing in float range: no OverflowError, a whole tree
    within its model's reach of the start (annealing prices merges by their sizes)."""
    from einopt.parse import parse
    from einopt.tree import tree_cost

    from networks import rand_equation

    eq, shapes = rand_equation(150, 7, hyper=0.5, num_output=2, max_size=64)
    net = build_network(parse(eq), shapes)
    start = greedy_tree(net, temperature=0.5, seed=1)
    for seed in range(3):
        tree = anneal(net, start, 4000, seed, parse_objective("flops"), list(net.sizes),
                      t_start=temp, t_end=temp, local=local)
        assert tree.num_leaves == net.num_tensors and len(tree.merges) == net.num_tensors - 1
        assert tree_cost(net, tree).flops <= 1.01 * tree_cost(net, start).flops
