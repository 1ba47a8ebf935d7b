import itertools
import math

import numpy as np
import pytest

import einopt
from einopt.cost import HolderCounts, count_text, pair_flops, ratio, ratio_text, size_of
from einopt.network import bits, build_network
from einopt.parse import parse
from einopt.tree import ContractionTree, tree_cost

from networks import all_trees, rand_equation, subset_mask


def loop_count(net, a_mask, b_mask):
    """Count the iterations of the nested loops of a pairwise contraction."""
    ranges = [range(net.sizes[i]) for i in bits(a_mask | b_mask)]
    return sum(1 for _ in itertools.product(*ranges))


@pytest.mark.parametrize("seed", range(8))
def test_pair_flops_equal_loop_count(seed):
    eq, shapes = rand_equation(4, seed, max_size=3)
    net = build_network(parse(eq), shapes)
    for a, b in itertools.combinations(net.masks, 2):
        assert pair_flops(a, b, net.sizes) == loop_count(net, a, b)


@pytest.mark.parametrize("seed", range(20))
def test_holder_counts_match_definition_on_every_tree(seed):
    eq, shapes = rand_equation(5, seed, hyper=0.6, num_output=seed % 3)
    net = build_network(parse(eq), shapes)
    for tree in itertools.islice(all_trees(net.num_tensors), 60):
        cost = tree_cost(net, tree)
        leaves = {t: 1 << t for t in range(net.num_tensors)}
        for k, (x, y) in enumerate(tree.merges):
            leaves[net.num_tensors + k] = leaves[x] | leaves[y]
            assert cost.node_masks[net.num_tensors + k] == subset_mask(net, leaves[x] | leaves[y])


def test_result_peek_equals_merge():
    net = build_network(parse("ni,ni,nj,nj->n"), [(4, 5), (4, 5), (4, 6), (4, 6)])
    h = HolderCounts(net.masks, net.output_mask, net.num_indices)
    peek = h.result(net.masks[0], net.masks[1])
    assert peek == h.merge(net.masks[0], net.masks[1]) == 0b001


def test_hyperedge_batch_index_stays_until_last():
    # n is shared by all three tensors and not in the output: it must survive the first merge.
    net = build_network(parse("na,nb,nc->abc"), [(4, 2), (4, 3), (4, 5)])
    tree = ContractionTree(3, ((0, 1), (2, 3)))
    cost = tree_cost(net, tree)
    assert cost.node_masks[3] & 1  # n kept
    assert not cost.node_masks[4] & 1  # n summed at the end
    assert cost.flops == 4 * 2 * 3 + 4 * 2 * 3 * 5
    assert cost.max_size == 2 * 3 * 5


def test_size_of():
    assert size_of(0b101, (2, 3, 4)) == 8
    assert size_of(0, (2, 3)) == 1
    assert math.prod([]) == 1


@pytest.mark.parametrize(("x", "text"), [
    (0, "0"), (12345, "1.23e+04"), (2.5, "2.5"), (10**400, "1.00e+400"),
    (999 * 10**997, "9.99e+999"), (9996 * 10**1200, "1.00e+1204"),
])
def test_count_text_at_any_size(x, text):
    assert count_text(x) == text


def test_ratio_past_the_float_range():
    assert ratio(10**400, 10) == math.inf
    assert ratio(10**400, 10**399) == pytest.approx(10.0)
    assert ratio_text(10**400, 10**100) == "1e+300"
    assert ratio_text(10**900, 10**100) == "1.00e+800"


def test_plans_of_huge_networks_print():
    # 1,100 binary indices: the naive cost is near 2**1100, past any float.
    n = 1100
    ops = []
    for k in range(n):
        ops += [np.ones((2, 2)), [k, (k + 1) % n]]
    p = einopt.plan(*ops, [], optimize="greedy")
    assert p.naive_flops.bit_length() > 1100
    assert p.speedup == math.inf
    for text in (str(p), repr(p), p.explain(), p.code()):
        assert "e+" in text
    assert "speedup=" in repr(p)
