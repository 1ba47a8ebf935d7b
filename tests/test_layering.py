"""Each stage imports only the stages to its left, and importing einopt loads no extras."""

import subprocess
import sys

import pytest

STAGES = [
    "einopt.errors",
    "einopt.parse",
    "einopt.network",
    "einopt.structured",
    "einopt.cost",
    "einopt.tree",
    "einopt.optimize",
    "einopt.plan",
    "einopt.backends",
    "einopt.views",
    "einopt.native",
    "einopt.execute",
    "einopt.parallel",
    "einopt.schedule",
    "einopt.api",
]
EXTRAS = ["torch", "jax", "matplotlib", "dask", "cupy", "networkx", "opt_einsum", "cotengra"]


@pytest.mark.parametrize("k", range(len(STAGES)))
def test_stage_imports_nothing_downstream(k):
    stage = STAGES[k]
    later = STAGES[k + 1 :] + ["einopt.compat", "einopt.codegen", "einopt.report", "einopt.persist",
                               "einopt.nn", "einopt.autodiff", "einopt.quantities",
                               "einopt.torch", "einopt.graphs", "einopt.viz", "einopt.cli"]
    code = (
        # Import the stage without running the package's __init__ (which loads them all).
        "import importlib.util, sys, types\n"
        "spec = importlib.util.find_spec('einopt')\n"
        "pkg = types.ModuleType('einopt')\n"
        "pkg.__path__ = list(spec.submodule_search_locations)\n"
        "sys.modules['einopt'] = pkg\n"
        f"import {stage}\n"
        f"bad = [m for m in {later + EXTRAS!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{stage} imports {out.stdout.strip()}"


def test_import_einopt_loads_no_optional_library():
    code = f"import sys, einopt\nprint(','.join(m for m in {EXTRAS!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
