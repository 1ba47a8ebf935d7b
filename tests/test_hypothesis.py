"""Property tests: random valid einsum problems agree with numpy.einsum."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import einopt

from cases import assert_matches, make_operands

ALPHABET = "abcdeBf"  # includes an uppercase letter: numpy sorts it first
MAX_EXAMPLES = int(os.environ.get("EINOPT_HYPOTHESIS_EXAMPLES", 2000))

SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# Order-preserving renamings used to spell the same problem in other forms.
_GREEK = {lab: ch for lab, ch in zip(sorted(ALPHABET), "ΑΒΓαβγδεζηθ", strict=False)}
_NAMES = {lab: f"{lab}{'xyz'[k % 3]}{k}" for k, lab in enumerate(sorted(ALPHABET))}


@dataclass
class Problem:
    """A random einsum: per-operand label lists ('...' for an ellipsis) and shapes.

    ``form`` says how it is spelled: numpy text, sublist, Unicode letters, or
    whitespace-separated multi-character names.
    """

    inputs: list[list[str]]
    output: list[str] | None  # None: implicit output
    shapes: list[tuple[int, ...]]
    form: str
    optimize: str
    seed: int

    def text(self, rename=None, sep: str = "") -> str:
        def term(t):
            return sep.join(lab if rename is None or lab == "..." else rename[lab] for lab in t)

        lhs = ",".join(term(t) for t in self.inputs)
        return lhs if self.output is None else lhs + "->" + term(self.output)

    def sublist_args(self, operands) -> list:
        labels = sorted({lab for t in self.inputs for lab in t if lab != "..."})
        num = {lab: i for i, lab in enumerate(labels)}

        def conv(term):
            return [Ellipsis if lab == "..." else num[lab] for lab in term]

        args: list = []
        for op, term in zip(operands, self.inputs, strict=False):
            args += [op, conv(term)]
        if self.output is not None:
            args.append(conv(self.output))
        return args

    def spelled(self) -> str:
        if self.form == "unicode":
            return self.text(_GREEK)
        if self.form == "names":
            return self.text(_NAMES, sep=" ")
        return self.text()

    def call(self, fn, operands, **kwargs):
        if self.form == "sublist":
            return fn(*self.sublist_args(operands), **kwargs)
        return fn(self.spelled(), *operands, **kwargs)

    def reference(self, operands):
        return np.einsum(self.text(), *operands, optimize=False)

    def __repr__(self) -> str:  # shown by hypothesis on failure
        return (
            f"Problem({self.text()!r}, shapes={self.shapes}, form={self.form!r} "
            f"[{self.spelled()!r}], optimize={self.optimize!r}, seed={self.seed})"
        )


@st.composite
def problems(draw, max_ops: int = 5) -> Problem:
    nops = draw(st.integers(1, max_ops))
    # mostly 2 or 3; size 1 and size 0 now and then
    size_of = (2, 3, 2, 3, 2, 3, 2, 3, 1, 0)
    sizes = {lab: size_of[draw(st.integers(0, 9))] for lab in ALPHABET}
    use_ellipsis = draw(st.booleans())
    ell_shape = (
        tuple(draw(st.lists(st.sampled_from([2, 3, 1]), min_size=0, max_size=2)))
        if use_ellipsis
        else ()
    )
    inputs: list[list[str]] = []
    shapes: list[tuple[int, ...]] = []
    for _ in range(nops):
        rank = draw(st.integers(0, 4))
        term = [ALPHABET[draw(st.integers(0, len(ALPHABET) - 1))] for _ in range(rank)]
        # per operand, a label is either full size or broadcast from size 1
        local = {
            lab: (1 if draw(st.integers(0, 5)) == 5 else sizes[lab]) for lab in dict.fromkeys(term)
        }
        dims = [local[lab] for lab in term]
        if use_ellipsis and draw(st.booleans()):
            k = draw(st.integers(0, len(ell_shape)))
            ell = [
                1 if draw(st.integers(0, 3)) == 3 else d for d in ell_shape[len(ell_shape) - k :]
            ]
            pos = draw(st.integers(0, len(term)))
            term = term[:pos] + ["..."] + term[pos:]
            dims = dims[:pos] + ell + dims[pos:]
        inputs.append(term)
        shapes.append(tuple(dims))
    has_ellipsis = any("..." in t for t in inputs)
    if draw(st.booleans()):
        output = None
    else:
        seen = sorted({lab for t in inputs for lab in t if lab != "..."})
        chosen = draw(st.lists(st.sampled_from(seen), unique=True)) if seen else []
        output = list(draw(st.permutations(chosen)))
        if has_ellipsis or draw(st.integers(0, 9)) == 9:
            pos = draw(st.integers(0, len(output)))
            output = output[:pos] + ["..."] + output[pos:]
    form = ("text", "text", "sublist", "unicode", "names")[draw(st.integers(0, 4))]
    # names need whitespace inside some term to be recognised, and no ellipsis
    if form == "names" and (has_ellipsis or not any(len(t) >= 2 for t in inputs)):
        form = "text"
    if form == "names" and output is not None and "..." in output:
        form = "text"
    optimize = draw(st.sampled_from(["auto", "greedy", "optimal"]))
    seed = draw(st.integers(0, 2**16))
    return Problem(inputs, output, shapes, form, optimize, seed)


def _scale(problem: Problem, operands):
    abs_ops = [np.abs(op) for op in operands]
    return np.asarray(problem.reference(abs_ops))


@SETTINGS
@given(problems())
def test_matches_numpy(problem):
    ops = make_operands(problem.shapes, np.float64, problem.seed)
    expected = problem.reference(ops)
    got = problem.call(einopt.einsum, ops, optimize=problem.optimize)
    assert_matches(got, expected, _scale(problem, ops))


@SETTINGS
@given(problems(max_ops=5))
def test_plan_path_roundtrip(problem):
    ops = make_operands(problem.shapes, np.float64, problem.seed)
    expected = problem.reference(ops)
    eq = problem.text() if problem.form == "sublist" else problem.spelled()
    p = einopt.plan(eq, *ops, optimize=problem.optimize)
    path = [tuple(step) for step in p.path]
    got = problem.call(einopt.einsum, ops, optimize=path)
    assert_matches(got, expected, _scale(problem, ops))
    assert_matches(p(*ops), expected, _scale(problem, ops))


def test_strategy_is_valid_for_numpy():
    """The generator itself only produces problems numpy accepts."""

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(problems())
    def check(problem):
        ops = make_operands(problem.shapes, np.float64, problem.seed)
        problem.reference(ops)

    check()
