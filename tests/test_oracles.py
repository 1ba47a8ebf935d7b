"""Every test module checks einopt against something that is not einopt.

A test that compares einopt with einopt (a plan with its own numpy path, a cached result
with the first one) cannot catch a bug both share. This module reads every test module's
source and counts, per module, the assertions whose expected side comes from an
independent oracle: numpy, torch, jax, opt_einsum, cotengra or scipy, arithmetic
written out in the test, or a literal. A module that computes einopt results and has no
such assertion fails here, unless it is listed in :data:`NO_NUMBERS` with the reason.

Run ``python tests/test_oracles.py`` to print the count of every module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

#: Libraries whose results are oracles (their conversions are not: see CONVERSIONS).
ORACLE_ROOTS = {"np", "numpy", "torch", "jnp", "jax", "oe", "opt_einsum", "cotengra",
                "ctg", "scipy", "math", "F", "nn", "vmap", "grad", "jacrev", "functional_call",
                "itertools", "operator", "functools"}
#: Libraries that are oracles under whatever name a module binds them to.
LIBRARIES = {"numpy", "torch", "jax", "opt_einsum", "cotengra", "cotengrust", "scipy",
             "opacus", "backpack", "networkx"}
#: Calls that move einopt's own result between libraries: never an oracle by themselves.
CONVERSIONS = {"asarray", "array", "from_numpy", "to_numpy", "to_lib", "numpy", "tensor",
               "as_tensor", "device_put", "ascontiguousarray", "float", "int", "len",
               "tuple", "list", "sorted", "str", "repr", "isinstance", "type", "clone",
               "detach", "item", "tolist", "astype", "copy", "compute", "cpu", "double",
               "to", "from_dlpack"}
#: Assertion helpers of this test suite that compare with numpy.einsum themselves.
ORACLE_HELPERS = {"check_against_numpy"}
#: The shared helper modules: their functions that compute with an oracle library (and
#: never call einopt) are oracles wherever a test module calls them.
HELPER_MODULES = ("cases.py", "api_helpers.py", "networks.py", "semirings.py",
                  "backend_libs.py")
#: Assertion calls: their last positional arguments are the expected values.
ASSERT_CALLS = {"assert_allclose", "assert_array_equal", "assert_equal", "assert_close",
                "assert_array_almost_equal", "assert_almost_equal", "assert_matches",
                "allclose", "array_equal", "equal", "isclose"}
#: Modules that compute no einopt numbers (static checks, drawing, text), with why.
NO_NUMBERS = {
    "test_layering.py": "reads the package's imports, runs no einsum",
    "test_oracles.py": "reads the test modules, runs no einsum",
    "test_docs.py": "checks the documents' text and runs their examples' own asserts",
    "test_examples.py": "runs the example scripts, each checking itself",
    "test_all.py": "checks the public names against API.md's list",
    "drop_in/test_outside_suites.py": "runs numpy's and opt_einsum's own einsum suites",
    "optimize/test_hyper_budget.py": "checks time budgets against the clock, and trees "
                                     "against opt_einsum's greedy tree (rebuilt exactly: "
                                     "optimize/test_reference.py compares the two)",
    "drop_in/einopt_drop_in.py": "a shim: numpy's and opt_einsum's own suites are the oracle",
    "drop_in/run_suites.py": "runs numpy's and opt_einsum's own suites",
}


#: Names a module imports from einopt (``from einopt.x import f``): calls of them are einopt's.
_EINOPT_NAMES: set[str] = set()
#: Names the module read binds to an oracle library.
_ALIASES: set[str] = set()
#: Functions (of the module read and of the helper modules) computing with an oracle.
_ORACLE_FUNCTIONS: set[str] = set()


def _root(node: ast.AST) -> str:
    """The leftmost name of ``a.b.c(...)``, or ``""``."""
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else ""


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _is_einopt(node: ast.AST) -> bool:
    return any(_root(n) == "einopt" or _root(n) in _EINOPT_NAMES for n in ast.walk(node)
               if isinstance(n, ast.Call | ast.Attribute))


def _independent(node: ast.AST, oracle_names: set[str], einopt_names: set[str]) -> bool:
    """True when ``node`` (an expected value) involves an oracle and no einopt call."""
    if _is_einopt(node) or any(isinstance(n, ast.Name) and n.id in einopt_names
                               for n in ast.walk(node)):
        return False
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, int | float | complex | bool):
            return True
        if isinstance(n, ast.BinOp | ast.UnaryOp):
            return True  # arithmetic written out in the test
        if isinstance(n, ast.Name) and n.id in oracle_names:
            return True
        if isinstance(n, ast.Call):
            name = _call_name(n)
            if name in CONVERSIONS:
                continue
            if name in _ORACLE_FUNCTIONS:
                return True
            if _root(n) in ORACLE_ROOTS | _ALIASES or name in ("sum", "mean", "prod", "max", "min",
                                                      "norm", "pow", "sqrt", "exp", "log",
                                                      "backward", "einsum", "matmul", "dot"):
                return True
    return False


def _functions(tree: ast.Module) -> Iterator[ast.AST]:
    yield tree
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _taint(scope: ast.AST) -> tuple[set[str], set[str]]:
    """Names assigned (in ``scope``) from oracle values and from einopt values."""
    oracle: set[str] = set()
    ours: set[str] = set()
    for _ in range(3):  # names built from names: a few rounds reach a fixed point
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
                if _is_einopt(node.value) or any(
                        isinstance(n, ast.Name) and n.id in ours for n in ast.walk(node.value)):
                    ours |= names
                elif _independent(node.value, oracle, ours):
                    oracle |= names
    return oracle, ours


def library_aliases(tree: ast.Module) -> set[str]:
    """Names ``tree`` binds to an oracle library or its parts (``import torch.nn as nn``,
    ``from opt_einsum import paths``, ``paths = pytest.importorskip("opt_einsum.paths")``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name.split(".")[0] for a in node.names
                      if a.name.split(".")[0] in LIBRARIES}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES:
            names |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                _call_name(node.value) == "importorskip" and node.value.args and \
                isinstance(node.value.args[0], ast.Constant) and \
                str(node.value.args[0].value).split(".")[0] in LIBRARIES:
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def oracle_functions(tree: ast.Module) -> set[str]:
    """Functions defined in ``tree`` whose body calls an oracle library and no einopt."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("test"):
            calls = [n for n in ast.walk(node) if isinstance(n, ast.Call)]
            if not any(_is_einopt(c) for c in calls) and any(
                    _root(c) in (ORACLE_ROOTS | _ALIASES) - {"math", "itertools", "functools",
                                                             "operator"}
                    and _call_name(c) not in CONVERSIONS for c in calls):
                found.add(node.name)
    return found


def _helper_oracles() -> set[str]:
    names: set[str] = set()
    for name in HELPER_MODULES:
        path = TESTS / name
        if path.exists():
            _EINOPT_NAMES.clear()
            names |= oracle_functions(ast.parse(path.read_text(encoding="utf-8")))
    return names


_HELPER_ORACLES = _helper_oracles()


def count_oracle_assertions(source: str) -> int:
    """Assertions of ``source`` whose expected side is independent of einopt."""
    tree = ast.parse(source)
    _EINOPT_NAMES.clear()
    _EINOPT_NAMES.update(a.asname or a.name for n in ast.walk(tree)
                         if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("einopt")
                         for a in n.names)
    _ALIASES.clear()
    _ALIASES.update(library_aliases(tree))
    _ORACLE_FUNCTIONS.clear()
    _ORACLE_FUNCTIONS.update(oracle_functions(tree), _HELPER_ORACLES)
    count = 0
    for scope in _functions(tree):
        oracle, ours = _taint(scope)
        body = scope.body if not isinstance(scope, ast.Module) else [
            n for n in scope.body if not isinstance(n, ast.FunctionDef | ast.ClassDef)]
        for stmt in body:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Call):
                    name = _call_name(node)
                    if name in ORACLE_HELPERS:
                        count += 1
                    elif name in ASSERT_CALLS and len(node.args) >= 2 and any(
                            _independent(a, oracle, ours) for a in node.args[1:]):
                        count += 1
                elif isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare):
                    sides = [node.test.left, *node.test.comparators]
                    if any(_is_einopt(s) or any(isinstance(n, ast.Name) and n.id in ours
                                                for n in ast.walk(s)) for s in sides) and \
                            any(_independent(s, oracle, ours) for s in sides):
                        count += 1
    return count


def _test_modules() -> list[Path]:
    return sorted({*TESTS.rglob("test_*.py"), *TESTS.glob("drop_in/*.py")})


MODULES = _test_modules()


def _key(path: Path) -> str:
    return path.relative_to(TESTS).as_posix()


@pytest.mark.parametrize("path", MODULES, ids=_key)
def test_module_checks_against_an_independent_oracle(path):
    key = _key(path)
    if key in NO_NUMBERS:
        pytest.skip(NO_NUMBERS[key])
    count = count_oracle_assertions(path.read_text(encoding="utf-8"))
    assert count > 0, f"{key}: no assertion compares einopt with an independent oracle"


def test_the_counter_tells_an_oracle_from_einopt_itself():
    own = ("def test_a():\n"
           "    got = einopt.einsum('ij->i', x)\n"
           "    want = einopt.plan('ij->i', x)(x)\n"
           "    np.testing.assert_allclose(got, want)\n")
    numpy = own.replace("einopt.plan('ij->i', x)(x)", "np.einsum('ij->i', x)")
    hand = own.replace("einopt.plan('ij->i', x)(x)", "x.sum(1)")
    assert count_oracle_assertions(own) == 0
    assert count_oracle_assertions(numpy) == 1
    assert count_oracle_assertions(hand) == 1
    literal = "def test_b():\n    assert einopt.plan('i->', x).flops == 3\n"
    assert count_oracle_assertions(literal) == 1
    assert count_oracle_assertions(literal.replace(" == 3", "")) == 0


def test_the_exempt_modules_exist_and_need_it():
    keys = {_key(p) for p in MODULES}
    assert set(NO_NUMBERS) <= keys
    needless = [k for k in NO_NUMBERS
                if count_oracle_assertions((TESTS / k).read_text(encoding="utf-8"))]
    assert not needless, f"exempt but checked against an oracle: {needless}"


if __name__ == "__main__":
    for p in MODULES:
        k = _key(p)
        print(f"{count_oracle_assertions(p.read_text(encoding='utf-8')):6d}  {k}"
              + (f"  (exempt: {NO_NUMBERS[k]})" if k in NO_NUMBERS else ""))
