"""The package imports one way: each stage only from earlier stages, with no cycles.

The checks parse the source with `ast`, so they see every import statement, also those
inside functions, under `if TYPE_CHECKING:` and in try/except.
"""

import ast
import functools
import importlib.util
import os
import subprocess
import sys
from collections import defaultdict, namedtuple
from pathlib import Path

import pytest

STAGES = [  # earliest first; the package root, einopt/__init__.py, comes last and imports anything
    ("errors", "caches", "parse"),
    ("network",),
    ("cost", "tree"),
    ("structured",),
    ("optimize",),
    ("plan",),
    ("backends",),
    ("run",),  # execute, views, native, parallel, schedule
    ("codegen", "report", "graphs", "viz"),  # readers of a plan
    ("api",),
    ("compat", "autodiff", "quantities", "torch", "nn", "cli", "__main__"),  # users of the api
]
EXTRAS = ["torch", "jax", "matplotlib", "dask", "cupy", "networkx", "opt_einsum", "cotengra"]
REPO = Path(__file__).resolve().parents[1]

Import = namedtuple("Import", "where importer module name")  # name is None for a module import


def package_dir() -> Path:
    """The directory of the einopt package that `import einopt` loads."""
    [location] = importlib.util.find_spec("einopt").submodule_search_locations
    return Path(location)


def package_sources() -> dict:
    """Module name -> (source text, is_package) for every .py file in the package."""
    root, sources = package_dir(), {}
    for path in sorted(root.rglob("*.py")):
        parts = ["einopt", *path.relative_to(root).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        sources[name] = (path.read_text("utf-8"), is_package)
    return sources


def imports_of(importer, source, is_package, modules, label) -> list:
    """Every einopt import in `source`, however nested, resolved to absolute module names."""
    found = []
    for node in ast.walk(ast.parse(source)):
        where = f"{label}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [Import(where, importer, alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module
            if node.level:  # relative to the package itself in an __init__, else to the parent
                package = importer.split(".")[: None if is_package else -1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([node.module] if node.module else []))
            for alias in node.names:  # from pkg import name: the module pkg.name if there is one
                sub = f"{base}.{alias.name}"
                found.append(Import(where, importer, *(
                    (sub, None) if sub in modules else (base, alias.name))))
    found = [i for i in found if f"{i.module}.".startswith("einopt.")]
    return sorted(found, key=lambda i: int(i.where.rpartition(":")[2]))


def collect_imports(sources) -> list:
    """The einopt imports of every module in `sources` (module name -> (source, is_package))."""
    return [i for name, (source, is_package) in sorted(sources.items())
            for i in imports_of(name, source, is_package, set(sources),
                                name.replace(".", "/") + ("/__init__.py" if is_package else ".py"))]


def stage_of(module):
    """Index of the module's stage in STAGES (len(STAGES) for the root), or None if unplaced."""
    if module == "einopt":
        return len(STAGES)
    return next((k for k, names in enumerate(STAGES) if module.split(".")[1] in names), None)


def unplaced_modules(sources, imports) -> list:
    """Modules, present or imported, whose top-level name is in no stage."""
    return sorted({m for m in [*sources, *(i.module for i in imports)] if stage_of(m) is None})


def upward_imports(imports) -> list:
    """'file:line importer -> imported (stage a -> stage b)' for each import of a later stage."""
    def stage(m):
        return f"stage {stage_of(m)} {m.split('.')[1] if '.' in m else '__init__'}"
    return list(dict.fromkeys(  # `from x import a, b` is one line
        f"{i.where} {i.importer} -> {i.module} ({stage(i.importer)} -> {stage(i.module)})"
        for i in imports if None not in (stage_of(i.importer), stage_of(i.module))
        and stage_of(i.module) > stage_of(i.importer)))


def import_cycles(imports) -> list:
    """Each group of modules that reach each other (Tarjan), with its shortest cycle as a chain."""
    graph = defaultdict(set)
    for i in imports:
        if i.module != i.importer:
            graph[i.importer].add(i.module)
    index, low, stack, lines = {}, {}, [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
            if w in stack:
                low[v] = min(low[v], low[w])
        if low[v] == index[v]:
            group = sorted(stack[stack.index(v):])
            del stack[stack.index(v):]
            paths, queue = {}, [group[0]]  # breadth first from the group's first module back to it
            while len(group) > 1 and group[0] not in paths:
                u = queue.pop(0)
                for w in sorted(graph[u] & set(group) - set(paths)):
                    paths[w] = paths.get(u, [u]) + [w]
                    queue.append(w)
            if len(group) > 1:
                lines.append(f"{len(group)} modules {group}, e.g. {' -> '.join(paths[group[0]])}")

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return lines


def is_private(name) -> bool:
    """A _single or __double underscore name, but not a __dunder__ one."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports(imports) -> list:
    """Imports of another module's private name, or of a private module from outside its package."""
    def bad(i):
        path = i.module.split(".")
        return any(is_private(p) and not f"{i.importer}.".startswith(".".join(path[:k]) + ".")
                   for k, p in enumerate(path)) or (
            i.name and is_private(i.name) and i.importer != i.module)
    return [f"{i.where} {i.importer} imports {i.module}" + (f".{i.name}" if i.name else "")
            for i in imports if bad(i)]


@functools.cache
def package():
    """The installed package's sources and imports, read once for all tests."""
    sources = package_sources()
    return sources, collect_imports(sources)


def report(problems, what):
    assert not problems, f"{what}:\n" + "\n".join(problems)


def test_every_module_has_a_stage():
    """A new module fails here until it is placed in STAGES, so the layering stays deliberate."""
    report(unplaced_modules(*package()), "place these modules in STAGES")


def test_no_module_imports_a_later_stage():
    """Each stage builds only on earlier ones, so it can be read and tested without them."""
    report(upward_imports(package()[1]), "imports of a later stage")


def test_no_import_cycle():
    """Within a stage too, modules import one way: in a cycle, import order starts to matter."""
    report(import_cycles(package()[1]), "import cycles")


def test_no_private_name_crosses_modules():
    """An underscore name is its own module's business; other modules use public names."""
    report(private_imports(package()[1]), "private names imported")


@pytest.mark.parametrize("folder", ["examples", "benchmarks"])
def test_scripts_import_only_public_names(folder):
    """Examples and benchmarks show how users call einopt, so they use no private names."""
    if not (REPO / folder).is_dir():
        pytest.skip(f"no {folder}/ folder")
    imports = [i for path in sorted((REPO / folder).glob("*.py"))
               for i in imports_of(f"{folder}.{path.stem}", path.read_text("utf-8"), False,
                                   set(package()[0]), f"{folder}/{path.name}")]
    report(private_imports(imports), "private names imported")


def test_checker_finds_planted_problems():
    """The checks can fail: planted upward, circular, private and unplaced imports are found."""
    sources = {
        "einopt": ("from . import api\nfrom .api import einsum\n", True),
        "einopt.api": ("from .plan import Plan\n_parse = einsum = None\n", False),
        "einopt.plan": ("from typing import TYPE_CHECKING\n"
                        "if TYPE_CHECKING:\n    from .api import einsum\n", False),
        "einopt.run": ("from . import execute, _pool\n", True),
        "einopt.run._pool": ("", False),
        "einopt.run.execute": ("def f():\n    try:\n        from ..api import _parse\n"
                               "    except ImportError:\n        pass\n", False),
        "einopt.codegen": ("from .run.execute import f\nimport einopt.run._pool\n", False),
        "einopt.mystery": ("import einopt.errors\n", False),
    }
    imports = collect_imports(sources)
    assert {(i.importer, i.module) for i in imports} == {
        ("einopt", "einopt.api"), ("einopt.api", "einopt.plan"), ("einopt.plan", "einopt.api"),
        ("einopt.run", "einopt.run.execute"), ("einopt.run", "einopt.run._pool"),
        ("einopt.run.execute", "einopt.api"), ("einopt.codegen", "einopt.run.execute"),
        ("einopt.codegen", "einopt.run._pool"), ("einopt.mystery", "einopt.errors")}
    assert unplaced_modules(sources, imports) == ["einopt.mystery"]
    assert upward_imports(imports) == [
        "einopt/plan.py:3 einopt.plan -> einopt.api (stage 5 plan -> stage 9 api)",
        "einopt/run/execute.py:3 einopt.run.execute -> einopt.api (stage 7 run -> stage 9 api)"]
    assert import_cycles(imports) == [
        "2 modules ['einopt.api', 'einopt.plan'], e.g. einopt.api -> einopt.plan -> einopt.api"]
    assert private_imports(imports) == [
        "einopt/codegen.py:2 einopt.codegen imports einopt.run._pool",
        "einopt/run/execute.py:3 einopt.run.execute imports einopt.api._parse"]
    script = "from einopt.api import _parse, __doc__\nfrom einopt import api\nimport einopt.api._x"
    script_imports = imports_of("examples.demo", script, False, set(sources), "examples/demo.py")
    assert private_imports(script_imports) == [
        "examples/demo.py:1 examples.demo imports einopt.api._parse",
        "examples/demo.py:3 examples.demo imports einopt.api._x"]


def test_import_einopt_loads_no_optional_library():
    """The extras are imported on first use, so a plain `import einopt` stays light."""
    code = f"import sys, einopt\nprint(','.join(m for m in {EXTRAS!r} if m in sys.modules))"
    path = [str(package_dir().parent), os.environ.get("PYTHONPATH", "")]  # the package seen here
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.strip() == ""
