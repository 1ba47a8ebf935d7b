"""Other libraries' path optimizers as ``optimize=``: opt_einsum's optimizer objects and
path functions, cotengra's optimizers, any function of opt_einsum's protocol."""

import numpy as np
import pytest

import einopt
from einopt.errors import PathError
from einopt.network import build_network
from einopt.optimize import Budget, External, get_optimizer
from einopt.optimize.external import protocol_arguments, symbol
from einopt.parse import parse
from einopt.tree import ContractionTree, tree_cost

oe = pytest.importorskip("opt_einsum")

#: (equation, shapes): a chain, hyperedges, a diagonal, a batch index kept in the output,
#: an ellipsis, a disconnected pair, a scalar operand.
CASES = [
    ("ab,bc,cd,de->ae", [(3, 4), (4, 5), (5, 6), (6, 2)]),
    ("ab,bc,bd,be,ef->af", [(4, 5), (5, 6), (5, 7), (5, 8), (8, 3)]),
    ("ij,ik,il,im->jklm", [(6, 2), (6, 3), (6, 2), (6, 3)]),
    ("iij,jk,kl->il", [(3, 3, 4), (4, 5), (5, 2)]),
    ("bij,bjk,bkl,blm->bim", [(2, 3, 4), (2, 4, 5), (2, 5, 3), (2, 3, 2)]),
    ("...ij,jk,kl->...il", [(2, 3, 4), (4, 5), (5, 6)]),
    ("ab,bc,de,ef->acdf", [(2, 3), (3, 4), (2, 5), (5, 3)]),
    (",ab,bc,c->a", [(), (3, 4), (4, 5), (5,)]),
]


def _operands(rng, shapes):
    return [rng.standard_normal(s) for s in shapes]


def _factories():
    return {
        "RandomGreedy": lambda: oe.RandomGreedy(max_repeats=8),
        "DynamicProgramming": lambda: oe.DynamicProgramming(),
        "paths.greedy": lambda: oe.paths.greedy,
        "paths.optimal": lambda: oe.paths.optimal,
    }


@pytest.mark.parametrize("name", list(_factories()))
@pytest.mark.parametrize(("eq", "shapes"), CASES)
def test_opt_einsum_optimizers_give_numpy_results(rng, name, eq, shapes):
    ops = _operands(rng, shapes)
    expected = np.einsum(eq, *ops)
    # a new optimizer per contraction: opt_einsum's stateful ones are bound to their first
    got = einopt.einsum(eq, *ops, optimize=_factories()[name]())
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    p = einopt.plan(eq, *ops, optimize=_factories()[name]())
    np.testing.assert_allclose(p(*ops), expected, rtol=1e-10, atol=1e-12)


def test_the_plan_follows_the_returned_path(rng):
    eq, shapes = "ab,bc,cd,de,ea->", [(3, 4), (4, 5), (5, 6), (6, 2), (2, 3)]
    returned = []

    def recording(inputs, output, size_dict, memory_limit=None):
        path = oe.paths.greedy(inputs, output, size_dict, memory_limit)
        returned.append(path)
        return path

    p = einopt.plan(eq, *shapes, optimize=recording)
    [path] = returned
    assert p.path == ContractionTree.from_linear_path(5, path).linear_path()
    ops = _operands(rng, shapes)
    np.testing.assert_allclose(p(*ops), np.einsum(eq, *ops))


def test_called_as_opt_einsum_calls_it():
    seen = []

    def spy(inputs, output, size_dict, memory_limit=None):
        seen.append((inputs, output, size_dict, memory_limit))
        return [(0, 1)] * (len(inputs) - 1)

    einopt.plan("iij,jk,kl,lm->im", (3, 3, 4), (4, 5), (5, 6), (6, 2), optimize=spy)
    [(inputs, output, size_dict, memory_limit)] = seen
    assert memory_limit is None
    assert all(isinstance(term, frozenset) for term in inputs)
    assert isinstance(output, frozenset)
    assert len(inputs) == 4 and len(output) == 2
    assert all(isinstance(s, str) and len(s) == 1 for term in inputs for s in term)
    assert set().union(*inputs) | output <= set(size_dict)
    assert sorted(size_dict.values()) == [2, 3, 4, 5, 6]


def test_symbols_are_opt_einsums():
    assert [symbol(i) for i in (0, 25, 26, 51, 52, 55295, 55296)] == \
        [oe.get_symbol(i) for i in (0, 25, 26, 51, 52, 55295, 55296)]


def test_protocol_arguments_of_a_network():
    # c is summed within its operand first; index ids are named by opt_einsum's symbols
    net = build_network(parse("ab,bc,bd->ad"), [(2, 3), (3, 4), (3, 5)])
    inputs, output, size_dict = protocol_arguments(net)
    assert inputs == [frozenset("ab"), frozenset("b"), frozenset("bd")]
    assert output == frozenset("ad")
    assert size_dict == {"a": 2, "b": 3, "d": 5}


def test_external_optimizers_are_called_for_every_plan(rng):
    class Counting:  # hashable (by identity), as opt_einsum's and cotengra's objects are
        calls = 0

        def __call__(self, inputs, output, size_dict, memory_limit=None):
            self.calls += 1
            return oe.paths.greedy(inputs, output, size_dict)

    counting = Counting()
    eq, shapes = "ab,bc,cd->ad", [(3, 4), (4, 5), (5, 6)]
    ops = _operands(rng, shapes)
    for _ in range(3):
        einopt.einsum(eq, *ops, optimize=counting)
    assert counting.calls == 3
    einopt.plan(eq, *shapes, optimize=counting)
    einopt.plan(eq, *shapes, optimize=counting)
    assert counting.calls == 5
    einopt.contract(eq, *ops, optimize=counting)
    assert counting.calls == 6


def test_an_unhashable_optimizer_plans_without_the_cache(rng):
    class Unhashable:
        __hash__ = None

        def __call__(self, inputs, output, size_dict, memory_limit=None):
            return oe.paths.greedy(inputs, output, size_dict)

    eq, shapes = "ab,bc,cd->ad", [(3, 4), (4, 5), (5, 6)]
    ops = _operands(rng, shapes)
    for _ in range(2):
        np.testing.assert_allclose(einopt.einsum(eq, *ops, optimize=Unhashable()),
                                   np.einsum(eq, *ops))


def test_external_optimizer_on_structured_operands(rng):
    x = rng.standard_normal((1, 3, 8))
    w = rng.standard_normal((2, 3, 3))
    pattern = einopt.conv_pattern(8, 3)
    expected = np.einsum("nci,mck,koi->nmo", x, w, np.asarray(pattern))
    got = einopt.einsum("nci,mck,koi->nmo", x, w, pattern, optimize=oe.paths.greedy)
    np.testing.assert_allclose(got, expected)


def test_external_optimizer_with_einopts_memory_limit_slices(rng):
    eq, shapes = "ab,bc,cd,de->ae", [(8, 8), (8, 8), (8, 8), (8, 8)]
    ops = _operands(rng, shapes)
    p = einopt.plan(eq, *ops, optimize=oe.RandomGreedy(max_repeats=4), memory_limit=100)
    assert p.sliced and p.max_size <= 100
    got = einopt.einsum(eq, *ops, optimize=oe.paths.greedy, memory_limit=100)
    np.testing.assert_allclose(got, np.einsum(eq, *ops))


def test_cache_dir_does_not_keep_external_trees(tmp_path):
    einopt.plan("ab,bc,cd->ad", (3, 4), (4, 5), (5, 6), optimize=oe.paths.greedy,
                cache_dir=str(tmp_path))
    assert not list(tmp_path.iterdir())


def test_get_optimizer_routes_callables():
    net = build_network(parse("ab,bc,cd,de->ae"), [(3, 4), (4, 5), (5, 6), (6, 2)])
    for opt in (oe.paths.greedy, External(oe.paths.greedy)):
        tree = get_optimizer(opt)(net, Budget())
        assert isinstance(tree, ContractionTree) and tree.num_leaves == 4
    assert tree_cost(net, tree).flops > 0
    with pytest.raises(TypeError):
        hash(External(oe.paths.greedy))
    assert External(oe.paths.greedy) == External(oe.paths.greedy)


@pytest.mark.parametrize(("returned", "words"), [
    (None, "returned None, not a path"),
    ("ab", "not a path"),
    ([(0, 1), 3], "entry 1 is 3"),
    ([(0, 7), (0, 1), (0, 1)], "distinct positions among the 4 current operands"),
    ([(0, 0), (0, 1), (0, 1)], "distinct positions"),
    ([(0, 1)], "leaves 3 operands"),
    ([("a", "b")], "not a tuple of ints"),
])
def test_garbage_paths_raise_a_path_error_naming_the_optimizer(returned, words):
    def bad(inputs, output, size_dict, memory_limit=None):
        return returned

    with pytest.raises(PathError, match="bad") as info:
        einopt.plan("ab,bc,cd,de->ae", (3, 4), (4, 5), (5, 6), (6, 2), optimize=bad)
    assert words in str(info.value)


def test_optimizer_errors_propagate():
    def failing(inputs, output, size_dict, memory_limit=None):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        einopt.plan("ab,bc,cd->ad", (3, 4), (4, 5), (5, 6), optimize=failing)


def test_two_operands_need_no_search():
    def never(inputs, output, size_dict, memory_limit=None):
        raise AssertionError("called")

    assert einopt.plan("ab,bc->ac", (3, 4), (4, 5), optimize=never).path == [(0, 1)]


def test_not_an_optimizer_is_a_path_error():
    with pytest.raises(PathError, match="path optimizer"):
        einopt.plan("ab,bc,cd->ad", (3, 4), (4, 5), (5, 6), optimize=object())


def test_einopts_own_path_optimizer_round_trips(rng):
    eq, shapes = CASES[1]
    ops = _operands(rng, shapes)
    p = einopt.plan(eq, *ops, optimize=einopt.PathOptimizer("optimal"))
    assert p.flops == einopt.plan(eq, *ops, optimize="optimal").flops
    np.testing.assert_allclose(p(*ops), np.einsum(eq, *ops))


# cotengra (parallel=False: its default may fork worker processes, which jax, when loaded
# in the same process, warns about) -------------------------------------------------------

kahypar_warning = pytest.mark.filterwarnings("ignore:Couldn't import `kahypar`")


@kahypar_warning
@pytest.mark.parametrize(("eq", "shapes"), CASES)
def test_cotengra_hyper_optimizer(rng, eq, shapes):
    ctg = pytest.importorskip("cotengra")
    ops = _operands(rng, shapes)
    got = einopt.einsum(eq, *ops, optimize=ctg.HyperOptimizer(max_repeats=4, parallel=False))
    np.testing.assert_allclose(got, np.einsum(eq, *ops), rtol=1e-10, atol=1e-12)


@kahypar_warning
def test_cotengra_reusable_optimizer_is_asked_each_time(rng):
    ctg = pytest.importorskip("cotengra")
    eq, shapes = CASES[1]
    ops = _operands(rng, shapes)

    class Counting(ctg.ReusableHyperOptimizer):
        searches = 0

        def search(self, inputs, output, size_dict):
            self.searches += 1
            return super().search(inputs, output, size_dict)

    opt = Counting(max_repeats=4, parallel=False)
    first = einopt.plan(eq, *ops, optimize=opt)
    second = einopt.plan(eq, *ops, optimize=opt)
    assert opt.searches == 2
    assert first.path == second.path  # its own cache answered the second time
    np.testing.assert_allclose(einopt.einsum(eq, *ops, optimize=opt), np.einsum(eq, *ops))
    assert opt.searches == 3


@kahypar_warning
def test_cotengra_slicing_is_kept(rng):
    ctg = pytest.importorskip("cotengra")
    eq, shapes = "ab,bc,cd,da->", [(8, 8), (8, 8), (8, 8), (8, 8)]
    ops = _operands(rng, shapes)
    opt = ctg.HyperOptimizer(max_repeats=4, methods=["greedy"], parallel=False,
                             slicing_opts={"target_slices": 4})
    p = einopt.plan(eq, *ops, optimize=opt)
    assert len(p.sliced) >= 1
    np.testing.assert_allclose(p(*ops), np.einsum(eq, *ops))
