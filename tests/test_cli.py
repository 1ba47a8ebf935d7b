"""The einopt command line: exit codes, JSON output, error messages."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from einopt.cli import main

GRAD_NORM = ["ni,ni,nj,nj->n", "-s", "n=256,i=1024,j=1024"]


def test_explain_prints_the_trick_without_einsum(capsys):
    assert main(["explain", *GRAD_NORM]) == 0
    out = capsys.readouterr().out
    assert "(op0 * op1).sum(1)" in out and "(op2 * op3).sum(1)" in out
    assert "einsum(" not in out.split("def contraction")[1]
    speedup = float(out.split("speedup: ")[1].split("x")[0])
    assert 1000 <= speedup <= 2000


def test_explain_names_and_torch(capsys):
    assert main(["explain", *GRAD_NORM, "--names", "B,B,A,A", "--backend", "torch"]) == 0
    out = capsys.readouterr().out
    assert "Σ_i B[n,i]² · Σ_j A[n,j]²" in out
    assert "import torch" in out and "(B * B).sum(1)" in out


def test_plan_json_schema(capsys):
    assert main(["plan", "ab,bc,cd->ad", "-s", "a=2,b=30,c=30,d=2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"equation", "shapes", "path", "flops", "naive_flops", "speedup",
                         "max_size", "sliced", "slicing_overhead"}
    assert data["shapes"] == [[2, 30], [30, 30], [30, 2]]
    assert len(data["path"]) == 2 and data["flops"] > 0


def test_plan_table_and_options(capsys):
    assert main(["plan", "ab,bc,cd->ad", "-s", "a=8,b=8,c=8,d=8", "--optimize", "hyper",
                 "--max-time", "0.2", "--seed", "1", "--memory-limit", "100"]) == 0
    assert "sliced" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["plan", "ij,jk->ik", "-s", "i=3,j=4"], "no size for index 'k'"),
    (["plan", "ij,jk->ik", "-s", "i=3,j"], "bad size"),
    (["plan", "ij,jk->iq", "-s", "i=3,j=4,k=5,q=2"], "q"),
    (["plan", "...i->i", "-s", "i=3"], "'...'"),
    (["plan", "ij->i", "-s", "i=3,j=4", "--optimize", "nope"], "nope"),
])
def test_bad_input_exits_2_with_a_message(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("einopt: error:") and message in err


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as e:
        main(["plan"])
    assert e.value.code == 2


def test_draw_writes_files(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("networkx")
    for kind in ("factor", "index", "tree"):
        out = tmp_path / f"{kind}.svg"
        assert main(["draw", "abcd,def->", "-s", "a=2,b=3,c=4,d=5,e=6,f=7", "-o", str(out),
                     "--kind", kind]) == 0
        assert out.read_text().lstrip().startswith("<?xml")


def test_bench_runs(capsys):
    assert main(["bench", "ij,jk->ik", "-s", "i=20,j=20,k=20", "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert "einopt" in out and "numpy.einsum" in out


def test_module_and_help():
    out = subprocess.run([sys.executable, "-m", "einopt", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "einopt explain" in out and "plan" in out


def test_plan_with_worker_processes_in_a_fresh_process():
    """``--parallel`` from ``python -m einopt``: the workers start (forkserver or spawn
    import the main module; the command must not run again in them) and the plan prints."""
    letters = "abcdefghijklmnopq"
    ring = ",".join(letters[k] + letters[(k + 1) % 16] for k in range(16)) + "->"
    sizes = ",".join(f"{c}={2 + k % 3}" for k, c in enumerate(letters[:16]))
    done = subprocess.run([sys.executable, "-m", "einopt", "plan", ring, "-s", sizes,
                           "--optimize", "hyper", "--max-time", "1", "--parallel", "2",
                           "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert len(data["path"]) == 15 and data["flops"] > 0
