"""Every example script runs and asserts its claim (one per part of the talk)."""

import pathlib
import runpy
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).parent.parent / "examples").glob("*.py"))
TALK = {"einsum_semantics", "matmul", "convolution", "factored_convolutions",
        "linear_network_jacobians", "hessian_extra_index", "distributive_law", "gradients",
        "grad_norms", "conv_quantities", "graphical_views"}


def test_every_part_of_the_talk_has_an_example():
    assert TALK <= {p.stem for p in EXAMPLES}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(path), str(tmp_path)])  # figures go to tmp_path
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out
