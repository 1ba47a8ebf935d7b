"""Partition trees: valid and priced right, KaHyPar and the built-in partitioner alike."""

import importlib.util
import math
import random
from pathlib import Path

import pytest

import einopt
from einopt.network import build_network
from einopt.optimize import partition
from einopt.optimize.greedy import greedy_tree
from einopt.optimize.multilevel import cut_weight
from einopt.optimize.multilevel import partition as builtin_partition
from einopt.optimize.partition import (
    PARTITION_FIRST,
    bisect,
    kahypar_partition,
    kahypar_profile,
    partition_params,
    partition_tree,
    partition_tree_from,
)
from einopt.parse import parse
from einopt.tree import tree_cost

from networks import rand_equation

HAS_KAHYPAR = importlib.util.find_spec("kahypar") is not None
needs_kahypar = pytest.mark.skipif(not HAS_KAHYPAR, reason="kahypar is not installed")
PARTITIONERS = ["builtin", pytest.param("kahypar", marks=needs_kahypar)]


@pytest.fixture(autouse=True)
def _shipped_profile(monkeypatch):
    """Each test starts from the default: no profile named in the environment."""
    monkeypatch.delenv("EINOPT_KAHYPAR_PROFILE", raising=False)


def network(n, seed, **kw):
    eq, shapes = rand_equation(n, seed, **kw)
    return eq, shapes, build_network(parse(eq), shapes)


def symbols(count):
    """``count`` distinct one-character labels (letters first, then CJK ideographs)."""
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [letters[k] if k < len(letters) else chr(0x4E00 + k) for k in range(count)]


def lattice(rows, cols, bond=2):
    """A closed ``rows`` x ``cols`` square lattice with bond dimension ``bond``."""
    edges = [((r, c), (r, c + 1)) for r in range(rows) for c in range(cols - 1)]
    edges += [((r, c), (r + 1, c)) for r in range(rows - 1) for c in range(cols)]
    sym = dict(zip(edges, symbols(len(edges)), strict=True))
    terms = {(r, c): "" for r in range(rows) for c in range(cols)}
    for (a, b), s in sym.items():
        terms[a] += s
        terms[b] += s
    eq = ",".join(terms.values()) + "->"
    shapes = [(bond,) * len(t) for t in terms.values()]
    return eq, shapes, build_network(parse(eq), shapes)


@pytest.mark.parametrize("partitioner", PARTITIONERS)
@pytest.mark.parametrize("seed", range(6))
def test_trees_are_valid_and_priced_as_tree_cost_says(partitioner, seed):
    eq, shapes, net = network(40 + 10 * seed, seed, hyper=0.3, num_output=seed % 3)
    rng = random.Random(seed)
    params = dict(partition_params(rng), partitioner=partitioner)
    tree = partition_tree_from(net, params, seed)
    assert tree.num_leaves == net.num_tensors and len(tree.merges) == net.num_tensors - 1
    planned = einopt.plan(eq, *shapes, optimize=tree.linear_path())
    assert planned.flops == tree_cost(net, tree).flops


@pytest.mark.parametrize("partitioner", PARTITIONERS)
def test_same_seed_same_tree(partitioner):
    _, _, net = network(80, 3, hyper=0.2)
    params = dict(partition_params(random.Random(5)), partitioner=partitioner)
    assert partition_tree_from(net, params, 11) == partition_tree_from(net, params, 11)
    a = partition_tree(net, 0.1, 5, seed=4, parts=3, partitioner=partitioner)
    assert a == partition_tree(net, 0.1, 5, seed=4, parts=3, partitioner=partitioner)


@pytest.mark.parametrize("partitioner", PARTITIONERS)
@pytest.mark.parametrize("absorb", [True, False])
def test_scalars_disconnected_parts_and_tiny_networks(partitioner, absorb):
    cases = [("a,a->", [(3,), (3,)]), (",,,->", [()] * 4),
             ("ab,bc,,cd,->ad", [(2, 3), (3, 4), (), (4, 5), ()]),
             ("ab,bc,de,ef,g,h->", [(2, 3), (3, 4), (2, 3), (3, 4), (5,), (6,)]),
             ("ab,ab,ab->ab", [(2, 3)] * 3), ("a->a", [(3,)])]
    for eq, shapes in cases:
        net = build_network(parse(eq), shapes)
        tree = partition_tree(net, 0.1, 2, seed=1, absorb=absorb, partitioner=partitioner)
        assert len(tree.merges) == max(net.num_tensors - 1, 0)
        planned = einopt.plan(eq, *shapes, optimize=tree.linear_path())
        assert planned.flops == tree_cost(net, tree).flops


def test_dominated_tensors_are_absorbed_first():
    """Each vector goes into its smallest superset: ``b`` into ``ab``, ``d`` into ``de``."""
    eq = "ab,b,bc,cd,d,de->ae"
    net = build_network(parse(eq), [(4, 3), (3,), (3, 5), (5, 6), (6,), (6, 2)])
    tree = partition_tree(net, 0.1, 2, seed=0, absorb=True, partitioner="builtin")
    pairs = {frozenset(m) for m in tree.merges}
    assert frozenset((0, 1)) in pairs and frozenset((4, 5)) in pairs


def test_shipped_profiles_are_package_files():
    here = Path(partition.__file__).parent
    for name in ("kahypar_cut.ini", "kahypar_km1.ini"):
        text = (here / name).read_text()
        assert "mode=direct" in text and text.startswith("#")


@needs_kahypar
def test_shipped_profile_is_found():
    assert Path(kahypar_profile()).name == "kahypar_cut.ini"
    assert Path(kahypar_profile("km1")).name == "kahypar_km1.ini"


@needs_kahypar
def test_environment_names_a_profile(monkeypatch, tmp_path):
    mine = tmp_path / "mine.ini"
    mine.write_text(Path(kahypar_profile()).read_text())
    monkeypatch.setenv("EINOPT_KAHYPAR_PROFILE", str(mine))
    assert kahypar_profile() == str(mine) and kahypar_profile("km1") == str(mine)
    _, _, net = network(60, 1)
    assert len(partition_tree(net, 0.1, 5, seed=0, partitioner="kahypar").merges) == 59
    monkeypatch.setenv("EINOPT_KAHYPAR_PROFILE", str(tmp_path / "missing.ini"))
    assert kahypar_profile() is None


@pytest.mark.parametrize("value", ["none", "0", "None"])
def test_opt_out_forces_the_builtin_partitioner(monkeypatch, value):
    _, _, net = network(70, 2, hyper=0.2)
    monkeypatch.setenv("EINOPT_KAHYPAR_PROFILE", value)
    assert kahypar_profile() is None
    auto = partition_tree(net, 0.1, 5, seed=3)
    assert auto == partition_tree(net, 0.1, 5, seed=3, partitioner="builtin")
    with pytest.raises(ValueError, match="kahypar"):
        partition_tree(net, 0.1, 5, seed=3, partitioner="kahypar")


def test_unknown_partitioner_is_refused():
    _, _, net = network(20, 0)
    with pytest.raises(ValueError, match="unknown partitioner"):
        partition_tree(net, partitioner="metis")


def clusters(size, seed):
    """Two dense random clusters of ``size`` nodes joined by one edge (the planted cut)."""
    rng = random.Random(seed)
    pins = []
    for base in (0, size):
        for _ in range(4 * size):
            pins.append([base + v for v in rng.sample(range(size), rng.randint(2, 4))])
    pins.append([size - 1, size])  # the bridge
    return pins, [rng.randint(1, 5) for _ in pins[:-1]] + [1]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("size", [12, 150])
def test_builtin_bisection_finds_the_planted_cut(size, seed):
    pins, ew = clusters(size, seed)
    block = builtin_partition(2 * size, pins, ew, 2, 0.05, random.Random(seed))
    assert cut_weight(pins, ew, block) == 1
    assert sorted((block.count(0), block.count(1))) == [size, size]


@needs_kahypar
def test_kahypar_finds_the_planted_cut_and_balances():
    pins, ew = clusters(100, 0)
    block = kahypar_partition(200, pins, ew, 2, 0.05, 1, kahypar_profile())
    assert cut_weight(pins, ew, block) == 1
    for parts, eps in ((2, 0.03), (3, 0.1), (5, 0.2)):
        block = kahypar_partition(200, pins, ew, parts, eps, 7, kahypar_profile())
        assert max(block.count(b) for b in range(parts)) <= (1 + eps) * math.ceil(200 / parts)


@pytest.mark.parametrize("parts,eps", [(2, 0.0), (2, 0.03), (2, 0.3), (3, 0.1), (5, 0.05),
                                       (8, 0.5)])
def test_builtin_partition_respects_the_balance(parts, eps):
    _, _, net = network(300, 9, hyper=0.2, degree=3)
    w = [math.log2(s) for s in net.sizes]
    pins = [[] for _ in net.sizes]
    for t, term in enumerate(net.terms):
        for i in term:
            pins[i].append(t)
    ew = [max(1, round(4 * x)) for x in w]
    block = builtin_partition(300, pins, ew, parts, eps, random.Random(1))
    most = max(math.floor((1 + eps) * 300 / parts), math.ceil(300 / parts) + 1)
    counts = [block.count(b) for b in range(parts)]
    assert max(counts) <= most and min(counts) >= 1


def test_bisect_is_balanced_and_beats_random():
    _, _, net = network(200, 1, hyper=0.0, degree=3)
    nodes = list(range(net.num_tensors))
    w = [math.log2(s) for s in net.sizes]
    side = bisect(nodes, [list(t) for t in net.terms], w, 0.1, random.Random(0))
    assert 90 <= len(side) <= 110

    def cut(a):
        return sum(w[i] for i in range(net.num_indices)
                   if 0 < sum(1 for t in a if i in net.terms[t]) < sum(i in t for t in net.terms))

    assert cut(side) < 0.5 * cut(set(random.Random(0).sample(nodes, 100)))


def output_chain():
    """A chain of six tensors whose ends share a large output index ``x``.

    The bonds weigh 2, 2, 1, 3, 5 (log2 of their sizes) and ``x`` weighs 10. Alone,
    the light middle bond is the best cut; when ``x`` holds the ends together, cutting
    the bonds around tensors 1 and 2 is.
    """
    eq = "xa,ab,bc,cd,de,ex->x"
    shapes = [(1024, 4), (4, 4), (4, 2), (2, 8), (8, 32), (32, 1024)]
    return build_network(parse(eq), shapes)


def top_split(tree):
    """The leaves under the root's two children."""
    n = tree.num_leaves
    below = {t: {t} for t in range(n)}
    for k, (x, y) in enumerate(tree.merges):
        below[n + k] = below[x] | below[y]
    x, y = tree.merges[-1]
    return {frozenset(below[x]), frozenset(below[y])}


@pytest.mark.parametrize("seed", range(3))
def test_output_indices_attract_or_not_as_asked(seed):
    net = output_chain()
    kw = {"imbalance": 0.0, "cutoff": 2, "absorb": False, "partitioner": "builtin"}
    held = partition_tree(net, seed=seed, output_weight=1.0, **kw)
    assert top_split(held) == {frozenset((0, 3, 4, 5)), frozenset((1, 2))}
    free = partition_tree(net, seed=seed, output_weight=0.0, **kw)
    assert top_split(free) == {frozenset((0, 1, 2)), frozenset((3, 4, 5))}


def test_lattice_tree_is_near_greedy():
    _, _, net = lattice(7, 7)
    greedy = tree_cost(net, greedy_tree(net)).flops
    best = min(tree_cost(net, partition_tree(net, 0.1, 6, seed=s, partitioner="builtin")).flops
               for s in range(4))
    assert best <= 4 * greedy


def test_params_explore_and_perturb():
    rng = random.Random(0)
    first = partition_params(rng)
    near = partition_params(rng, first)
    assert set(first) == set(near)
    for p in (first, near):
        assert 2 <= p["parts"] <= 16 and 2 <= p["cutoff"] <= 40 and p["imbalance"] > 0
    assert partition_params(random.Random(3)) == partition_params(random.Random(3))


@pytest.mark.parametrize("partitioner", PARTITIONERS)
def test_first_params_set_every_option_and_perturb(partitioner):
    # a search's first partition tree uses these; later draws perturb them, which reads
    # every option
    assert set(PARTITION_FIRST) == set(partition_params(random.Random(0)))
    near = partition_params(random.Random(1), PARTITION_FIRST)
    assert set(near) == set(PARTITION_FIRST)
    eq, shapes, net = network(60, 2, hyper=0.2)
    for params in (PARTITION_FIRST, near):
        tree = partition_tree_from(net, dict(params, partitioner=partitioner), 3)
        planned = einopt.plan(eq, *shapes, optimize=tree.linear_path())
        assert planned.flops == tree_cost(net, tree).flops


@pytest.mark.parametrize("partitioner", PARTITIONERS)
@pytest.mark.parametrize("seed", range(3))
def test_bisect_top_splits_the_whole_network_in_two(partitioner, seed):
    # Many blocks at the top leave each with many open indices; the first split is then
    # a balanced bisection, and the root joins its two halves.
    _, _, net = lattice(8, 8)
    tree = partition_tree(net, 0.05, 4, seed=seed, parts=8, bisect_top=True, absorb=False,
                          partitioner=partitioner)
    sizes = sorted(len(side) for side in top_split(tree))
    assert sum(sizes) == 64 and sizes[0] >= 64 / 2 * (1 - 2 * 0.05) - 1
    many = partition_tree(net, 0.05, 4, seed=seed, parts=8, absorb=False,
                          partitioner=partitioner)
    assert tree_cost(net, tree).flops <= tree_cost(net, many).flops


@pytest.mark.parametrize("partitioner", PARTITIONERS)
def test_no_block_takes_almost_all_of_its_group(monkeypatch, partitioner):
    """A tolerance that loosens deep down (negative ``imbalance_decay``) must not let a
    split peel off a tensor at a time: with 10,000 tensors that made one tree take 50 s."""
    shares = []
    for name in ("builtin_partition", "kahypar_partition"):
        real = getattr(partition, name)

        def watched(num_nodes, *args, _real=real, **kwargs):
            block = _real(num_nodes, *args, **kwargs)
            if num_nodes >= 20:
                shares.append((max(block.count(b) for b in set(block)) - 1) / num_nodes)
            return block

        monkeypatch.setattr(partition, name, watched)
    nx = pytest.importorskip("networkx")
    graph = nx.random_regular_graph(3, 1500, seed=0)
    label = {frozenset(e): chr(0x4E00 + k) for k, e in enumerate(graph.edges())}
    terms = ["".join(label[frozenset(e)] for e in graph.edges(v)) for v in graph.nodes()]
    net = build_network(parse(",".join(terms) + "->"), [(2, 2, 2)] * len(terms))
    tree = partition_tree(net, imbalance=0.1, imbalance_decay=-0.5, parts=5, cutoff=4,
                          partitioner=partitioner, seed=0)
    assert tree.num_leaves == net.num_tensors
    assert shares and max(shares) <= partition.MAX_SHARE + 0.02  # KaHyPar rounds its caps
