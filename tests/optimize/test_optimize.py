import pytest

from einopt.errors import PathError
from einopt.network import build_network
from einopt.optimize import OPTIMIZERS, Budget, auto, get_optimizer, greedy, optimal
from einopt.optimize.optimal import _connected_dp, full_dp
from einopt.parse import parse
from einopt.tree import tree_cost

from networks import brute_force_flops, rand_equation


def flops(net, tree):
    return tree_cost(net, tree).flops


CASES = [(n, seed) for n in range(2, 8) for seed in range(12)]


@pytest.mark.parametrize(("n", "seed"), CASES)
def test_optimal_equals_brute_force(n, seed):
    eq, shapes = rand_equation(n, seed, hyper=0.4, num_output=seed % 3, degree=2 + seed % 3)
    net = build_network(parse(eq), shapes)
    best = brute_force_flops(net)
    assert flops(net, optimal(net)) == best
    assert flops(net, greedy(net)) >= best
    assert flops(net, auto(net)) == best


def test_outer_product_first_can_be_optimal():
    # a_i b_j C_ijk: the outer product a x b first is the cheapest order when i, j < k.
    net = build_network(parse("i,j,ijk->k"), [(2,), (3,), (2, 3, 50)])
    assert flops(net, optimal(net)) == brute_force_flops(net) == 2 * 3 + 2 * 3 * 50


@pytest.mark.parametrize("seed", range(10))
def test_connected_dp_between_optimum_and_greedy(seed):
    eq, shapes = rand_equation(8, seed, hyper=0.3, degree=3)
    net = build_network(parse(eq), shapes)
    full = flops(net, full_dp(net))
    conn = flops(net, _connected_dp(net))
    assert full <= conn <= flops(net, greedy(net))


def test_connected_dp_keeps_a_greedy_tree_whose_outer_product_wins():
    # 13 tensors joined as a tree: the greedy tree's one outer product makes it cheaper
    # than every connected tree; the search passes the greedy bound and keeps the greedy.
    terms = ["beq", "mt", "afjo", "ikl", "j", "gin", "nu", "kls", "e", "hmr", "abcdp",
             "fgh", "cd"]
    sizes = dict(zip("abcdefghijklmnopqrstu",
                     [4, 8, 2, 2, 3, 5, 4, 3, 2, 8, 5, 3, 2, 7, 3, 2, 2, 9, 4, 3, 3], strict=True))
    eq = ",".join(terms) + "->ahopqrstu"
    net = build_network(parse(eq), [tuple(sizes[c] for c in t) for t in terms])
    cost = tree_cost(net, greedy(net))
    assert any(not cost.node_masks[x] & cost.node_masks[y] for x, y in greedy(net).merges)
    assert flops(net, _connected_dp(net)) == cost.flops
    assert flops(net, optimal(net)) == cost.flops


def test_connected_dp_exact_on_rings():
    # On a ring outer products never pay, so the connected search is exact too.
    n = 9
    letters = "abcdefghijklmnopq"
    eq = ",".join(letters[i] + letters[(i + 1) % n] for i in range(n)) + "->"
    net = build_network(parse(eq), [(3 + i % 3, 3 + (i + 1) % 3) for i in range(n)])
    assert flops(net, _connected_dp(net)) == flops(net, full_dp(net))


def test_large_network_optimizers_finish():
    eq, shapes = rand_equation(40, 1, hyper=0.2, degree=3)
    net = build_network(parse(eq), shapes)
    for name in ("greedy", "auto"):
        tree = OPTIMIZERS[name](net, Budget())
        assert len(tree.merges) == 39


def test_registry_names_and_aliases():
    assert get_optimizer("dp") is OPTIMIZERS["optimal"]
    assert get_optimizer(True) is auto
    with pytest.raises(PathError, match="unknown optimize strategy 'fastest'"):
        get_optimizer("fastest")


def test_deterministic():
    eq, shapes = rand_equation(30, 3)
    net = build_network(parse(eq), shapes)
    assert greedy(net) == greedy(net)


def test_auto_exact_beyond_full_limit_when_cheap():
    eq, shapes = rand_equation(12, 0, hyper=0.2, degree=3, max_size=4)
    net = build_network(parse(eq), shapes)
    assert flops(net, auto(net)) == flops(net, _connected_dp(net)) <= flops(net, greedy(net))


def test_bounded_optimal_gives_up():
    from einopt.optimize.optimal import OverBudget, bounded_optimal

    eq, shapes = rand_equation(16, 0, hyper=0.2, degree=4)
    net = build_network(parse(eq), shapes)
    with pytest.raises(OverBudget):
        bounded_optimal(net, 10)


@pytest.mark.parametrize(("n", "seed"), [(9, 0), (10, 1), (10, 2)])
def test_auto_exact_over_all_subsets_up_to_ten_tensors(n, seed):
    # Up to 10 tensors the search runs over all subsets, outer products included.
    eq, shapes = rand_equation(n, seed, hyper=0.3, degree=3, max_size=4)
    net = build_network(parse(eq), shapes)
    assert flops(net, auto(net)) == flops(net, full_dp(net)) <= flops(net, greedy(net))


@pytest.mark.parametrize(("n", "seed"), [(11, 0), (12, 1), (12, 2), (12, 14)])
def test_auto_exact_over_connected_subsets_above_ten(n, seed):
    """From 11 tensors ``auto`` searches connected subsets (opt_einsum's ``dp`` scope):
    that optimum or greedy's tree, whichever is cheaper, never below the all-subsets
    optimum."""
    from einopt.optimize.optimal import bounded_optimal

    eq, shapes = rand_equation(n, seed, hyper=0.3, degree=3, max_size=4)
    net = build_network(parse(eq), shapes)
    connected = bounded_optimal(net, None, full_limit=0)
    got = flops(net, auto(net))
    assert got == min(flops(net, connected), flops(net, greedy(net)))
    assert got >= flops(net, full_dp(net))
