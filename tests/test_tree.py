import random

import pytest
from opt_einsum.paths import linear_to_ssa, ssa_to_linear

from einopt.errors import PathError
from einopt.network import build_network
from einopt.parse import parse
from einopt.tree import ContractionTree, tree_cost, tree_totals

from networks import all_trees, rand_equation


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_linear_and_ssa_round_trip_against_opt_einsum(n):
    for tree in all_trees(n):
        ssa = tree.ssa_path()
        linear = tree.linear_path()
        assert [tuple(sorted(p)) for p in ssa_to_linear(ssa)] == linear
        assert ContractionTree.from_linear_path(n, linear) == tree
        assert [tuple(p) for p in linear_to_ssa(linear)] == [tuple(sorted(m)) for m in ssa]
        assert ContractionTree.from_ssa_path(n, ssa) == tree


def test_multiway_and_single_entries():
    t = ContractionTree.from_linear_path(4, [(1,), (0, 1, 2), (0, 1)])
    assert len(t.merges) == 3
    assert ContractionTree.left_to_right(4).merges == ((0, 1), (2, 4), (3, 5))


@pytest.mark.parametrize("path", [[(0, 5)], [(0, 0)], [("a", 1)], [()], [(0, 1)]])
def test_bad_paths(path):
    with pytest.raises(PathError):
        ContractionTree.from_linear_path(3, path)


def test_invalid_tree():
    with pytest.raises(PathError):
        ContractionTree(3, ((0, 1), (0, 2)))


@pytest.mark.parametrize("seed", range(12))
def test_tree_totals_agree_with_tree_cost(seed):
    eq, shapes = rand_equation(40, seed, hyper=0.4, num_output=seed % 4)
    net = build_network(parse(eq), shapes)
    rng = random.Random(seed)
    alive = list(range(net.num_tensors))
    merges = []
    while len(alive) > 1:
        x, y = rng.sample(alive, 2)
        alive.remove(x)
        alive.remove(y)
        alive.append(net.num_tensors + len(merges))
        merges.append((x, y))
    tree = ContractionTree(net.num_tensors, tuple(merges))
    full, fast = tree_cost(net, tree), tree_totals(net, tree)
    assert (fast.flops, fast.max_size, fast.write) == (full.flops, full.max_size, full.write)
    sliced = list(net.sizes)
    sliced[0] = 1
    assert tree_totals(net, tree, sliced).flops == tree_cost(net, tree, sliced).flops
