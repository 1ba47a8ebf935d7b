"""einopt.compat.contract: opt_einsum's strategy names, operand reading, PathInfo, errors,
``backend=``, ``memory_limit`` and ``shared_intermediates``, with opt_einsum as oracle."""

from __future__ import annotations

import threading
import time
import weakref

import numpy as np
import pytest
import semirings

import einopt
from einopt.errors import BackendError, EinsumError
from einopt.optimize import ALIASES, OPTIMIZERS
from einopt.run.sharing import count_cached_ops, currently_sharing, get_sharing_cache

oe = pytest.importorskip("opt_einsum")
from opt_einsum.paths import _PATH_OPTIONS  # noqa: E402
from opt_einsum.testing import rand_equation  # noqa: E402

RNG = np.random.default_rng(7)


@pytest.fixture
def logsumexp_module():
    return semirings.logsumexp_module()


@pytest.fixture
def counting_module():
    return semirings.counting_module()


def ops_for(eq, sizes=None, seed=0):
    rng = np.random.default_rng(seed)
    sizes = sizes or {}
    lhs = eq.split("->")[0]
    return [rng.random([sizes.get(c, 2 + ord(c) % 3) for c in term]) for term in lhs.split(",")]


# ---- strategy names ----

EQ = "ab,bc,cd,de,ea->"
NAMES = sorted(set(_PATH_OPTIONS) | {"random-greedy", "random-greedy-128"})


@pytest.mark.parametrize("name", NAMES)
def test_every_opt_einsum_strategy_name_is_known(name):
    assert name in OPTIMIZERS or name in ALIASES
    ops = ops_for(EQ)
    expected = np.einsum(EQ, *ops)
    np.testing.assert_allclose(einopt.contract(EQ, *ops, optimize=name), expected)
    np.testing.assert_allclose(einopt.einsum(EQ, *ops, optimize=name), expected)
    path, info = einopt.contract_path(EQ, *ops, optimize=name)
    np.testing.assert_allclose(oe.contract(EQ, *ops, optimize=path), expected)
    assert info.path == path


def test_strategy_names_are_case_insensitive():
    ops = ops_for(EQ)
    np.testing.assert_allclose(einopt.contract(EQ, *ops, optimize="Random-Greedy"),
                               np.einsum(EQ, *ops))


@pytest.mark.parametrize("name", ["random-greedy", "random-greedy-128", "auto-hq"])
def test_sampling_strategies_take_milliseconds_and_are_deterministic(name):
    eq, shapes = rand_equation(12, 3, 2, seed=3)
    einopt.clear_caches()
    start = time.perf_counter()
    first = einopt.plan(eq, *shapes, optimize=name)
    assert time.perf_counter() - start < 0.5  # opt_einsum's take tens of milliseconds
    einopt.clear_caches()
    assert einopt.plan(eq, *shapes, optimize=name).path == first.path


def test_random_greedy_is_no_worse_than_greedy():
    for seed in range(5):
        eq, shapes = rand_equation(20, 3, 2, seed=seed)
        greedy = einopt.plan(eq, *shapes, optimize="greedy").flops
        assert einopt.plan(eq, *shapes, optimize="random-greedy").flops <= greedy


# ---- contract_path: operands, PathInfo ----


@pytest.mark.parametrize("eq, operands", [
    ("a,->a", ([1.0, 2.0, 3.0], 2.0)),
    (",,->", (5, 5.0, 2.0j)),
    ("ab,->", ([[5, 5], [2.0, 1]], True)),
    ("ab,bc->ac", ([[5, 5], [2.0, 1]], [[2.0, 1], [3.0, 4]])),
])
def test_contract_path_reads_scalars_and_lists_as_arrays(eq, operands):
    path, info = einopt.contract_path(eq, *operands)
    oe_path, oe_info = oe.contract_path(eq, *operands)
    assert len(path) == len(oe_path)
    assert info.eq == oe_info.eq and info.shapes == oe_info.shapes
    np.testing.assert_allclose(einopt.contract(eq, *operands), np.einsum(eq, *operands))


def test_contract_path_with_shapes():
    path, info = einopt.contract_path("ab,bc,cd", (2, 3), (3, 4), (4, 5), shapes=True)
    assert path == oe.contract_path("ab,bc,cd", (2, 3), (3, 4), (4, 5), shapes=True)[0]
    assert info.shapes == [(2, 3), (3, 4), (4, 5)]


@pytest.mark.parametrize("eq", ["bbd,bda,fc,db->acf", "ea,fb,abcd,gc,hd->efgh",
                                "abc,bcd,dea", "ab,ab,c->", "...a,...b->...", "aab,fa,df,ecc->bde"])
@pytest.mark.parametrize("use_blas", [True, False])
def test_path_info_is_opt_einsum_s_for_the_same_path(eq, use_blas):
    ops = ops_for(eq.replace("...", "ij"))
    if "..." in eq:
        ops = [np.ones((2, 3, 4)), np.ones((2, 3, 5))]
    path, _ = oe.contract_path(eq, *ops)
    ours = einopt.contract_path(eq, *ops, optimize=path, use_blas=use_blas)[1]
    theirs = oe.contract_path(eq, *ops, optimize=path, use_blas=use_blas)[1]
    for attr in ("eq", "input_subscripts", "output_subscript", "indices", "path",
                 "scale_list", "size_list", "size_dict", "naive_cost", "opt_cost", "speedup",
                 "largest_intermediate", "shapes", "contraction_list"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert str(ours) == str(theirs) == repr(ours)
    assert ours.plan.path == einopt.plan(eq, *ops, optimize=path).path


def test_path_info_of_an_empty_contraction():
    _, info = einopt.contract_path("->", 1.0, optimize=[])
    assert repr(info) and info.largest_intermediate == 1


def test_path_info_names_sublist_labels_with_symbols():
    a, b = RNG.random((2, 3)), RNG.random((3, 4))
    path, info = einopt.contract_path(a, ["left", "bond"], b, ["bond", "right"])
    assert path == [(0, 1)]
    assert info.eq == oe.contract_path(a, ["left", "bond"], b, ["bond", "right"])[1].eq


def test_optimize_none_and_true_are_auto():
    ops = ops_for("ij,jk,kl->il")
    for optimize in (None, True):
        path, _ = einopt.contract_path("ij,jk,kl->il", *ops, optimize=optimize)
        assert path == einopt.contract_path("ij,jk,kl->il", *ops, optimize="auto")[0]
    assert einopt.contract_path("ij,jk,kl->il", *ops, optimize=False)[0] == [(0, 1, 2)]


# ---- errors: TypeError where opt_einsum raises it ----


@pytest.mark.parametrize("call", [
    lambda: einopt.contract(0, 0),
    lambda: einopt.contract_path(0, 0),
    lambda: einopt.contract("", 0, bad_arg=0),
    lambda: einopt.contract_path("ij->ij", [[0, 1], [0, 1]], bad_kwarg=True),
    lambda: einopt.contract(np.ones(3), [Ellipsis, 0], [Ellipsis, ["a"]]),
    lambda: einopt.contract(np.ones(3), [Ellipsis, {}], [Ellipsis, "a"]),
    lambda: einopt.contract_expression("ab->a", (2, 3), bad=1),
])
def test_type_errors_are_type_errors_and_einsum_errors(call):
    with pytest.raises(TypeError) as info:
        call()
    assert isinstance(info.value, EinsumError)


@pytest.mark.parametrize("kwargs", [{"optimize": False}, {"optimize": None},
                                    {"out": np.empty((2, 4))}, {"backend": "numpy"}])
def test_contract_expression_rejects_what_opt_einsum_rejects(kwargs):
    with pytest.raises(ValueError):
        oe.contract_expression("ab,bc->ac", (2, 3), (3, 4), **kwargs)
    with pytest.raises(ValueError):
        einopt.contract_expression("ab,bc->ac", (2, 3), (3, 4), **kwargs)


def test_contract_expression_call_errors():
    expr = einopt.contract_expression("ab,bc->ac", (2, 3), (3, 4))
    with pytest.raises(ValueError, match="`ContractExpression` takes exactly 2"):
        expr(np.ones((2, 3)))
    with pytest.raises(ValueError, match="Internal error while evaluating"):
        expr(np.ones((2, 3, 4)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="Internal error while evaluating"):
        expr(np.ones((2, 3)), np.ones((3, 4)), out=np.ones((2, 4, 6)))
    with pytest.raises(TypeError, match="unexpected keyword"):
        expr(np.ones((2, 3)), np.ones((3, 4)), order="F")
    with pytest.raises(ValueError):
        einopt.contract_expression("ab,bc->ac", (2, 3), (3, 4), (42, 42))


def test_contract_expression_keeps_einsum_keywords_and_out():
    a, b = RNG.random((2, 3)), RNG.random((3, 4))
    expr = einopt.contract_expression("ab,bc->ac", a.shape, b.shape, dtype=np.complex128)
    assert expr(a, b).dtype == np.complex128
    out = np.empty((2, 4))
    assert einopt.contract_expression("ab,bc->ac", a.shape, b.shape)(a, b, out=out) is out
    np.testing.assert_allclose(out, a @ b)


def test_contract_expression_takes_other_sizes_of_the_same_rank():
    expr = einopt.contract_expression("ab,bc,cd->ad", (2, 3), (3, 4), (4, 5))
    ops = [RNG.random((6, 2)), RNG.random((2, 7)), RNG.random((7, 3))]
    np.testing.assert_allclose(expr(*ops), oe.contract_expression(
        "ab,bc,cd->ad", (2, 3), (3, 4), (4, 5))(*ops))


def test_contraction_list_is_opt_einsum_s():
    expr = einopt.contract_expression("ab,bc,bd->acd", (5, 4), (1, 5), (4, 20),
                                      optimize=[(0, 1), (0, 1)])
    theirs = oe.contract_expression("ab,bc,bd->acd", (5, 4), (1, 5), (4, 20),
                                    optimize=[(0, 1), (0, 1)])
    assert expr.contraction_list == theirs.contraction_list
    assert expr.contraction_list[1][-1] == "GEMM"


# ---- constants ----


@pytest.mark.parametrize("eq, constants", [
    ("hbc,bdef,cdkj,ji,ikeh,lfo", [1, 2, 3, 4]),
    ("ab,cd,ad,cb", [1, 3]),
    ("ab,bc,cd", [0, 1]),
    ("ij,jk,kl->il", [0, 2]),
    ("ij,jk->ik", [0, 1]),
])
def test_constants_are_folded_once_and_match_opt_einsum(eq, constants):
    ops = ops_for(eq, seed=1)
    spec = [x if k in constants else x.shape for k, x in enumerate(ops)]
    ours = einopt.contract_expression(eq, *spec, constants=constants)
    theirs = oe.contract_expression(eq, *spec, constants=constants)
    variables = [x for k, x in enumerate(ops) if k not in constants]
    expected = np.einsum(eq, *ops)
    for _ in range(2):
        np.testing.assert_allclose(ours(*variables), expected)
    if variables:
        np.testing.assert_allclose(ours(*variables), theirs(*variables))
    assert repr(ours) == repr(theirs)


def test_constants_with_a_counting_backend_run_once(counting_module):
    eq = "ab,bc,cd,de->ae"
    ops = ops_for(eq, seed=2)
    expr = einopt.contract_expression(eq, ops[0].shape, ops[1], ops[2], ops[3].shape,
                                      constants=[1, 2], optimize=[(1, 2), (0, 2), (0, 1)])
    expr(ops[0], ops[3], backend=counting_module.__name__)
    first = counting_module.calls
    expr(ops[0], ops[3], backend=counting_module.__name__)
    assert counting_module.calls - first == first - 1  # b @ c is not formed again
    np.testing.assert_allclose(expr(ops[0], ops[3], backend=counting_module.__name__),
                               np.einsum(eq, *ops))


def test_constants_follow_the_variables_library():
    torch = pytest.importorskip("torch")
    eq = "ab,bc,cd->ad"
    ops = ops_for(eq, seed=3)
    expr = einopt.contract_expression(eq, ops[0], ops[1].shape, ops[2], constants=[0, 2])
    got = expr(torch.tensor(ops[1]))
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), np.einsum(eq, *ops))


def test_every_operand_constant():
    ops = ops_for("ab,bc->ac")
    expr = einopt.contract_expression("ab,bc->ac", *ops, constants=[0, 1])
    np.testing.assert_allclose(expr(), ops[0] @ ops[1])


# ---- backend= ----


def test_backend_numpy_converts_other_arrays():
    torch = pytest.importorskip("torch")
    a, b = torch.ones(2, 3, dtype=torch.float64), torch.ones(3, 4, dtype=torch.float64)
    got = einopt.contract("ab,bc->ac", a, b, backend="numpy")
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, oe.contract("ab,bc->ac", a, b, backend="numpy"))


def test_backend_torch_converts_numpy_operands():
    torch = pytest.importorskip("torch")
    ops = ops_for("ab,bc,cd->ad")
    got = einopt.contract("ab,bc,cd->ad", *ops, backend="torch")
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), np.einsum("ab,bc,cd->ad", *ops))


def test_expression_on_numpy_with_a_library_backend_returns_numpy():
    pytest.importorskip("torch")
    ops = ops_for("ab,bc,cd->ad")
    expr = einopt.contract_expression("ab,bc,cd->ad", *(x.shape for x in ops))
    theirs = oe.contract_expression("ab,bc,cd->ad", *(x.shape for x in ops))
    got = expr(*ops, backend="torch")
    assert type(got) is type(theirs(*ops, backend="torch")) is np.ndarray
    np.testing.assert_allclose(got, np.einsum("ab,bc,cd->ad", *ops))


def test_unknown_backend_module():
    with pytest.raises(ImportError):
        oe.contract("ab->a", np.ones((2, 2)), backend="no_such_module_here")
    with pytest.raises(BackendError, match="no_such_module_here"):
        einopt.contract("ab->a", np.ones((2, 2)), backend="no_such_module_here")
    with pytest.raises(BackendError, match="no einsum"):
        einopt.contract("ab->a", np.ones((2, 2)), backend="math")
    expr = einopt.contract_expression("ab->a", (2, 2))
    with pytest.raises(ImportError):
        expr(np.ones((2, 2)), backend="no_such_module_here")


@pytest.mark.parametrize("eq, shapes", [
    ("a,b->", [(3,), (4,)]),
    ("ab,bc,cd->ad", [(3, 4), (4, 5), (5, 2)]),
    ("abc,bcd,de,ea->", [(2, 3, 4), (3, 4, 5), (5, 2), (2, 2)]),
    ("aab,bc->ac", [(3, 3, 4), (4, 5)]),
])
def test_semiring_backend_matches_opt_einsum(logsumexp_module, eq, shapes):
    rng = np.random.default_rng(4)
    ops = [rng.random(s) for s in shapes]
    name = logsumexp_module.__name__
    expected = oe.contract(eq, *ops, backend=name)
    np.testing.assert_allclose(einopt.contract(eq, *ops, backend=name), expected)
    expr = einopt.contract_expression(eq, *shapes)
    np.testing.assert_allclose(expr(*ops, backend=name), expected)
    assert not np.allclose(expected, np.einsum(eq, *ops))  # a different semiring


# ---- memory_limit ----


def largest_before_last(eq, shapes, path):
    """Largest intermediate of ``path`` but the last step's (opt_einsum's bound)."""
    info = oe.contract_path(eq, *shapes, shapes=True, optimize=path)[1]
    return max(info.size_list[:-1], default=0)


@pytest.mark.parametrize("name", ["greedy", "optimal", "auto", "dp", "random-greedy",
                                  "branch-2"])
@pytest.mark.parametrize("limit", [8, 16, 64, 256, "max_input", -1, None])
def test_memory_limit_bounds_every_intermediate_without_slicing(name, limit):
    eq = "abc,cde,efg,gha,bd->fh"
    shapes = [(4, 4, 4)] * 4 + [(4, 4)]
    ops = ops_for(eq, {c: 4 for c in "abcdefgh"}, seed=5)
    path, info = einopt.contract_path(eq, *ops, optimize=name, memory_limit=limit)
    bound = {None: None, -1: None, "max_input": 64}.get(limit, limit)
    if bound is not None:  # pairs that fit, perhaps then one step over the rest
        assert all(len(step) == 2 for step in path[:-1])
        assert largest_before_last(eq, shapes, path) <= bound
    assert info.plan.sliced == ()
    expected = np.einsum(eq, *ops)
    np.testing.assert_allclose(einopt.contract(eq, *ops, optimize=name, memory_limit=limit),
                               expected)
    expr = einopt.contract_expression(eq, *shapes, optimize=name, memory_limit=limit)
    np.testing.assert_allclose(expr(*ops), expected)
    assert expr.path == path


def test_memory_limit_falls_back_to_one_step_as_opt_einsum_does():
    eq = "ab,bc,cd,de->ae"
    shapes = [(10, 10)] * 4
    for name in ("optimal", "greedy"):
        ours = einopt.contract_path(eq, *shapes, shapes=True, optimize=name, memory_limit=10)[0]
        theirs = oe.contract_path(eq, *shapes, shapes=True, optimize=name, memory_limit=10)[0]
        assert ours == theirs == [(0, 1, 2, 3)]
    ops = ops_for(eq, {c: 10 for c in "abcde"})
    np.testing.assert_allclose(einopt.contract(eq, *ops, memory_limit=10), np.einsum(eq, *ops))


def test_memory_limit_with_a_module_backend(logsumexp_module):
    eq = "ab,bc,cd,de->ae"
    ops = ops_for(eq, {c: 5 for c in "abcde"}, seed=6)
    name = logsumexp_module.__name__
    np.testing.assert_allclose(einopt.contract(eq, *ops, memory_limit=5, backend=name),
                               oe.contract(eq, *ops, memory_limit=5, backend=name))


@pytest.mark.parametrize("bad", ["largest", 0, -2])
def test_bad_memory_limit(bad):
    with pytest.raises(ValueError):
        oe.contract_path("ab,bc->ac", (2, 3), (3, 4), shapes=True, memory_limit=bad)
    with pytest.raises(ValueError):
        einopt.contract_path("ab,bc->ac", (2, 3), (3, 4), shapes=True, memory_limit=bad)


def test_plan_memory_limit_still_slices():
    p = einopt.plan("ij,jk,kl->il", (8, 8), (8, 8), (8, 8), memory_limit=100)
    assert p.sliced


def test_memory_limit_with_an_opt_einsum_optimizer():
    eq = "ab,bc,cd,de->ae"
    shapes = [(10, 10)] * 4
    path, _ = einopt.contract_path(eq, *shapes, shapes=True, memory_limit=10,
                                   optimize=oe.paths.BranchBound(nbranch=1))
    assert path == oe.contract_path(eq, *shapes, shapes=True, memory_limit=10,
                                    optimize=oe.paths.BranchBound(nbranch=1))[0]


# ---- shared_intermediates ----


def test_shared_intermediates_is_public():
    assert "shared_intermediates" in einopt.__all__
    assert einopt.shared_intermediates is einopt.compat.shared_intermediates


def test_a_repeated_contraction_adds_nothing_to_the_cache():
    x, y, z = ops_for("ab,bc,cd")
    expr = einopt.contract_expression("ab,bc,cd->", x.shape, y.shape, z.shape)
    with einopt.shared_intermediates() as cache:
        first = expr(x, y, z)
        size = len(cache)
        assert count_cached_ops(cache)["einsum"] >= 2
        again = expr(x, y, z)
        assert len(cache) == size and again == first
        einopt.contract("ab,bc,cd->", x, y, z)
        assert len(cache) == size


def test_contractions_share_common_intermediates():
    xs = ops_for("ab,bc,cd,de", seed=8)
    alone = 0
    for out in "abcde":
        with einopt.shared_intermediates() as cache:
            einopt.contract(f"ab,bc,cd,de->{out}", *xs)
            alone += count_cached_ops(cache)["einsum"]
    with einopt.shared_intermediates() as cache:
        results = [einopt.contract(f"ab,bc,cd,de->{out}", *xs) for out in "abcde"]
        shared = count_cached_ops(cache)["einsum"]
    assert shared < alone
    for out, r in zip("abcde", results, strict=True):
        np.testing.assert_allclose(r, np.einsum(f"ab,bc,cd,de->{out}", *xs))


def test_sharing_is_modulo_operand_order():
    x, y = ops_for("ab,bc")
    with einopt.shared_intermediates() as cache:
        einopt.contract("ab,bc->ac", x, y)
        n = len(cache)
        np.testing.assert_allclose(einopt.contract("bc,ab->ac", y, x), x @ y)
        assert len(cache) == n


def test_caches_nest_resume_and_are_per_thread():
    x, y, z = ops_for("ab,bc,cd")
    with einopt.shared_intermediates() as outer:
        einopt.contract("ab,bc->ac", x, y)
        with einopt.shared_intermediates() as inner:
            assert get_sharing_cache() is inner
            einopt.contract("ab,bc->ac", x, y)
            assert len(inner) == len(outer)
        assert get_sharing_cache() is outer
        seen = []
        t = threading.Thread(target=lambda: seen.append(currently_sharing()))
        t.start()
        t.join()
        assert seen == [False]
    assert not currently_sharing()
    with einopt.shared_intermediates(outer) as resumed:
        n = len(resumed)
        einopt.contract("ab,bc->ac", x, y)
        assert resumed is outer and len(resumed) == n


def test_the_cache_is_freed_with_its_context():
    x, y = ops_for("ab,bc")
    refs = weakref.WeakValueDictionary()
    with einopt.shared_intermediates():
        r = einopt.contract("ab,bc->ac", x, y)
        refs["r"] = r
        del r
        assert "r" in refs
    assert "r" not in refs


def test_sharing_with_a_library_backend_and_constants():
    torch = pytest.importorskip("torch")
    eqs = [f"ij,jk,kl->{out}" for out in "ijkl"]
    ops = ops_for("ij,jk,kl", seed=9)
    with einopt.shared_intermediates() as cache:
        got = [einopt.contract_expression(eq, ops[0], ops[1].shape, ops[2], constants=[0, 2])(
            ops[1], backend="torch") for eq in eqs]
        assert count_cached_ops(cache)["convert"] >= 1
    for eq, r in zip(eqs, got, strict=True):
        assert isinstance(r, np.ndarray)
        np.testing.assert_allclose(r, np.einsum(eq, *ops))
    with einopt.shared_intermediates():
        t = einopt.contract("ij,jk->ik", torch.tensor(ops[0]), torch.tensor(ops[1]))
    assert isinstance(t, torch.Tensor)


def test_clear_caches_leaves_a_sharing_cache_alone():
    x, y = ops_for("ab,bc")
    with einopt.shared_intermediates() as cache:
        einopt.contract("ab,bc->ac", x, y)
        einopt.clear_caches()
        assert cache


# ---- opt_einsum's other backends and hidden options ----


@pytest.mark.parametrize("eq", ["ab,bc->ca", "abc,bcd,dea", "ijk,ikj", "i,j->ij"])
def test_object_backend(eq):
    ops = [x.astype(object) for x in ops_for(eq)]
    got = einopt.contract(eq, *ops, backend="object")
    expr = einopt.contract_expression(eq, *(x.shape for x in ops))
    for result in (got, expr(*ops, backend="object")):
        assert isinstance(result, np.ndarray) and result.dtype == object
        np.testing.assert_allclose(result.astype(float),
                                   np.einsum(eq, *[x.astype(float) for x in ops]))


def test_contract_path_einsum_call_gives_operands_and_steps():
    ops = ops_for("ab,bc,cd->ad")
    operands, steps = einopt.contract_path("ab,bc,cd->ad", *ops, einsum_call=True)
    theirs = oe.contract_path("ab,bc,cd->ad", *ops, einsum_call=True)[1]
    assert all(x is y for x, y in zip(operands, ops, strict=True))
    assert [s[2] for s in steps] == [s[2] for s in theirs]
