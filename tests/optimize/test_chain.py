"""Chains: recognized in linear time and planned exactly by the interval recursion."""

from __future__ import annotations

import math
import random
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import as_strided

from einopt.network import Network, build_network
from einopt.optimize import Budget, get_optimizer
from einopt.optimize import chain as chain_module
from einopt.optimize.chain import chain_order, chain_structure, chain_tree
from einopt.optimize.objective import Objective
from einopt.optimize.optimal import full_dp
from einopt.parse import Equation, parse
from einopt.tree import ContractionTree, TreeCost, tree_cost

OBJECTIVES = ["flops", "size", "write", "combo"]
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


def net_of(eq: str) -> Network:
    """``eq`` with a size of 2 to 6 per letter (none of 1: no axis drops out)."""
    inputs = parse(eq).inputs
    return build_network(parse(eq), [tuple(2 + ord(c) % 5 for c in t) for t in inputs])


def keys(cost: TreeCost) -> dict[str, int | tuple[int, int]]:
    """What each objective minimizes, exactly (``size``: largest result, then flops)."""
    return {"flops": cost.flops, "write": cost.write, "combo": cost.flops + 64 * cost.write,
            "size": (cost.max_size, cost.flops)}


def key(net: Network, tree: ContractionTree, objective: str) -> int | tuple[int, int]:
    """What ``objective`` minimizes for ``tree``."""
    return keys(tree_cost(net, tree))[objective]


def interval_trees(order: list[int]):
    """Every tree over ``order`` that merges adjacent intervals only (SSA, tensor ids)."""
    n = len(order)

    @cache
    def shapes(i: int, j: int) -> tuple[tuple, ...]:
        if i == j:
            return (i,)
        return tuple((a, b) for k in range(i, j) for a in shapes(i, k) for b in shapes(k + 1, j))

    def emit(node, merges: list[tuple[int, int]]) -> int:
        if isinstance(node, int):
            return order[node]
        x, y = emit(node[0], merges), emit(node[1], merges)
        merges.append((x, y))
        return n + len(merges) - 1

    for shape in shapes(0, n - 1):
        merges: list[tuple[int, int]] = []
        emit(shape, merges)
        yield ContractionTree(n, tuple(merges))


def adjacent(net: Network, order: list[int]) -> bool:
    """Whether consecutive tensors of ``order`` share an index that not all tensors hold."""
    every = set.intersection(*(set(t) for t in net.terms))
    return sorted(order) == list(range(net.num_tensors)) and all(
        (set(net.terms[order[k - 1]]) & set(net.terms[order[k]])) - every
        for k in range(1, len(order)))


# -- recognition ---------------------------------------------------------------------

@pytest.mark.parametrize(("eq", "order"), [
    ("ij,jk,kl,lm", [0, 1, 2, 3]),                 # implicit output
    ("ij,jk,kl->il", [0, 1, 2]),
    ("i,ij,jk,k->", [0, 1, 2, 3]),                 # vector ends
    ("ab,bcx,cdy,de->aexy", [0, 1, 2, 3]),         # free indices on middle tensors
    ("ab,bcde,cdf->af", [0, 1, 2]),                # two indices join tensors 1 and 2
    ("zij,zjk,zkl->zil", [0, 1, 2]),               # batch index in the output
    ("zij,zjk,zkl->il", [0, 1, 2]),                # batch index summed at the end
    ("kl,ij,jk->il", [0, 2, 1]),                   # operands out of chain order
    ("ij,jkt,kl->il", [0, 1, 2]),                  # a trace index only tensor 1 holds
    ("zij,zjk,kl->il", [0, 1, 2]),                 # z joins 0 and 1 beside j
])
def test_chains_are_recognized(eq, order):
    net = net_of(eq)
    assert chain_order(net) == order
    assert adjacent(net, order)
    assert chain_tree(net) is not None


@pytest.mark.parametrize("eq", [
    "ij,jk,ki->",                  # cycle
    "abx,bc,cdx,de,efx->af",       # x held by 3 of 5 tensors
    "zij,zjk,zkl,lm->im",          # z held by 3 of 4 tensors
    "abc,ax,by,cz->xyz",           # tree with a degree-3 node
    "ij,jk,lm,mn->ikln",           # disconnected
    "ij,jk,kl->ijl",               # j joins two tensors but the output keeps it
    "ij,jk->ik",                   # too short to be worth it
    "zi,zj,zk->",                  # only the batch index joins the tensors
])
def test_non_chains_are_rejected(eq):
    net = net_of(eq)
    assert chain_order(net) is None
    assert chain_tree(net) is None


def test_trace_index_kept_by_the_network_counts_as_free():
    # A network that still holds x, summed by tensor 1 alone, prices it as a free index.
    net = net_of("ab,bc,cd->ad")
    x = net.num_indices
    terms = (net.terms[0], net.terms[1] + (x,), net.terms[2])
    net = Network(net.labels + ("x",), net.sizes + (7,), net.raw, terms, net.output,
                  tuple(sum(1 << i for i in t) for t in terms), net.output_mask)
    assert chain_order(net) == [0, 1, 2]
    for objective in OBJECTIVES:
        best = min(key(net, t, objective) for t in interval_trees([0, 1, 2]))
        assert key(net, chain_tree(net, Objective(objective)), objective) == best


def test_recognition_on_large_networks():
    n = 20_000
    eq = Equation(tuple((k, k + 1, n + 1 + k) for k in range(n)), (0, n))
    net = build_network(eq, [(2, 2, 2)] * n)
    assert chain_order(net) == list(range(n))
    cyc = Equation(tuple((k, (k + 1) % n) for k in range(n)), ())
    assert chain_order(build_network(cyc, [(3, 3)] * n)) is None


# -- optimality on random chains -------------------------------------------------------

@st.composite
def chains(draw, middle_free: bool):
    """A random chain in shuffled operand order: its equation, shapes and whether every
    consecutive pair keeps a bond of size > 1 (size-1 axes drop out of the network)."""
    n = draw(st.integers(3, 9))
    size = st.integers(1, 9)
    labels = iter(range(100))
    terms: list[list[int]] = [[] for _ in range(n)]
    sizes: dict[int, int] = {}
    output: list[int] = []
    # One chain in five gets a bond of size 1, which disconnects it.
    cut = draw(st.integers(0, n - 2)) if draw(st.integers(0, 4)) == 0 else None
    for k in range(n - 1):
        bond = [1] if k == cut else draw(st.lists(size, min_size=1, max_size=2))
        if k != cut and math.prod(bond) == 1:
            bond[0] = draw(st.integers(2, 9))
        for s in bond:
            lab = next(labels)
            terms[k].append(lab)
            terms[k + 1].append(lab)
            sizes[lab] = s
    for t in range(n):
        if t in (0, n - 1) or middle_free:
            for s in draw(st.lists(size, max_size=2 if t in (0, n - 1) else 1)):
                lab = next(labels)
                terms[t].append(lab)
                sizes[lab] = s
                output.append(lab)
    for keep in draw(st.lists(st.booleans(), max_size=1)):  # an index every tensor holds
        lab = next(labels)
        sizes[lab] = draw(st.integers(2, 3))
        for term in terms:
            term.insert(draw(st.integers(0, len(term))), lab)
        if keep:
            output.append(lab)
    perm = draw(st.permutations(range(n)))
    inputs = tuple(tuple(terms[p]) for p in perm)
    eq = Equation(inputs, tuple(output))
    return eq, [tuple(sizes[lab] for lab in t) for t in inputs], cut is None


@SETTINGS
@given(chains(middle_free=False))
def test_matches_the_all_subsets_search_without_middle_free_indices(case):
    eq, shapes, linked = case
    net = build_network(eq, shapes)
    if not linked:
        assert chain_order(net) is None and chain_tree(net) is None
        return
    assert adjacent(net, chain_order(net))
    for objective in OBJECTIVES:
        obj = Objective(objective)
        tree = chain_tree(net, obj)
        assert tree == chain_tree(net, obj, strict=True)
        mine, best = key(net, tree, objective), key(net, full_dp(net, obj), objective)
        if objective == "size":  # the all-subsets search breaks size ties at random
            mine, best = mine[0], best[0]
        assert mine == best


@SETTINGS
@given(chains(middle_free=True))
def test_optimal_among_interval_trees(case):
    eq, shapes, linked = case
    net = build_network(eq, shapes)
    order = chain_order(net)
    if not linked:
        assert order is None
        return
    costs = [keys(tree_cost(net, t)) for t in interval_trees(order)]
    strict = chain_structure(net).middle_free()
    for objective in OBJECTIVES:
        obj = Objective(objective)
        tree = chain_tree(net, obj)
        assert key(net, tree, objective) == min(c[objective] for c in costs)
        assert (chain_tree(net, obj, strict=True) is None) == strict
    # The recursion's own totals (the root's result included) are the tree's.
    chain = chain_structure(net)
    write = chain_module._sweep(chain, False, 0.0, 0, 1)[0]
    assert write == tree_cost(net, chain_tree(net, Objective("write"))).write
    size = chain_module._sweep(chain, False, 0.0, 0, 0, max_size=True)[0]
    assert size == tree_cost(net, chain_tree(net, Objective("size"))).max_size
    # Outer products never make the all-subsets optimum worse.
    assert tree_cost(net, chain_tree(net)).flops >= tree_cost(net, full_dp(net)).flops


def test_outer_product_can_beat_every_interval_tree():
    net = build_network(parse("a,ab,bcd,c->d"), [(7,), (7, 2), (2, 3, 7), (3,)])
    assert tree_cost(net, chain_tree(net)).flops == 70
    assert tree_cost(net, full_dp(net)).flops == 62
    assert chain_tree(net, strict=True) is None


@cache
def matrix_chain(dims: tuple[int, ...], i: int, j: int) -> int:
    """Least flops of multiplying matrices ``i..j`` (matrix ``k`` is dims[k] x dims[k+1])."""
    if i == j:
        return 0
    return min(matrix_chain(dims, i, k) + matrix_chain(dims, k + 1, j)
               + dims[i] * dims[k + 1] * dims[j + 1] for k in range(i, j))


def matrix_chain_network(dims: list[int]) -> Network:
    n = len(dims) - 1
    eq = Equation(tuple((k, k + 1) for k in range(n)), (0, n))
    return build_network(eq, [(dims[k], dims[k + 1]) for k in range(n)])


@pytest.mark.parametrize("seed", range(12))
def test_classic_matrix_chain(seed):
    rng = random.Random(seed)
    dims = [rng.randint(2, 60) for _ in range(rng.randint(4, 25))]
    net = matrix_chain_network(dims)
    assert tree_cost(net, chain_tree(net)).flops == matrix_chain(tuple(dims), 0, len(dims) - 2)


# -- arithmetic beyond float64's exact integers ----------------------------------------

@SETTINGS
@given(chains(middle_free=True))
def test_log_scale_sweep_gives_the_same_trees(case):
    eq, shapes, linked = case
    net = build_network(eq, shapes)
    if not linked:
        return
    exact = [chain_tree(net, Objective(o)) for o in OBJECTIVES]
    old = chain_module.EXACT_BITS
    chain_module.EXACT_BITS = 0  # every chain takes the log-scale path
    try:
        assert [chain_tree(net, Objective(o)) for o in OBJECTIVES] == exact
    finally:
        chain_module.EXACT_BITS = old


def test_log_scale_ties_are_settled_exactly(monkeypatch):
    # Small sizes with common factors tie often; rounding on the log scale must not
    # decide between exact ties (about one such chain in ten would go astray).
    rng = random.Random(0)
    nets = []
    for _ in range(100):
        n = rng.randint(3, 7)
        sizes = [1] + [rng.choice([2, 3, 4, 6]) for _ in range(n - 1)] + [1]
        free = [rng.choice([1, 2, 3]) for _ in range(n)]
        eq = Equation(tuple((k, k + 1, 100 + k) for k in range(n)),
                      tuple(100 + k for k in range(n)))
        nets.append(build_network(eq, [(sizes[k], sizes[k + 1], free[k]) for k in range(n)]))
    exact = [[chain_tree(net, Objective(o)) for o in OBJECTIVES] for net in nets]
    monkeypatch.setattr(chain_module, "EXACT_BITS", 0)
    assert [[chain_tree(net, Objective(o)) for o in OBJECTIVES] for net in nets] == exact


def test_a_loose_bound_tries_a_float_sweep_first(monkeypatch):
    # Dimensions up to 1,000 over 150 matrices pass the a-priori bound, but the best
    # tree costs far below 2**53: the float sweep settles it, as the log sweep would.
    rng = random.Random(5)
    n = 150
    dims = [rng.randint(2, 1000) for _ in range(n + 1)]
    net = build_network(Equation(tuple((k, k + 1) for k in range(n)), (0, n)),
                        [(dims[k], dims[k + 1]) for k in range(n)])
    assert chain_module._log2_bound(chain_structure(net), 1) >= chain_module.EXACT_BITS - 1
    logs: list[bool] = []
    sweep = chain_module._sweep

    def spy(chain, log, *args, **kwargs):
        logs.append(log)
        return sweep(chain, log, *args, **kwargs)

    monkeypatch.setattr(chain_module, "_sweep", spy)
    tree = chain_tree(net)
    assert logs == [False]
    assert tree_cost(net, tree).flops < 2**53
    monkeypatch.setattr(chain_module, "EXACT_BITS", 0)  # no float result is small enough
    logs.clear()
    assert chain_tree(net) == tree
    assert logs == [False, True]


@pytest.mark.parametrize("seed", range(4))
def test_huge_costs_stay_exact(seed):
    rng = random.Random(seed)
    n = 7
    bonds = [rng.choice([10**6, 10**6 + 1, 2**20]) for _ in range(n - 1)]
    free = [rng.choice([1, 10**5, 10**5 - 1]) for _ in range(n)]
    terms = [(k, k + 1, 100 + k) for k in range(n)]
    sizes = [1] + bonds + [1]
    eq = Equation(tuple(terms), tuple(100 + k for k in range(n)))
    net = build_network(eq, [(sizes[k], sizes[k + 1], free[k]) for k in range(n)])
    assert tree_cost(net, ContractionTree.left_to_right(n)).flops > 2**70
    trees = list(interval_trees(chain_order(net)))
    for objective in [*OBJECTIVES, "combo-0.1", "combo-2.5"]:
        obj = Objective("combo", float(objective[6:])) if "-" in objective else Objective(objective)

        def cost(t: ContractionTree, objective: str = objective, obj: Objective = obj):
            if objective.startswith("combo"):
                c = tree_cost(net, t)
                return c.flops + obj.factor * c.write if "-" in objective else key(net, t, "combo")
            return key(net, t, objective)

        best = min(cost(t) for t in trees)
        assert cost(chain_tree(net, obj)) == best


def test_exact_ties_of_huge_costs_go_to_the_smallest_left_part():
    n = 6
    eq = Equation(tuple((k, k + 1, 100 + k) for k in range(n)), tuple(100 + k for k in range(n)))
    sizes = [1] + [1000] * (n - 1) + [1]
    net = build_network(eq, [(sizes[k], sizes[k + 1], 1000) for k in range(n)])
    for objective in OBJECTIVES:
        tree = chain_tree(net, Objective(objective))
        first = min(interval_trees(list(range(n))), key=lambda t: key(net, t, objective))
        assert key(net, tree, objective) == key(net, first, objective)


def test_negative_write_weight_is_refused():
    with pytest.raises(ValueError, match="weight"):
        chain_tree(net_of("ij,jk,kl->il"), Objective("combo", -1.0))


# -- long chains -----------------------------------------------------------------------

def reference_matrix_chain(dims: np.ndarray) -> int:
    """Classic O(n^3) matrix-chain optimum on int64, one diagonal of the table at a time.

    ``M[i, j]`` is the best cost of matrices ``i..j``; ``T`` is its transpose, so both
    the left parts ``M[i, i..j-1]`` and the right parts ``M[i+1..j, j]`` of a diagonal
    are rows of skewed views.
    """
    n = len(dims) - 1
    d = dims.astype(np.int64)
    M = np.zeros((n, n), dtype=np.int64)
    T = np.zeros((n, n), dtype=np.int64)
    step = M.strides[0] + M.strides[1]
    for length in range(2, n + 1):
        r = n - length + 1
        left = as_strided(M, shape=(r, length - 1), strides=(step, M.strides[1]))
        right = as_strided(T[length - 1:, 1:], shape=(r, length - 1),
                           strides=(step, T.strides[1]))
        i = np.arange(r)
        cost = left + right + (d[i] * d[i + length])[:, None] * as_strided(
            d[1:], shape=(r, length - 1), strides=(d.strides[0], d.strides[0]))
        best = cost.min(axis=1)
        M[i, i + length - 1] = best
        T[i + length - 1, i] = best
    return int(M[0, n - 1])


@pytest.fixture(scope="module")
def long_chain() -> tuple[Network, int]:
    dims = np.random.default_rng(1000).integers(2, 101, 1001)
    return matrix_chain_network(dims.tolist()), reference_matrix_chain(dims)


def test_reference_matrix_chain_agrees_with_the_recursion():
    rng = random.Random(7)
    for _ in range(20):
        dims = [rng.randint(1, 30) for _ in range(rng.randint(2, 14))]
        assert reference_matrix_chain(np.array(dims)) == matrix_chain(tuple(dims), 0,
                                                                      len(dims) - 2)


def test_thousand_matrix_chain(long_chain):
    net, best = long_chain
    assert tree_cost(net, chain_tree(net)).flops == best


@pytest.mark.parametrize("strategy", ["optimal", "hyper"])
def test_thousand_matrix_chain_strategies_find_the_optimum(long_chain, strategy):
    net, best = long_chain
    tree = get_optimizer(strategy)(net, Budget(max_time=3.0, seed=0))
    assert tree_cost(net, tree).flops == best


def test_two_thousand_matrix_chain():
    dims = np.random.default_rng(2000).integers(2, 101, 2001).tolist()
    net = matrix_chain_network(dims)
    tree = chain_tree(net)
    assert len(tree.merges) == 1999
    assert tree_cost(net, tree).flops < tree_cost(net, ContractionTree.left_to_right(2000)).flops
