"""Docstring examples run as doctests."""

import doctest
import importlib
import os
import pathlib
import subprocess
import sys

import pytest

import einopt.api.calls
import einopt.api.planning
import einopt.autodiff
import einopt.run.sharing
import einopt.structured.operands
import einopt.torch.tracker

# compat's functions live in its submodule (the package's name ``contract`` is the function)
MODULES = [einopt.api.calls, einopt.api.planning, einopt.autodiff,
           importlib.import_module("einopt.compat.contract"),
           importlib.import_module("einopt.compat.expression"),
           einopt.run.sharing, einopt.structured.operands, einopt.torch.tracker]


@pytest.mark.parametrize("module", MODULES, ids=[m.__name__ for m in MODULES])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_docs_site_builds(tmp_path):
    """The mkdocs site (tutorial, optimizer pages, API reference from docstrings) builds
    with no warnings."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    root = pathlib.Path(__file__).parent.parent
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d",
                    str(tmp_path / "site")], cwd=root, check=True, capture_output=True,
                   env=env)
    assert (tmp_path / "site" / "index.html").exists()
