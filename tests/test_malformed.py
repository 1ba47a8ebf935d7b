"""Malformed input of every kind raises an einopt.EinsumError that names what is wrong,
never an IndexError, KeyError, OverflowError or RecursionError from inside; where
numpy.einsum raises a TypeError for the same call, the error is a TypeError too.

Inputs that are only large (flop counts past 64 bits, 10,000 tensors) are not malformed:
they plan, print and evaluate.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from backend_libs import available
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import einopt


def ones(*shape: int, dtype: Any = float) -> np.ndarray:
    return np.ones(shape, dtype)


A, B, C = ones(2, 3), ones(3, 4), ones(4, 5)
READ_ONLY = np.broadcast_to(np.zeros(4), (2, 4))


@dataclass(frozen=True)
class Bad:
    """One malformed call and what its error must say.

    Attributes:
        id: the case's name.
        args: positional arguments of ``fn``.
        kwargs: keyword arguments of ``fn``.
        mentions: texts the message must hold (operand positions as ``"operand 1"``,
            indices, sizes), matched case-insensitively.
        fn: the einopt function called.
        numpy: the same call's arguments for ``numpy.einsum`` (``args``/``kwargs`` when
            ``True``; None: numpy has no such call): when numpy raises a TypeError, the
            error must be one as well.
        error: the EinsumError subclass expected.
    """

    id: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    mentions: tuple[str, ...] = ()
    fn: Callable[..., Any] = einopt.einsum
    numpy: Any = True
    error: type[Exception] = einopt.EinsumError


def path(*entries: Any) -> dict[str, Any]:
    """numpy's form of an explicit path, for the numpy side of a case."""
    return {"optimize": ["einsum_path", *entries]}


CASES = [
    # ---- subscripts ----
    Bad("lone minus", ("ij-jk", A, B), mentions=("-",)),
    Bad("lone greater", ("ij>jk", A, B), mentions=(">",)),
    Bad("arrow twice", ("ij->j->i", A), mentions=("->",)),
    Bad("bad character", ("i!,jk", A, B), mentions=("!", "operand 0")),
    Bad("bad character in output", ("ij->i#", A), mentions=("#",)),
    Bad("lone dot", ("i.j", A), mentions=(".",)),
    Bad("two dots", ("..ij", A), mentions=(".",)),
    Bad("two ellipses", ("...i...", A), mentions=("ellipsis", "operand 0")),
    Bad("two ellipses in output", ("...i->......", A), mentions=("ellipsis",)),
    Bad("output label not in inputs", ("ij->k", A), mentions=("'k'",)),
    Bad("repeated output label", ("ij->jj", A), mentions=("'j'",)),
    Bad("output lacks ellipsis", ("...i->i", A), mentions=("...",)),
    Bad("unicode output label", ("αβ->γ", A), mentions=("γ",), numpy=None),
    Bad("names output not in inputs", ("batch in -> out", A), mentions=("out",), numpy=None),
    Bad("names repeated output", ("batch in, in out -> batch batch", A, B),
        mentions=("batch",), numpy=None),
    Bad("names bad token", ("a.b c, c d -> d", A, B), mentions=("a.b",), numpy=None),
    Bad("bytes not utf-8", (b"i\xff", A), mentions=("utf-8",), numpy=None),
    # ---- operand count, ranks, sizes ----
    Bad("too few operands", ("ij,jk,kl", A, B), mentions=("3", "2")),
    Bad("too many operands", ("ij", A, B), mentions=("1", "2")),
    Bad("no operands", ("ij",), mentions=("1", "0")),
    Bad("more labels than axes", ("ijk,jk", A, B), mentions=("operand 0", "3", "2")),
    Bad("fewer labels than axes", ("i,ij->j", ones(3), ones(3, 4, 5)),
        mentions=("operand 1", "3", "2")),
    Bad("ellipsis beyond rank", ("...ijk", A), mentions=("operand 0",)),
    Bad("size mismatch", ("ij,jk", A, C), mentions=("'j'", "3", "4", "operand 1")),
    Bad("size mismatch, third operand", ("ab,bc,cd->ad", A, ones(3, 7), ones(5, 2)),
        mentions=("'c'", "7", "5", "operand 2")),
    Bad("non-square diagonal", ("ii", A), mentions=("'i'", "2", "3")),
    Bad("ellipsis dims mismatch", ("...i,...i->...", ones(2, 3), ones(4, 3)),
        mentions=("2", "4")),
    # ---- operands that are no arrays, dtypes einsum cannot multiply ----
    Bad("string operand", ("i", "abc"), mentions=("operand 0", "str")),
    Bad("None operand", ("i,i", ones(2), None), mentions=("operand 1",)),
    Bad("dict operand", ("i", {"a": 1}), mentions=("operand 0",)),
    Bad("object operand", ("i", object()), mentions=("operand 0",)),
    Bad("ragged list", ("ij", [[1, 2], [3]]), mentions=("operand 0",)),
    Bad("string array", ("i,i", np.array(["a", "b"]), np.array(["c", "d"])),
        mentions=("operand 0", "<U1")),
    Bad("datetime array", ("i,i", np.array(["2020-01-01"], "M8[D]"), ones(1)),
        mentions=("operand 0", "datetime64")),
    Bad("structured array", ("i", np.zeros(2, "i4,f8")), mentions=("operand 0",),
        numpy=None),
    Bad("objects that do not multiply", ("i,i", np.array(["a", 1], object), ones(2)),
        mentions=("operand 0", "object")),
    Bad("torch and jax mixed", ("ij,jk", "torch", "jax"), mentions=("operand 1",),
        numpy=None),
    # ---- the sublist form ----
    Bad("sublist: unhashable label", (A, [[0], 1]), mentions=("operand 0",)),
    Bad("sublist: text instead of a list", (A, "ij"), mentions=("operand 0", "str")),
    Bad("sublist: None instead of a list", (A, None), mentions=("operand 0",)),
    Bad("sublist: output not a list", (A, [0, 1], 0), mentions=("output", "int")),
    Bad("sublist: two ellipses", (A, [..., 0, ...]), mentions=("ellipsis",)),
    Bad("sublist: output label not in inputs", (A, [0, 1], [2]), mentions=("2",)),
    Bad("sublist: repeated output label", (A, [0, 1], [1, 1]), mentions=("1",)),
    Bad("sublist: operand without list", (A,), mentions=("1 argument",)),
    Bad("sublist: nothing", ([],), mentions=("1 argument",)),
    Bad("sublist: size mismatch", (A, [0, 1], C, [1, 2]), mentions=("3", "4")),
    # ---- explicit paths ----
    Bad("path position out of range", ("ij,jk,kl", A, B, C), {"optimize": [(0, 5), (0, 1)]},
        mentions=("(0, 5)", "3"), numpy=path((0, 5), (0, 1))),
    Bad("path negative position", ("ij,jk,kl", A, B, C), {"optimize": [(-1, 0), (0, 1)]},
        mentions=("(-1, 0)",), numpy=path((-1, 0), (0, 1))),
    Bad("path same position twice", ("ij,jk,kl", A, B, C), {"optimize": [(0, 0), (0, 1)]},
        mentions=("(0, 0)", "distinct"), numpy=path((0, 0), (0, 1))),
    Bad("path unfinished", ("ij,jk,kl", A, B, C), {"optimize": [(0, 1)]},
        mentions=("2 operands",), numpy=path((0, 1)), error=einopt.errors.IncompletePathError),
    Bad("path empty", ("ij,jk,kl", A, B, C), {"optimize": []}, mentions=("3 operands",),
        numpy=path(), error=einopt.errors.IncompletePathError),
    Bad("path step too many", ("ij,jk,kl", A, B, C), {"optimize": [(0, 1), (0, 1), (0, 1)]},
        mentions=("entry 2",), numpy=path((0, 1), (0, 1), (0, 1))),
    Bad("path float position", ("ij,jk,kl", A, B, C), {"optimize": [(0.5, 1), (0, 1)]},
        mentions=("entry 0", "0.5", "float"), numpy=path((0.5, 1), (0, 1))),
    Bad("path text position", ("ij,jk,kl", A, B, C), {"optimize": [("a", 1), (0, 1)]},
        mentions=("entry 0", "'a'"), numpy=path(("a", 1), (0, 1))),
    Bad("path of ints, not tuples", ("ij,jk,kl", A, B, C), {"optimize": [0, 1]},
        mentions=("entry 0",), numpy=path(0, 1)),
    Bad("numpy path, float position", ("ij,jk,kl", A, B, C), path((0, 1.0), (0, 1)),
        mentions=("1.0",)),
    Bad("optimize an int", ("ij,jk,kl", A, B, C), {"optimize": 5}, mentions=("int",)),
    Bad("optimize a dict", ("ij,jk,kl", A, B, C), {"optimize": {"a": 1}},
        mentions=("dict",)),
    Bad("optimize unknown name", ("ij,jk,kl", A, B, C), {"optimize": "fastest"},
        mentions=("'fastest'", "greedy")),
    Bad("optimize limit infinite", ("ij,jk,kl", A, B, C),
        {"optimize": ("greedy", math.inf)}, mentions=("inf", "finite"), numpy=None),
    Bad("optimize limit nan", ("ij,jk,kl", A, B, C), {"optimize": ("greedy", math.nan)},
        mentions=("nan",), numpy=None),
    Bad("plan for other shapes", ("ij,jk", A, B),
        {"optimize": einopt.plan("ij,jk", (2, 3), (3, 5))}, mentions=("(3, 5)", "(3, 4)"),
        numpy=None),
    Bad("contract_path float position", ("ij,jk,kl", A, B, C),
        {"optimize": [(0.5, 1), (0, 1)]}, mentions=("0.5",), fn=einopt.contract_path,
        numpy=path((0.5, 1), (0, 1))),
    Bad("contract_path text entry", ("ij,jk,kl", A, B, C), {"optimize": [("",)]},
        mentions=("''",), fn=einopt.contract_path, numpy=path(("",))),
    Bad("einsum_path float position", ("ij,jk,kl", A, B, C),
        path((0.5, 1), (0, 1)), mentions=("0.5",), fn=einopt.einsum_path),
    # ---- options ----
    Bad("memory_limit negative", ("ij,jk,kl", A, B, C), {"memory_limit": -5},
        mentions=("-5",), numpy=None),
    Bad("memory_limit text", ("ij,jk,kl", A, B, C), {"memory_limit": "a"},
        mentions=("'a'",), numpy=None),
    Bad("memory_limit infinite", ("ij,jk,kl", A, B, C), {"memory_limit": math.inf},
        mentions=("inf",), numpy=None),
    Bad("memory_limit nan", ("ij,jk,kl", A, B, C), {"memory_limit": math.nan},
        mentions=("nan",), numpy=None),
    Bad("memory_limit below the result", ("ij,jk,kl", A, B, C), {"memory_limit": 3},
        mentions=("(2, 5)",), numpy=None),
    Bad("contract memory_limit infinite", ("ij,jk,kl", A, B, C),
        {"memory_limit": math.inf}, mentions=("inf",), fn=einopt.contract, numpy=None),
    Bad("max_time negative", ("ij,jk,kl", A, B, C), {"max_time": -1}, mentions=("-1",),
        fn=einopt.plan, numpy=None),
    Bad("max_time text", ("ij,jk,kl", A, B, C), {"max_time": "1s"}, mentions=("str",),
        fn=einopt.plan, numpy=None, error=einopt.errors.PathTypeError),
    Bad("max_time infinite", ("ij,jk,kl", A, B, C), {"max_time": math.inf},
        mentions=("inf",), fn=einopt.plan, numpy=None),
    Bad("max_time nan", ("ij,jk,kl", A, B, C), {"max_time": math.nan}, mentions=("nan",),
        fn=einopt.plan, numpy=None),
    Bad("PathOptimizer max_time text", (), {"max_time": "1s"}, mentions=("str",),
        fn=einopt.PathOptimizer, numpy=None, error=einopt.errors.PathTypeError),
    Bad("minimize unknown", ("ij,jk,kl", A, B, C), {"minimize": "speed"},
        mentions=("'speed'",), fn=einopt.plan, numpy=None),
    Bad("minimize combo weight nan", ("ij,jk,kl", A, B, C), {"minimize": "combo-nan"},
        mentions=("combo-nan",), fn=einopt.plan, numpy=None),
    Bad("cache_dir not a path", ("ij,jk", A, B), {"cache_dir": 3}, mentions=("int",),
        fn=einopt.plan, numpy=None, error=einopt.errors.OptionTypeError),
    Bad("cache_dir a file", ("ij,jk", A, B), {"cache_dir": __file__},
        mentions=("not a directory",), fn=einopt.plan, numpy=None),
    Bad("dtype unknown", ("ij,jk", A, B), {"dtype": "float7"}, mentions=("float7",)),
    Bad("dtype text", ("ij,jk", A, B), {"dtype": "U3", "casting": "unsafe"},
        mentions=("<U3",)),
    Bad("dtype datetime", ("ij,jk", A, B), {"dtype": "M8[s]", "casting": "unsafe"},
        mentions=("datetime64",)),
    Bad("dtype unsafe cast", ("ij,jk", A, B), {"dtype": np.int32}, mentions=("int32",)),
    Bad("order unknown", ("ij,jk", A, B), {"order": "Z"}, mentions=("'Z'",)),
    Bad("order an int", ("ij,jk", A, B), {"order": 3}, mentions=("int",)),
    Bad("casting unknown", ("ij,jk", A, B), {"casting": "loose"}, mentions=("'loose'",)),
    Bad("casting None", ("ij,jk", A, B), {"casting": None}, mentions=("NoneType",)),
    Bad("out of wrong shape", ("ij,jk", A, B), {"out": np.empty((2, 5))},
        mentions=("(2, 5)", "(2, 4)")),
    Bad("out of wrong dtype", ("ij,jk", A, B), {"out": np.empty((2, 4), np.int32)},
        mentions=("int32", "float64")),
    Bad("out a list", ("ij,jk", A, B), {"out": [[0.0] * 4] * 2}, mentions=("list",)),
    Bad("out read-only", ("ij,jk", A, B), {"out": READ_ONLY}, mentions=("read-only",)),
]


def error_of(call: Callable[[], Any]) -> BaseException | None:
    """The exception ``call`` raises (None when it returns)."""
    try:
        call()
    except BaseException as e:  # noqa: B036 - RecursionError and the like are found too
        return e
    return None


def resolve(x: Any) -> Any:
    """An argument, with the names ``"torch"`` and ``"jax"`` turned into arrays."""
    if isinstance(x, str) and x in ("torch", "jax"):
        if not available(x):
            pytest.skip(f"{x} is not installed")
        if x == "torch":
            import torch

            return torch.ones(3, 4)
        import jax.numpy as jnp

        return jnp.ones((3, 4))
    return x


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input(case: Bad) -> None:
    """The error is an EinsumError of the expected kind, names what is wrong, and is a
    TypeError wherever numpy's is."""
    args = tuple(resolve(x) for x in case.args)
    err = error_of(lambda: case.fn(*args, **case.kwargs))
    assert err is not None, "no error raised"
    assert isinstance(err, case.error), f"{type(err).__name__}: {err}"
    msg = str(err)
    for text in case.mentions:
        assert text.lower() in msg.lower(), f"{text!r} not in {msg!r}"
    if case.numpy is not None:
        np_kwargs = case.kwargs if case.numpy is True else case.numpy
        np_err = error_of(lambda: np.einsum(*args, **np_kwargs))
        if isinstance(np_err, TypeError):
            assert isinstance(err, TypeError), f"numpy raises TypeError ({np_err}); " \
                f"einopt raises {type(err).__name__}"


# ---- hostile input drawn at random ----

FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
SHAPES = st.lists(st.lists(st.integers(0, 3), max_size=4).map(tuple), max_size=4)


@FUZZ
@given(st.text(st.sampled_from("ijkaB.,->- α1!\t"), max_size=14), SHAPES,
       st.sampled_from(["auto", "greedy", False, [(0, 1)], [(1, 0), (0, 1)],
                        ("greedy", 4)]))
def test_hostile_subscripts(subscripts: str, shapes: list[tuple[int, ...]],
                            optimize: Any) -> None:
    """Any text and shapes: an EinsumError, or numpy's result where numpy has one."""
    ops = [np.arange(math.prod(s), dtype=float).reshape(s) for s in shapes]
    try:
        got = einopt.einsum(subscripts, *ops, optimize=optimize)
    except einopt.EinsumError:
        return
    try:
        expected = np.einsum(subscripts, *ops)
    except Exception:  # einopt reads more than numpy (Unicode, names)
        return
    np.testing.assert_allclose(got, expected)


PATH_ITEMS = st.one_of(st.integers(-2, 4), st.floats(-1, 3), st.text(max_size=1),
                       st.none(), st.just(...))
PATHS = st.recursive(PATH_ITEMS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.lists(inner, max_size=4).map(tuple)), max_leaves=8)


@FUZZ
@given(PATHS)
def test_hostile_paths(optimize: Any) -> None:
    """Any nesting of lists, tuples and scalars as ``optimize``: a path that works, or
    an EinsumError, from every function that takes a path."""
    for fn in (einopt.einsum, einopt.plan, einopt.contract, einopt.contract_path,
               einopt.einsum_path):
        err = error_of(lambda: fn("ij,jk,kl", A, B, C, optimize=optimize))  # noqa: B023
        assert err is None or isinstance(err, einopt.EinsumError), \
            f"{fn.__name__}: {type(err).__name__}: {err}"


@FUZZ
@given(st.lists(st.tuples(st.lists(st.integers(1, 3), max_size=3), st.lists(
    st.one_of(st.integers(-2, 60), st.just(...), st.text(max_size=1), st.none(),
              st.lists(st.integers(0, 2), max_size=2)), max_size=4)), max_size=3),
       st.one_of(st.none(), st.integers(), st.text(max_size=2),
                 st.lists(st.integers(0, 3), max_size=3)))
def test_hostile_sublists(pairs: list[tuple[list[int], list[Any]]], output: Any) -> None:
    """Any operands and label lists in the sublist form: a result or an EinsumError."""
    args: list[Any] = []
    for shape, labels in pairs:
        args += [np.ones(shape), labels]
    if output is not None:
        args.append(output)
    err = error_of(lambda: einopt.einsum(*args))
    assert err is None or isinstance(err, einopt.EinsumError), f"{type(err).__name__}: {err}"


# ---- backends' own malformed input ----

TORCH = pytest.mark.skipif(not available("torch"), reason="torch is not installed")


@TORCH
@pytest.mark.parametrize("make_out, mentions", [
    (lambda t: t.zeros((2, 4), dtype=t.int32), ("int32", "float32")),
    (lambda t: t.zeros((2, 5)), ("(2, 5)",)),
    (lambda t: t.zeros((2, 4), requires_grad=True), ("requires grad",)),
    (lambda t: np.zeros((2, 4), np.float32), ("torch tensor",)),
], ids=["dtype", "shape", "leaf requiring grad", "numpy out"])
def test_torch_bad_out(make_out: Callable[[Any], Any], mentions: tuple[str, ...]) -> None:
    import torch

    err = error_of(lambda: einopt.einsum("ij,jk", torch.ones(2, 3), torch.ones(3, 4),
                                         out=make_out(torch)))
    assert isinstance(err, einopt.EinsumError), f"{type(err).__name__}: {err}"
    assert all(m in str(err) for m in mentions), str(err)


@pytest.mark.skipif(not available("jax"), reason="jax is not installed")
def test_jax_out_is_refused() -> None:
    import jax.numpy as jnp

    x = jnp.ones((3, 3))
    with pytest.raises(einopt.EinsumError, match="immutable"):
        einopt.einsum("ij,jk", x, x, out=x)


def test_bytes_subscripts_read_as_numpy_reads_them() -> None:
    """Subscripts as bytes are text (numpy decodes them), not the sublist form."""
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(einopt.einsum(b"ij,kj->ik", x, x),
                                  np.einsum(b"ij,kj->ik", x, x))
    assert einopt.plan(b"ij,jk", (2, 3), (3, 4)).output_shape == (2, 4)


# ---- large but well-formed: flops past 64 bits ----


def dense_network(tensors: int = 10, per_tensor: int = 6, size: int = 2**10
                  ) -> tuple[str, list[tuple[int, ...]]]:
    """``tensors`` tensors of ``per_tensor`` indices each, every one of the
    ``tensors * per_tensor / 2`` indices (non-ASCII letters) shared by two of them."""
    rng = np.random.default_rng(1)
    count = tensors * per_tensor // 2
    slots = rng.permutation(np.repeat(np.arange(count), 2))
    label = [chr(0x3B1 + k) if k < 25 else chr(0x410 + k) for k in range(count)]
    terms = ["".join(label[i] for i in slots[per_tensor * t:per_tensor * (t + 1)])
             for t in range(tensors)]
    return ",".join(terms) + "->", [(size,) * len(t) for t in terms]


@pytest.mark.parametrize("optimize", ["auto", "greedy", "optimal", False])
def test_flops_past_64_bits_plan_and_print(optimize: Any) -> None:
    """30 indices of size 2**10: planning gives exact integer costs far past 2**64, and
    the plan prints, explains, writes its code and its JSON."""
    eq, shapes = dense_network()
    p = einopt.plan(eq, *shapes, optimize=optimize)
    assert isinstance(p.flops, int) and p.flops > 2**64
    assert isinstance(p.max_size, int) and p.max_size > 2**63
    assert p.speedup > 0 and math.isfinite(p.speedup)
    for text in (str(p), repr(p), p.explain(), p.code()):
        assert text
    assert einopt.Plan.from_json(p.to_json()).path == p.path


SLICED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # no allocation may be huge
sys.path.insert(0, sys.argv[1])
import einopt
from test_malformed import dense_network
eq, shapes = dense_network()
p = einopt.plan(eq, *shapes, memory_limit=2**20)
assert p.sliced and p.num_slices > 2**64 and str(p)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="address-space limits need POSIX")
def test_flops_past_64_bits_sliced() -> None:
    """Slicing such a network under a memory limit works with the same exact integers
    and allocates nothing of the network's size (run under a 4 GiB address space)."""
    done = subprocess.run([sys.executable, "-c", SLICED, os.path.dirname(__file__)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_flops_past_64_bits_reported() -> None:
    """The opt_einsum and numpy path reports of such a network, and of huge (broadcast)
    operands, work with the same exact integers."""
    eq, shapes = dense_network()
    _, info = einopt.contract_path(eq, *shapes, shapes=True)
    assert info.opt_cost > 2**64 and str(info)
    x = np.broadcast_to(np.ones(()), (2**20, 2**20))
    path, report = einopt.einsum_path("ab,bc,ca->", x, x, x)
    assert path[0] == "einsum_path" and "e+" in report


# ---- large but well-formed: 10,000 tensors ----

CHAIN = 10_000


@pytest.fixture(scope="module")
def chain() -> tuple[list[np.ndarray], np.ndarray]:
    """A chain of 10,000 2x2 matrices, and their product."""
    rng = np.random.default_rng(7)
    mats = [np.eye(2) + 0.01 * rng.standard_normal((2, 2)) for _ in range(CHAIN)]
    product = np.eye(2)
    for m in mats:
        product = product @ m
    return mats, product


def chain_args(mats: list[np.ndarray], form: str) -> list[Any]:
    """The chain's einsum arguments in the sublist form, with one non-ASCII letter an
    index, or in names."""
    n = len(mats)
    if form == "sublist":
        args: list[Any] = []
        for k, m in enumerate(mats):
            args += [m, [k, k + 1]]
        return [*args, [0, n]]
    if form == "letters":
        sym = [chr(0x4E00 + k) for k in range(n + 1)]  # CJK ideographs
        return [",".join(sym[k] + sym[k + 1] for k in range(n)) + "->" + sym[0] + sym[n],
                *mats]
    return [", ".join(f"i{k} i{k + 1}" for k in range(n)) + f" -> i0 i{n}", *mats]


@pytest.mark.parametrize("form", ["sublist", "letters", "names"])
def test_ten_thousand_tensors_evaluate(chain: tuple[list[np.ndarray], np.ndarray],
                                       form: str) -> None:
    """A 10,000-tensor chain plans and evaluates in every spelling (no recursion limit
    is reached)."""
    mats, product = chain
    got = einopt.einsum(*chain_args(mats, form))
    np.testing.assert_allclose(got, product, rtol=1e-9)


def test_ten_thousand_tensors_left_deep(chain: tuple[list[np.ndarray], np.ndarray]) -> None:
    """The left-to-right plan of the chain, a tree 10,000 deep, runs, prints, writes
    its code and its JSON."""
    mats, product = chain
    args = chain_args(mats, "sublist")
    p = einopt.plan(*args, optimize=False)
    np.testing.assert_allclose(p(*mats), product, rtol=1e-9)
    for text in (str(p), p.code()):
        assert text
    assert einopt.Plan.from_json(p.to_json()).path == p.path
