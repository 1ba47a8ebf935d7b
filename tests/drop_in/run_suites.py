"""Run numpy's and opt_einsum's shipped einsum test suites through einopt.

    python tests/drop_in/run_suites.py            # both suites, a summary line each
    python tests/drop_in/run_suites.py numpy -v   # one suite, pytest's own options after it

Each suite runs in its own pytest process with the ``einopt_drop_in`` plugin, from a
temporary directory (so this project's pytest configuration does not apply).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUITES = {
    "numpy": ["numpy._core.tests.test_einsum"],
    "opt_einsum": ["opt_einsum.tests.test_contract", "opt_einsum.tests.test_input",
                   "opt_einsum.tests.test_edge_cases"],
}


def run_suite(name: str, extra: list[str] | None = None) -> tuple[int, int, str]:
    """(passed, failed + errors, pytest's output) of suite ``name`` routed through einopt."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "einopt_drop_in", "-p",
               "no:cacheprovider", "-o", "addopts=", "--rootdir", tmp, "--pyargs",
               *SUITES[name], *(extra or [])]
        out = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
    text = out.stdout + out.stderr
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|error|errors)", text)}
    return counts.get("passed", 0), counts.get("failed", 0) + counts.get("error", 0) + \
        counts.get("errors", 0), text


def main(argv: list[str]) -> int:
    names = [a for a in argv if a in SUITES] or list(SUITES)
    extra = [a for a in argv if a not in SUITES]
    bad = 0
    for name in names:
        passed, failed, text = run_suite(name, extra)
        if extra:
            print(text)
        print(f"{name}: {passed} passed, {failed} failed, of {passed + failed}")
        bad += failed
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
