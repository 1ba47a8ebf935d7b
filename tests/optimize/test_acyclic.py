"""Acyclic networks (tensors joined as a tree): recognized in linear time and planned
exactly by the search over connected parts, checked against every tree without outer
products priced by :func:`einopt.tree.tree_cost`."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import opt_einsum
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import einopt
from einopt.compat.path_optimizer import protocol_network
from einopt.network import Network, build_network
from einopt.optimize import AUTO_ACYCLIC_WORK, Budget, auto, get_optimizer
from einopt.optimize.acyclic import acyclic_structure, acyclic_tree, search_work
from einopt.optimize.external import tree_of_path
from einopt.optimize.objective import Objective
from einopt.optimize.optimal import optimal
from einopt.parse import parse
from einopt.tree import ContractionTree, tree_cost

SETTINGS = settings(max_examples=80, deadline=None, derandomize=True)
ADDITIVE = ["flops", "write", "combo"]


def net_of(eq: str, sizes: dict[str, int] | None = None) -> Network:
    """``eq`` with ``sizes`` per letter (else 2 to 6 by letter)."""
    inputs = parse(eq).inputs
    size = (lambda c: sizes[c]) if sizes else (lambda c: 2 + ord(c) % 5)
    return build_network(parse(eq), [tuple(size(c) for c in t) for t in inputs])


def score(net: Network, tree: ContractionTree, objective: str) -> int:
    """What ``objective`` minimizes for ``tree``, exactly."""
    cost = tree_cost(net, tree)
    return {"flops": cost.flops, "write": cost.write,
            "combo": cost.flops + 64 * cost.write}[objective]


def connected_trees(net: Network) -> Iterator[ContractionTree]:
    """Every tree of ``net`` whose merges each join two parts sharing an index that not
    every tensor holds (sharing only those is an outer product, priced per batch entry)."""
    n = net.num_tensors
    every = np.bitwise_and.reduce(net.masks).item()
    masks = [m & ~every for m in net.masks]

    def held(part: int) -> int:
        return np.bitwise_or.reduce([masks[t] for t in range(n) if part >> t & 1]).item()

    def shapes(part: int) -> Iterator[object]:
        if part & (part - 1) == 0:
            yield part.bit_length() - 1
            return
        low = part & -part
        sub = (part - 1) & part
        while sub:
            if sub & low and held(sub) & held(part ^ sub):
                for a in shapes(sub):
                    for b in shapes(part ^ sub):
                        yield (a, b)
            sub = (sub - 1) & part

    def emit(node: object, merges: list[tuple[int, int]]) -> int:
        if isinstance(node, int):
            return node
        x, y = emit(node[0], merges), emit(node[1], merges)
        merges.append((x, y))
        return n + len(merges) - 1

    for shape in shapes((1 << n) - 1):
        merges: list[tuple[int, int]] = []
        emit(shape, merges)
        yield ContractionTree(n, tuple(merges))


@st.composite
def acyclic_equations(draw, max_tensors: int = 7) -> tuple[str, dict[str, int]]:
    """A random tree of tensors: joins of one or two indices (some kept by the output),
    free indices (some summed), sometimes an index every tensor holds."""
    n = draw(st.integers(3, max_tensors))
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    terms: list[list[str]] = [[] for _ in range(n)]
    out: list[str] = []
    sizes: dict[str, int] = {}
    size = st.sampled_from([2, 3, 4, 5, 8])
    for t in range(1, n):
        p = draw(st.integers(0, t - 1))
        for _ in range(draw(st.integers(1, 2))):
            c = next(letters)
            sizes[c] = draw(size)
            terms[t].append(c)
            terms[p].append(c)
            if draw(st.integers(0, 6)) == 0:
                out.append(c)
    for t in range(n):
        if draw(st.booleans()):
            c = next(letters)
            sizes[c] = draw(size)
            terms[t].append(c)
            out.append(c)
    if draw(st.integers(0, 3)) == 0:
        c = next(letters)
        sizes[c] = 3
        for term in terms:
            term.append(c)
        if draw(st.booleans()):
            out.append(c)
    order = draw(st.permutations(range(n)))
    return ",".join("".join(terms[t]) for t in order) + "->" + "".join(out), sizes


# -- recognition ---------------------------------------------------------------------

@pytest.mark.parametrize("eq", [
    "abc,ax,by,cz->xyz",             # a star
    "ab,bcd,ce,df,fg->aeg",           # a branching tree
    "ij,jk,kl->il",                   # a chain is a tree
    "zab,zbc,zcd->zad",               # a batch index every tensor holds
    "ab,bc,cd->abd",                  # a join the output keeps
    "abc,bcd,de->ae",                 # a join of two indices
])
def test_trees_are_recognized(eq):
    assert acyclic_structure(net_of(eq)) is not None
    assert acyclic_tree(net_of(eq)) is not None


@pytest.mark.parametrize("eq", [
    "ij,jk,ki->",                     # a cycle
    "ab,bc,ca,d->d",                  # n - 1 joins, but a cycle and an isolated tensor
    "ab,bc,de->acde",                 # disconnected
    "ab,ac,ad,de->",                  # a held by 3 of 4 tensors
    "ij,jk->ik",                      # too short to be worth it
])
def test_non_trees_are_rejected(eq):
    assert acyclic_structure(net_of(eq)) is None
    assert acyclic_tree(net_of(eq)) is None


def test_empty_index_and_size_objective_are_declined():
    assert acyclic_tree(net_of("ab,bc,cd->ad", {"a": 2, "b": 0, "c": 3, "d": 2})) is None
    assert acyclic_tree(net_of("abc,ax,by,cz->xyz"), Objective("size")) is None


# -- exactness -----------------------------------------------------------------------

@SETTINGS
@given(acyclic_equations(), st.sampled_from(ADDITIVE))
def test_optimal_over_connected_trees(case, objective):
    eq, sizes = case
    net = net_of(eq, sizes)
    tree = acyclic_tree(net, Objective(objective))
    assert tree is not None and tree.num_leaves == net.num_tensors
    best = min(score(net, t, objective) for t in connected_trees(net))
    assert score(net, tree, objective) == best


def test_trace_index_kept_by_the_network_is_summed_at_first_merge():
    # A network that still holds x, summed by tensor 1 alone, drops it at its first merge.
    net = net_of("ab,bcgf,cd,ge->adef")
    x = net.num_indices
    terms = (net.terms[0], net.terms[1] + (x,), *net.terms[2:])
    net = Network(net.labels + ("x",), net.sizes + (7,), net.raw, terms, net.output,
                  tuple(sum(1 << i for i in t) for t in terms), net.output_mask)
    assert acyclic_structure(net).trace == (1, 7, 1, 1)
    tree = acyclic_tree(net)
    assert score(net, tree, "flops") == min(score(net, t, "flops") for t in connected_trees(net))


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_the_general_connected_search(seed):
    # 13 to 15 tensors: past the all-subsets limit, optimal() searches connected subsets
    # (and keeps the greedy tree where one of its outer products wins).
    rng = random.Random(seed)
    eq, sizes = _random_tree(rng)
    net = net_of(eq, sizes)
    ours = tree_cost(net, acyclic_tree(net)).flops
    general = optimal(net)
    cost = tree_cost(net, general)
    outer = any(not cost.node_masks[x] & cost.node_masks[y] for x, y in general.merges)
    assert ours == cost.flops or (outer and cost.flops < ours)


def _random_tree(rng: random.Random) -> tuple[str, dict[str, int]]:
    n = rng.randint(13, 15)
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    terms: list[str] = [""] * n
    sizes: dict[str, int] = {}
    out = ""
    for t in range(1, n):
        c = next(letters)
        p = rng.randrange(t)
        terms[t] += c
        terms[p] += c
        sizes[c] = rng.choice([2, 3, 4, 8, 16])
    for t in range(n):
        if rng.random() < 0.3:
            c = next(letters)
            terms[t] += c
            out += c
            sizes[c] = rng.choice([2, 3])
    return ",".join(terms) + "->" + out, sizes


# -- the work bound ------------------------------------------------------------------

@SETTINGS
@given(acyclic_equations(max_tensors=9))
def test_search_work_counts_connected_parts(case):
    eq, sizes = case
    net = net_of(eq, sizes)
    acyclic = acyclic_structure(net)
    n = net.num_tensors
    adjacent = [0] * n
    for t, p in enumerate(acyclic.parent):
        if p >= 0:
            adjacent[t] |= 1 << p
            adjacent[p] |= 1 << t

    def connected(part: int) -> bool:
        seen = part & -part
        while True:
            grown = seen
            for t in range(n):
                if seen >> t & 1:
                    grown |= adjacent[t] & part
            if grown == seen:
                return seen == part
            seen = grown

    work = sum(part.bit_count() - 1 for part in range(1, 1 << n) if connected(part))
    assert search_work(acyclic, 10**9) == work
    assert search_work(acyclic, work - 1 if work else 0) > max(work - 1, 0)
    assert work >= (n - 1) ** 2  # the least of any tree (search_work's docstring)


def test_a_bound_below_any_tree_of_that_size_is_refused_before_reading(monkeypatch):
    """A chain of 40 matrices prices (40**3 - 40) / 6 = 10,660 splits; any tree of 40
    tensors at least 39**2 = 1,521: a bound below that is refused without reading the
    network."""
    from einopt.optimize import acyclic as module

    net = net_of(",".join(f"{chr(0x100 + i)}{chr(0x101 + i)}" for i in range(40)) + "->")
    assert search_work(acyclic_structure(net), 10**9) == (40**3 - 40) // 6
    assert acyclic_tree(net, max_work=10_660) is not None
    assert acyclic_tree(net, max_work=10_659) is None

    def unread(network):
        raise AssertionError("read")

    monkeypatch.setattr(module, "acyclic_structure", unread)
    assert acyclic_tree(net, max_work=1520) is None
    with pytest.raises(AssertionError, match="read"):
        acyclic_tree(net, max_work=1521)


def test_a_star_past_the_bound_is_declined():
    # 20 leaves around one tensor: 2**20 connected parts hold the centre
    eq = "".join("abcdefghijklmnopqrst") + "," + ",".join("abcdefghijklmnopqrst") + "->"
    net = net_of(eq)
    assert search_work(acyclic_structure(net), 10**5) > 10**5
    assert acyclic_tree(net, max_work=10**5) is None


# -- through the optimizers ----------------------------------------------------------

def comb(k: int) -> tuple[str, dict[str, int]]:
    """A comb: a chain of ``k`` tensors, each with a tensor hanging off it, sizes mixed."""
    rng = random.Random(k)
    spine = [f"s{i}" for i in range(k - 1)]
    legs = [f"l{i}" for i in range(k)]
    free = [f"f{i}" for i in range(k)]
    terms = []
    for i in range(k):
        terms.append([legs[i]] + ([spine[i - 1]] if i else []) + ([spine[i]] if i < k - 1 else []))
        terms.append([legs[i]] + ([free[i]] if i % 3 == 0 else []))
    sizes = {c: rng.choice([2, 3, 5, 8, 16]) for c in spine + legs + free}
    return terms, sizes


def test_agrees_with_the_optimal_strategy_on_a_comb():
    terms, sizes = comb(12)  # 24 tensors: past the all-subsets search
    out = [c for t in terms for c in t if c.startswith("f")]
    net = protocol_network(terms, out, sizes)
    tree = get_optimizer("optimal")(net, Budget())
    exact = acyclic_tree(net)
    assert tree_cost(net, tree).flops == tree_cost(net, exact).flops
    sets = [frozenset(t) for t in terms]
    greedy = opt_einsum.paths.greedy(sets, frozenset(out), sizes)
    assert tree_cost(net, tree).flops <= tree_cost(net, tree_of_path(len(terms), greedy,
                                                                      "greedy")).flops


def test_auto_is_exact_on_a_small_acyclic_network_past_twenty_tensors():
    # a chain of 22 tensors with two more hanging off it: few connected parts
    terms = [a + b for a, b in zip("abcdefghijklmnopqrstuv", "bcdefghijklmnopqrstuvw",
                                   strict=True)]
    terms[3] += "x"
    terms[15] += "y"
    eq = ",".join([*terms, "xz", "y"]) + "->awz"
    sizes = {c: 2 + (7 * ord(c)) % 13 for c in "abcdefghijklmnopqrstuvwxyz"}
    net = net_of(eq, sizes)
    assert net.num_tensors == 24
    assert search_work(acyclic_structure(net), 10**9) <= AUTO_ACYCLIC_WORK
    assert tree_cost(net, auto(net)).flops == tree_cost(net, acyclic_tree(net)).flops \
        == tree_cost(net, optimal(net)).flops


@pytest.mark.parametrize("seed", range(8))
def test_auto_never_worse_than_greedy_on_trees(seed):
    eq, sizes = _random_tree(random.Random(100 + seed))
    net = net_of(eq, sizes)
    inputs = eq.split("->")[0].split(",")
    path = opt_einsum.paths.greedy([frozenset(t) for t in inputs],
                                   frozenset(eq.split("->")[1]), sizes)
    greedy = tree_cost(net, tree_of_path(len(inputs), path, "greedy")).flops
    assert tree_cost(net, auto(net)).flops <= greedy


@pytest.mark.parametrize("optimize", ["auto", "optimal"])
def test_einsum_on_a_tree_matches_numpy(optimize):
    eq, sizes = _random_tree(random.Random(7))
    rng = np.random.default_rng(0)
    small = {c: min(s, 3) for c, s in sizes.items()}
    ops = [rng.standard_normal([small[c] for c in t]) for t in eq.split("->")[0].split(",")]
    got = einopt.einsum(eq, *ops, optimize=optimize)
    np.testing.assert_allclose(got, np.einsum(eq, *ops, optimize="greedy"), rtol=1e-10)


def test_hyper_finds_the_exact_tree_of_a_comb_within_its_budget():
    terms, sizes = comb(12)
    out = [c for t in terms for c in t if c.startswith("f")]
    net = protocol_network(terms, out, sizes)
    tree = get_optimizer("hyper")(net, Budget(max_time=0.3, seed=0))
    assert tree_cost(net, tree).flops <= tree_cost(net, acyclic_tree(net)).flops
