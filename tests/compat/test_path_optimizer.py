"""einopt.PathOptimizer: einopt's search as opt_einsum's path optimizer, used by
opt_einsum, jax.numpy.einsum, quimb and cotengra."""

import copy
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import einopt
from einopt.errors import PathError

from networks import rand_equation

oe = pytest.importorskip("opt_einsum")

#: (equation, shapes): a chain, a ring, hyperedges, a diagonal, batch indices kept in the
#: output, a disconnected pair.
CASES = [
    ("ab,bc,cd,de->ae", [(3, 40), (40, 5), (5, 60), (60, 2)]),
    ("ab,bc,cd,de,ea->", [(3, 4), (4, 5), (5, 6), (6, 2), (2, 3)]),
    ("ab,bc,bd,be,ef->af", [(4, 5), (5, 6), (5, 7), (5, 8), (8, 3)]),
    ("ij,ik,il,im->jklm", [(6, 2), (6, 3), (6, 2), (6, 3)]),
    ("iij,jk,kl->il", [(3, 3, 4), (4, 5), (5, 2)]),
    ("bij,bjk,bkl,blm->bim", [(2, 3, 4), (2, 4, 5), (2, 5, 3), (2, 3, 2)]),
    ("ab,bc,de,ef->acdf", [(2, 3), (3, 4), (2, 5), (5, 3)]),
]

#: Random networks with hyperedges and outputs, for path costs.
RANDOM = [rand_equation(n, seed, hyper=0.4, num_output=seed % 3, degree=3)
          for n, seed in [(6, 1), (8, 2), (10, 3), (12, 4), (14, 5), (16, 6)]]


def _operands(rng, shapes):
    return [rng.standard_normal(s) for s in shapes]


def test_is_an_opt_einsum_path_optimizer():
    po = einopt.PathOptimizer()
    assert isinstance(po, einopt.PathOptimizer)
    assert isinstance(po, oe.paths.PathOptimizer)
    assert type(po) is type(einopt.PathOptimizer("greedy", seed=3))  # one class, made once
    assert type(po).__name__ == "PathOptimizer"
    assert "optimize='auto'" in repr(po)


def test_pickles_and_copies_by_its_options():
    po = einopt.PathOptimizer("hyper", max_time=0.1, minimize="size", seed=7)
    for other in (pickle.loads(pickle.dumps(po)), copy.deepcopy(po), copy.copy(po)):
        assert type(other) is type(po)
        assert (other.optimize, other.max_time, other.minimize, other.seed) == \
            ("hyper", 0.1, "size", 7)


def test_without_opt_einsum_it_is_einopts_class_only():
    code = ("import sys; sys.modules['opt_einsum'] = None\n"
            "import einopt\n"
            "po = einopt.PathOptimizer()\n"
            "assert type(po) is einopt.PathOptimizer\n"
            "print(po([('a', 'b'), ('b', 'c'), ('c', 'd')], ('a', 'd'),"
            " {'a': 10, 'b': 3, 'c': 40, 'd': 5}))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        os.path.dirname(os.path.dirname(einopt.__file__)), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.strip() == "[(1, 2), (0, 1)]"


@pytest.mark.parametrize(("eq", "shapes"), CASES)
def test_opt_einsum_contract_equals_numpy(rng, eq, shapes):
    ops = _operands(rng, shapes)
    got = oe.contract(eq, *ops, optimize=einopt.PathOptimizer())
    np.testing.assert_allclose(got, np.einsum(eq, *ops), rtol=1e-10, atol=1e-12)
    expr = oe.contract_expression(eq, *shapes, optimize=einopt.PathOptimizer("greedy"))
    np.testing.assert_allclose(expr(*ops), np.einsum(eq, *ops), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("eq", "shapes"), CASES + RANDOM)
def test_path_cost_no_worse_than_opt_einsums_greedy(eq, shapes):
    _, ours = oe.contract_path(eq, *shapes, shapes=True, optimize=einopt.PathOptimizer())
    _, greedy = oe.contract_path(eq, *shapes, shapes=True, optimize="greedy")
    assert ours.opt_cost <= greedy.opt_cost


@pytest.mark.parametrize(("eq", "shapes"), RANDOM[:4])
def test_path_equals_einopts_plan(eq, shapes):
    path, _ = oe.contract_path(eq, *shapes, shapes=True,
                               optimize=einopt.PathOptimizer("optimal"))
    assert einopt.plan(eq, *shapes, optimize=path).flops == \
        einopt.plan(eq, *shapes, optimize="optimal").flops


@pytest.mark.parametrize("strategy", ["auto", "optimal", "greedy", "hyper", "random-greedy",
                                      "dp", True, False])
@pytest.mark.parametrize("minimize", ["flops", "size", "write", "combo"])
def test_every_strategy_and_objective_gives_a_valid_path(rng, strategy, minimize):
    eq, shapes = CASES[2]
    ops = _operands(rng, shapes)
    po = einopt.PathOptimizer(strategy, max_time=0.05, minimize=minimize, seed=1)
    np.testing.assert_allclose(oe.contract(eq, *ops, optimize=po), np.einsum(eq, *ops))


def test_seeded_search_is_deterministic():
    eq, shapes = RANDOM[-1]
    paths = [oe.contract_path(eq, *shapes, shapes=True,
                              optimize=einopt.PathOptimizer("greedy", seed=5))[0]
             for _ in range(2)]
    assert paths[0] == paths[1]


@pytest.mark.parametrize(("eq", "shapes"), RANDOM)
def test_memory_limit_bounds_every_step_before_the_last(rng, eq, shapes):
    # a limit that a pairwise order meets: the largest intermediate of opt_einsum's greedy
    _, greedy = oe.contract_path(eq, *shapes, shapes=True, optimize="greedy")
    limit = max(greedy.size_list[:-1])
    _, free = oe.contract_path(eq, *shapes, shapes=True, optimize=einopt.PathOptimizer())
    if max(free.size_list[:-1]) <= limit:
        limit = max(1, limit // 2)  # make it bite (perhaps beyond any pairwise order)
    path, info = oe.contract_path(eq, *shapes, shapes=True, optimize=einopt.PathOptimizer(),
                                  memory_limit=limit)
    assert max(info.size_list[:-1]) <= limit
    assert all(len(step) == 2 for step in path[:-1])
    if len(path[-1]) == 2:  # else one einsum over many operands ends it: slow to run
        ops = _operands(rng, shapes)
        got = oe.contract(eq, *ops, optimize=einopt.PathOptimizer(), memory_limit=limit)
        np.testing.assert_allclose(got, np.einsum(eq, *ops), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(("eq", "shapes"), RANDOM)
def test_a_limit_that_a_pairwise_order_meets_gets_one(eq, shapes):
    _, greedy = oe.contract_path(eq, *shapes, shapes=True, optimize="greedy")
    limit = max(greedy.size_list[:-1])
    path, info = oe.contract_path(eq, *shapes, shapes=True, optimize=einopt.PathOptimizer(),
                                  memory_limit=limit)
    assert all(len(step) == 2 for step in path) and max(info.size_list[:-1]) <= limit


def test_memory_limit_that_no_pairwise_order_meets_ends_with_one_step(rng):
    eq, shapes = "ab,bc,cd,de->ae", [(8, 8), (8, 8), (8, 8), (8, 8)]
    po = einopt.PathOptimizer()
    path = po([set("ab"), set("bc"), set("cd"), set("de")], set("ae"),
              dict.fromkeys("abcde", 8), memory_limit=10)
    assert path == [(0, 1, 2, 3)]  # every pairwise result has 64 elements
    ops = _operands(rng, shapes)
    got = oe.contract(eq, *ops, optimize=po, memory_limit=10)
    np.testing.assert_allclose(got, np.einsum(eq, *ops))


def test_memory_limit_keeps_what_fits(rng):
    # (ab)(bc) is small; anything with d is big: contract the small part, then the rest.
    inputs = [("a", "b"), ("b", "c"), ("c", "d"), ("d", "e")]
    sizes = {"a": 2, "b": 2, "c": 2, "d": 50, "e": 50}
    path = einopt.PathOptimizer()(inputs, ("a", "e"), sizes, memory_limit=10)
    assert path == [(0, 1), (0, 1, 2)]
    assert einopt.PathOptimizer()(inputs, ("a", "e"), sizes, memory_limit=-1) == \
        einopt.PathOptimizer()(inputs, ("a", "e"), sizes)


def test_inputs_in_any_form():
    po = einopt.PathOptimizer("optimal")
    sizes = {"a": 10, "b": 3, "c": 40, "d": 5}
    forms = [
        (["ab", "bc", "cd"], "ad"),
        ([("a", "b"), ("b", "c"), ("c", "d")], ("a", "d")),
        ([frozenset("ab"), frozenset("bc"), frozenset("cd")], frozenset("ad")),
        ([["a", "b"], {"b", "c"}, "cd"], ["a", "d"]),
    ]
    assert all(po(inputs, output, sizes) == [(1, 2), (0, 1)] for inputs, output in forms)
    # symbols need not be characters
    long = [("left", "bond1"), ("bond1", "bond2"), ("bond2", "right")]
    assert po(long, ("left", "right"), {"left": 10, "bond1": 3, "bond2": 40, "right": 5}) == \
        [(1, 2), (0, 1)]
    assert po(["ab"], "a", {"a": 2, "b": 3}) == [(0,)]
    assert po(["ab", "b"], "a", {"a": 2, "b": 3}) == [(0, 1)]


def test_bad_options_and_calls_raise_path_errors():
    with pytest.raises(PathError, match="fastest"):
        einopt.PathOptimizer("fastest")
    with pytest.raises(PathError, match="minimize"):
        einopt.PathOptimizer(minimize="speed")
    with pytest.raises(PathError, match="max_time"):
        einopt.PathOptimizer(max_time=0)
    with pytest.raises(PathError, match="strategy name"):
        einopt.PathOptimizer(oe.paths.greedy)
    po = einopt.PathOptimizer()
    with pytest.raises(PathError, match="no size for index 'c' of input 1"):
        po(["ab", "bc", "a"], "", {"a": 2, "b": 3})
    with pytest.raises(PathError, match="output index 'z' is in no input"):
        po(["ab", "bc", "a"], "z", {"a": 2, "b": 3, "c": 4})
    with pytest.raises(PathError, match="memory_limit"):
        po(["ab", "bc", "ca"], "", {"a": 2, "b": 3, "c": 4}, memory_limit="lots")


# jax --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("eq", "shapes"), CASES)
def test_jax_numpy_einsum(rng, eq, shapes):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    ops = _operands(rng, shapes)
    expected = np.einsum(eq, *ops)
    po = einopt.PathOptimizer()
    got = jnp.einsum(eq, *ops, optimize=po)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-5)
    jitted = jax.jit(lambda *xs: jnp.einsum(eq, *xs, optimize=po))
    np.testing.assert_allclose(np.asarray(jitted(*ops)), expected, rtol=1e-4, atol=1e-5)
    path, _ = jnp.einsum_path(eq, *ops, optimize=po)
    assert path == oe.contract_path(eq, *ops, optimize=po)[0]


# quimb and cotengra -----------------------------------------------------------------------

def _tensor_network(qtn, rng, eq, shapes):
    terms, output = eq.split("->")
    tensors = [qtn.Tensor(rng.standard_normal(s), inds=tuple(term))
               for term, s in zip(terms.split(","), shapes, strict=True)]
    return qtn.TensorNetwork(tensors), tuple(output)


@pytest.mark.parametrize(("eq", "shapes"), [c for c in CASES if "iij" not in c[0]])
def test_quimb_tensor_network_contract(rng, eq, shapes):
    qtn = pytest.importorskip("quimb.tensor")
    tn, output = _tensor_network(qtn, rng, eq, shapes)
    ops = [t.data for t in tn]
    expected = np.einsum(eq, *ops)
    got = tn.contract(..., output_inds=output, optimize=einopt.PathOptimizer())
    got = got.transpose(*output).data if output else got
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_quimb_large_network(rng):
    qtn = pytest.importorskip("quimb.tensor")
    tn = qtn.TN2D_rand(4, 5, D=2, seed=3)
    expected = tn.contract(..., optimize="greedy")
    got = tn.contract(..., optimize=einopt.PathOptimizer("hyper", max_time=0.2, seed=0))
    np.testing.assert_allclose(got, expected, rtol=1e-9)


@pytest.mark.parametrize(("eq", "shapes"), CASES)
def test_cotengra_array_contract(rng, eq, shapes):
    ctg = pytest.importorskip("cotengra")
    terms, output = eq.split("->")
    ops = _operands(rng, shapes)
    got = ctg.array_contract(ops, [tuple(t) for t in terms.split(",")], tuple(output),
                             optimize=einopt.PathOptimizer())
    np.testing.assert_allclose(got, np.einsum(eq, *ops), rtol=1e-10, atol=1e-12)
