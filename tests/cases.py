"""Shared corpus of einsum problems and helpers used by several test modules.

Every entry is a text equation together with the operand shapes. The corpus is
compared against ``numpy.einsum(..., optimize=False)``; :func:`numpy_einsum` makes
that reference work for equations numpy cannot spell itself (Unicode letters,
multi-character names, arbitrary sublist labels) by renaming labels to ASCII
letters in an order-preserving way.
"""

from __future__ import annotations

import string
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

# Labels that are not letters have no numpy order: use the library's convention.
from einopt.parse import sort_labels

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Case:
    """One einsum problem: equation text, operand shapes and a short id."""

    eq: str
    shapes: tuple[Shape, ...]
    id: str = ""
    tags: frozenset[str] = field(default_factory=frozenset)

    @property
    def nops(self) -> int:
        return len(self.shapes)

    @property
    def label(self) -> str:
        return self.id or f"{self.eq}|{'x'.join(str(s) for s in self.shapes)}"


def _c(eq: str, *shapes: Shape, id: str = "", tags: str = "") -> Case:
    return Case(eq, tuple(tuple(s) for s in shapes), id, frozenset(tags.split()))


# Sizes used by several network-style entries.
_A, _B, _C, _D, _E = 2, 3, 4, 5, 2

CASES: list[Case] = [
    # ---- matrix chains and classic pairwise contractions ------------------------------
    _c("ab,bc->ac", (3, 4), (4, 5), id="matmul"),
    _c("ab,bc,cd->ad", (2, 3), (3, 4), (4, 5), id="chain3"),
    _c("ab,bc,cd,de->ae", (2, 3), (3, 4), (4, 5), (5, 2), id="chain4"),
    _c("ij,jk,kl->il", (4, 2), (2, 5), (5, 3), id="chain3-ijkl"),
    _c(
        "ab,bc,cd,de,ef,fg,gh->ah",
        (2, 3),
        (3, 2),
        (2, 4),
        (4, 3),
        (3, 2),
        (2, 5),
        (5, 2),
        id="chain7",
    ),
    _c("ij,kl,jk->il", (3, 4), (5, 2), (4, 5), id="chain-shuffled"),
    _c("ij,j->i", (3, 4), (4,), id="matvec"),
    _c("ij,i->j", (3, 4), (3,), id="vecmat"),
    _c("i,i->", (5,), (5,), id="dot"),
    _c("i,i->i", (5,), (5,), id="vec-hadamard"),
    _c("ab,ba->", (3, 4), (4, 3), id="trace-of-product"),
    _c("ab,ba->a", (3, 4), (4, 3), id="diag-of-product"),
    _c("xy,yz,zx->", (2, 3), (3, 4), (4, 2), id="trace-ring3"),
    _c("ab,bc,cd,da->", (2, 3), (3, 4), (4, 5), (5, 2), id="trace-ring4"),
    _c("ijk,jkl->il", (2, 3, 4), (3, 4, 5), id="tensordot2"),
    _c("abcd,cdef->abef", (2, 3, 2, 3), (2, 3, 2, 2), id="tensordot-4d"),
    _c("abcd,efcd->abef", (2, 3, 2, 3), (2, 2, 2, 3), id="tensordot-4d-b"),
    _c("abc,dc,ac->bd", (2, 3, 4), (5, 4), (2, 4), id="abc-dc-ac"),
    _c("ab,bcd,cde,ef->af", (2, 3), (3, 2, 4), (2, 4, 3), (3, 2), id="mps-like"),
    _c("abc,cd,de->abe", (2, 3, 4), (4, 5), (5, 2), id="abc-cd-de"),
    _c("abc,ab->c", (2, 3, 4), (2, 3), id="abc-ab"),
    _c("abc,bc->a", (2, 3, 4), (3, 4), id="abc-bc"),
    _c("ijk,ikl,ilm->jm", (2, 3, 4), (2, 4, 3), (2, 3, 2), id="ijk-ikl-ilm"),
    _c("aef,fbc,dcf->", (2, 3, 4), (4, 2, 3), (2, 3, 4), id="triangle-ish"),
    # ---- opt_einsum style networks ------------------------------------------------------
    _c(
        "ea,fb,abcd,gc,hd->efgh",
        (2, _A),
        (3, _B),
        (_A, _B, _C, _D),
        (2, _C),
        (3, _D),
        id="ea-fb-abcd-gc-hd",
    ),
    _c(
        "abhe,hidj,jgba,hiab,gab",
        (2, 3, 2, 3),
        (2, 2, 3, 2),
        (2, 2, 3, 2),
        (2, 2, 2, 3),
        (2, 2, 3),
        id="abhe-hidj-jgba-hiab-gab",
    ),
    _c("ab,ab,c->", (3, 4), (3, 4), (5,), id="ab-ab-c"),
    _c("a,b,ab->ab", (3,), (4,), (3, 4), id="a-b-ab"),
    _c("ab,ab->ab", (3, 4), (3, 4), id="hadamard"),
    _c("ab,ab->", (3, 4), (3, 4), id="frobenius"),
    _c("ij,ij,ij->", (3, 4), (3, 4), (3, 4), id="hadamard3-sum"),
    _c("abc,abc,abc->abc", (2, 3, 4), (2, 3, 4), (2, 3, 4), id="hadamard3"),
    _c("a,a,a,a->a", (5,), (5,), (5,), (5,), id="hadamard4-vec"),
    _c("a,ab,abc->abc", (2,), (2, 3), (2, 3, 4), id="a-ab-abc"),
    _c("a,ab,bc,c->", (2,), (2, 3), (3, 4), (4,), id="a-ab-bc-c"),
    _c("i,j,k,ijk->", (2,), (3,), (4,), (2, 3, 4), id="i-j-k-ijk"),
    _c("ij,ij,jk,kl->il", (2, 3), (2, 3), (3, 4), (4, 2), id="ij-ij-jk-kl"),
    _c("ab,b->a", (3, 4), (4,), id="ab-b"),
    _c("a,b->ab", (3,), (4,), id="outer2"),
    _c("a,b,c->abc", (2,), (3,), (4,), id="outer3"),
    _c("ab,cd->abcd", (2, 3), (2, 2), id="outer-matrices"),
    _c("ab,cd,ef->abcdef", (2, 2), (2, 2), (2, 2), id="outer3-matrices"),
    _c("a,b", (3,), (4,), id="outer-implicit"),
    _c("ni,ni,nj,nj->n", (4, 3), (4, 3), (4, 5), (4, 5), id="hyper-ninj"),
    _c("ij,ik,il->i", (3, 2), (3, 4), (3, 2), id="hyper-star"),
    _c("ij,ik,il->ijkl", (2, 2), (2, 3), (2, 2), id="hyper-star-keep"),
    _c("ai,bi,ci,di,ei,fi->i", (2, 3), (2, 3), (2, 3), (2, 3), (2, 3), (2, 3), id="hyper6"),
    _c(
        "ab,ac,ad,bc,bd,cd->a",
        (3, 2),
        (3, 3),
        (3, 2),
        (2, 3),
        (2, 2),
        (3, 2),
        id="hyper6-complete",
    ),
    _c(
        "abx,bcx,cdx,dex,efx,fax->x",
        (2, 2, 3),
        (2, 2, 3),
        (2, 2, 3),
        (2, 2, 3),
        (2, 2, 3),
        (2, 2, 3),
        id="hyper6-ring",
    ),
    _c(
        "abc,bcd,cde,dea,eab->", (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), id="ring5-3"
    ),
    _c("bij,bjk->bik", (2, 3, 4), (2, 4, 5), id="batched-matmul"),
    _c("bhqd,bhkd->bhqk", (2, 2, 3, 4), (2, 2, 5, 4), id="attention-scores"),
    _c("bhqk,bhkd->bhqd", (2, 2, 3, 5), (2, 2, 5, 4), id="attention-values"),
    _c(
        "ijk,ilm,njm,nlk,abc->",
        (2, 2, 2),
        (2, 2, 2),
        (2, 2, 2),
        (2, 2, 2),
        (2, 2, 2),
        id="disconnected",
    ),
    _c("baa,dcf,af,cde->be", (2, 3, 3), (2, 4, 5), (3, 5), (4, 2, 3), id="baa-dcf-af-cde"),
    _c("fff,fae,bef,def->abd", (3, 3, 3), (3, 2, 4), (2, 4, 3), (5, 4, 3), id="fff-fae-bef-def"),
    _c("efc,dbc,acf,fd->abe", (2, 3, 4), (2, 5, 4), (3, 4, 3), (3, 2), id="efc-dbc-acf-fd"),
    _c(
        "bdik,acaj,ikab,ajac,ikbd",
        (2, 3, 2, 2),
        (2, 3, 2, 2),
        (2, 2, 2, 2),
        (2, 2, 2, 3),
        (2, 2, 2, 3),
        id="repeated-network",
    ),
    _c("aab,bc->ac", (3, 3, 4), (4, 2), id="diag-then-matmul"),
    _c("abjj,jbje->ae", (2, 3, 4, 4), (4, 3, 4, 2), id="diag-both"),
    # ---- implicit output ------------------------------------------------------------------
    _c("ab,bc", (3, 4), (4, 5), id="implicit-matmul"),
    _c("ij,jk", (3, 4), (4, 5), id="implicit-ij-jk"),
    _c("ba", (3, 4), id="implicit-transpose"),
    _c("Ba", (3, 4), id="implicit-upper-first"),
    _c("aB,Bc", (3, 4), (4, 5), id="implicit-upper-contracted"),
    _c("Zb,aZ", (3, 4), (5, 3), id="implicit-upper-order"),
    _c("i,i", (5,), (5,), id="implicit-dot"),
    _c("ii", (4, 4), id="implicit-trace"),
    _c("iij", (3, 3, 4), id="implicit-diag-sum"),
    _c("cba", (2, 3, 4), id="implicit-reverse"),
    # ---- repeated indices / diagonals -----------------------------------------------------
    _c("ii->i", (4, 4), id="diag"),
    _c("ii->", (4, 4), id="trace"),
    _c("iij->ji", (3, 3, 4), id="iij-ji"),
    _c("iji->ij", (3, 4, 3), id="iji-ij"),
    _c("iii->i", (3, 3, 3), id="iii-i"),
    _c("ijij->ij", (2, 3, 2, 3), id="ijij-ij"),
    _c("ii,i->i", (4, 4), (4,), id="diag-times-vec"),
    _c("ii,jj->ij", (3, 3), (2, 2), id="diag-outer"),
    # ---- single-operand reshuffles and reductions -----------------------------------------
    _c("i->", (5,), id="sum-vec"),
    _c("ij->", (3, 4), id="sum-all"),
    _c("ij->ji", (3, 4), id="transpose"),
    _c("ij->ij", (3, 4), id="identity"),
    _c("ij->i", (3, 4), id="row-sum"),
    _c("ijk->kji", (2, 3, 4), id="reverse-axes"),
    _c("ijk->jk", (2, 3, 4), id="sum-first"),
    # ---- scalars and 0-d ------------------------------------------------------------------
    _c(",->", (), (), id="scalar-product"),
    _c("->", (), id="scalar-identity"),
    _c("i,->i", (3,), (), id="vec-times-scalar"),
    _c(",i->i", (), (3,), id="scalar-times-vec"),
    _c(",ij->ji", (), (2, 3), id="scalar-times-matrix-T"),
    _c(",,->", (), (), (), id="three-scalars"),
    _c("...", (), id="ellipsis-0d"),
    _c("...,...", (), (3,), id="ellipsis-0d-broadcast"),
    # ---- ellipsis -------------------------------------------------------------------------
    _c("...", (2, 3), id="ellipsis-identity"),
    _c("...ij,...jk->...ik", (2, 3, 4), (2, 4, 5), id="ellipsis-batched-matmul"),
    _c("...ij,...jk", (2, 1, 3, 4), (5, 4, 2), id="ellipsis-broadcast-implicit"),
    _c("i...,i...->...", (3, 2), (3, 1), id="ellipsis-trailing"),
    _c("...i,i", (2, 3), (3,), id="ellipsis-matvec"),
    _c("ij...,jk...->ik...", (2, 3, 4), (3, 5, 1), id="ellipsis-last"),
    _c("...,...->...", (2, 1), (3,), id="ellipsis-broadcast-only"),
    _c("a...b,b...c->a...c", (2, 4, 3), (3, 4, 5), id="ellipsis-middle"),
    _c("...ii->...i", (2, 3, 3), id="ellipsis-diag"),
    _c("i...i->...", (3, 2, 3), id="ellipsis-inner-trace"),
    _c("...i->", (3,), id="ellipsis-empty-sum"),
    _c("...->...", (2, 3), id="ellipsis-explicit-identity"),
    _c("...i,...i->...", (2, 1, 3), (4, 3), id="ellipsis-batched-dot"),
    _c("...i,...j->...ij", (3, 1, 2), (1, 4, 3), id="ellipsis-batched-outer"),
    _c("...ab,...bc,...cd->...ad", (2, 3, 2), (1, 2, 4), (2, 4, 3), id="ellipsis-chain"),
    _c("i...,...->i", (2,), (), id="ellipsis-empty-both"),
    _c("...j,ji->i...", (4, 2, 3), (3, 5), id="ellipsis-output-last"),
    # ---- size-1 broadcasting on ordinary labels -------------------------------------------
    _c("ij,ij->ij", (1, 3), (2, 3), id="bcast-hadamard"),
    _c("ij,ij->ij", (2, 1), (1, 3), id="bcast-hadamard-both"),
    _c("ij,jk->ik", (2, 1), (3, 4), id="bcast-contracted"),
    _c("i,i->i", (1,), (4,), id="bcast-vec"),
    _c("i,i", (1,), (4,), id="bcast-dot"),
    _c("ab,b->ab", (3, 1), (4,), id="bcast-ab-b"),
    _c("ab,bc,cd->ad", (2, 1), (3, 4), (1, 5), id="bcast-chain"),
    # ---- zero-size dimensions -------------------------------------------------------------
    _c("ij,jk->ik", (2, 0), (0, 3), id="zero-contracted"),
    _c("ij,jk->ik", (0, 3), (3, 2), id="zero-kept"),
    _c("i->", (0,), id="zero-sum"),
    _c("ij->ji", (0, 3), id="zero-transpose"),
    _c("ii->i", (0, 0), id="zero-diag"),
    _c("...i,i->...", (0, 3), (3,), id="zero-ellipsis"),
    _c("ab,bc,cd->ad", (2, 3), (3, 0), (0, 4), id="zero-chain"),
    _c("i,i", (0,), (1,), id="zero-bcast"),
    # ---- Unicode letters ------------------------------------------------------------------
    _c("αβ,βγ->αγ", (3, 4), (4, 5), id="greek-matmul"),
    _c("αβ,βγ", (3, 4), (4, 5), id="greek-implicit"),
    _c("aα,αb->ab", (3, 4), (4, 2), id="greek-mixed"),
    _c("жз,зи,ий->жй", (2, 3), (3, 4), (4, 2), id="cyrillic-chain"),
    _c("ßß->ß", (3, 3), id="unicode-diag"),
    _c("Ωa,aΩ", (3, 4), (4, 3), id="unicode-implicit-trace"),
]

# Cases whose labels numpy itself cannot spell (checked through numpy_einsum's renaming).
assert len({c.label for c in CASES}) == len(CASES), "duplicate case ids"

CASE_IDS = [c.label for c in CASES]

FLOAT_DTYPES = (np.float64, np.float32, np.complex128)
ALL_DTYPES = (np.float64, np.float32, np.complex128, np.int64, np.int8, np.bool_)


def make_array(rng: np.random.Generator, shape: Shape, dtype=np.float64) -> np.ndarray:
    """A random array of the given shape and dtype.

    Floats are standard normal, complex numbers have normal real and imaginary parts,
    integers are small (so sums are exact or wrap the same way everywhere) and bools
    are fair coin flips.
    """
    dtype = np.dtype(dtype)
    shape = tuple(shape)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        low = 0 if dtype.kind == "u" else -3
        return rng.integers(low, 4, size=shape).astype(dtype)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def make_operands(
    shapes: Sequence[Shape], dtype=np.float64, seed: int | np.random.Generator = 0
) -> list[np.ndarray]:
    """Random operands for ``shapes`` (seeded, reproducible)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return [make_array(rng, s, dtype) for s in shapes]


# ---- reference evaluation ----

_ASCII = string.ascii_uppercase + string.ascii_lowercase  # numpy's own label order


def split_text(eq: str) -> tuple[list[list[str]], list[str] | None]:
    """Split a text equation into label lists (``...`` kept as the string '...').

    Handles the one-letter form and the whitespace-separated names form.
    """
    if "->" in eq:
        lhs, rhs = eq.split("->")
    else:
        lhs, rhs = eq, None
    terms = lhs.split(",")
    names = any(t.strip() and any(ch.isspace() for ch in t.strip()) for t in [*terms, rhs or ""])

    def parse_term(t: str) -> list[str]:
        if names:
            out: list[str] = []
            for tok in t.split():
                # an ellipsis may stick to a name in names mode only as its own token
                out.append(tok)
            return out
        t = t.strip()
        out = []
        i = 0
        while i < len(t):
            if t.startswith("...", i):
                out.append("...")
                i += 3
            else:
                out.append(t[i])
                i += 1
        return out

    return [parse_term(t) for t in terms], (None if rhs is None else parse_term(rhs))


def _implicit(inputs: Sequence[Sequence[Hashable]]) -> list[Hashable]:
    counts: dict[Hashable, int] = {}
    has_ell = False
    for term in inputs:
        for lab in term:
            if lab == "..." or lab is Ellipsis:
                has_ell = True
                continue
            counts[lab] = counts.get(lab, 0) + 1
    once = sort_labels(lab for lab, n in counts.items() if n == 1)
    return (["..."] if has_ell else []) + once


def numpy_einsum_terms(
    inputs: Sequence[Sequence[Hashable]],
    output: Sequence[Hashable] | None,
    operands: Sequence,
    **kwargs,
):
    """numpy.einsum (optimize=False) for labels of any hashable kind.

    Labels are renamed to ASCII letters in sorted order, so an implicit output keeps
    numpy's ordering. ``'...'`` or ``Ellipsis`` marks an ellipsis.
    """
    labels = sort_labels(
        {lab for term in inputs for lab in term if not (lab == "..." or lab is Ellipsis)}
    )
    if len(labels) > len(_ASCII):
        raise ValueError("too many labels for the numpy reference")
    if output is None:
        output = _implicit(inputs)
    rename = dict(zip(labels, _ASCII, strict=False))

    def term_text(term):
        return "".join("..." if (lab == "..." or lab is Ellipsis) else rename[lab] for lab in term)

    eq = ",".join(term_text(t) for t in inputs) + "->" + term_text(output)
    return np.einsum(eq, *operands, optimize=False, **kwargs)


def ascii_equation(eq: str) -> str:
    """``eq`` spelled with ASCII letters only (explicit output), for other libraries' einsum."""
    inputs, output = split_text(eq)
    labels = sort_labels(
        {lab for term in inputs for lab in term if not (lab == "..." or lab is Ellipsis)}
    )
    rename = dict(zip(labels, _ASCII, strict=False))
    if output is None:
        output = _implicit(inputs)

    def term_text(term):
        return "".join("..." if lab == "..." else rename[lab] for lab in term)

    return ",".join(term_text(t) for t in inputs) + "->" + term_text(output)


def numpy_einsum(eq: str, *operands, **kwargs):
    """numpy.einsum (optimize=False) reference for any einopt text equation."""
    inputs, output = split_text(eq)
    return numpy_einsum_terms(inputs, output, operands, **kwargs)


# ---- comparison ----

_RTOL = {
    "f": {2: 1e-2, 4: 2e-5, 8: 1e-11, 16: 1e-11},
    "c": {8: 2e-5, 16: 1e-11, 32: 1e-11},
}


def magnitude(inputs, output, operands) -> np.ndarray:
    """einsum of absolute values in float64: the scale rounding errors are relative to."""
    # widened before abs: abs(int8(-128)) wraps to -128
    abs_ops = [np.abs(np.asarray(op).astype(np.complex128)) for op in operands]
    return np.asarray(numpy_einsum_terms(inputs, output, abs_ops))


def assert_matches(got, expected, scale=None, *, check_dtype: bool = True) -> None:
    """Compare einopt's result with numpy's: shape, dtype and values.

    Integer and bool results must be exactly equal. Floating results are compared with
    a tolerance relative to ``scale`` (the einsum of absolute values), which stays
    meaningful under cancellation.
    """
    got_arr = np.asarray(got)
    exp_arr = np.asarray(expected)
    assert got_arr.shape == exp_arr.shape, f"shape {got_arr.shape} != numpy's {exp_arr.shape}"
    if check_dtype:
        assert got_arr.dtype == exp_arr.dtype, f"dtype {got_arr.dtype} != numpy's {exp_arr.dtype}"
    kind = exp_arr.dtype.kind
    if kind in "biu" or exp_arr.size == 0:
        np.testing.assert_array_equal(got_arr, exp_arr)
        return
    rtol = _RTOL.get(kind, {}).get(exp_arr.dtype.itemsize, 1e-11)
    if scale is None:
        scale = np.abs(exp_arr)
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), exp_arr.shape)
    err = np.abs(got_arr.astype(np.complex128) - exp_arr.astype(np.complex128))
    bound = rtol * (scale + np.abs(exp_arr)) + 1e-300
    bad = ~(err <= bound)
    if bad.any():
        idx = np.argwhere(bad)[:5]
        raise AssertionError(
            f"{int(bad.sum())} of {exp_arr.size} values differ beyond rtol={rtol}; "
            f"first at {idx.tolist()}: got {got_arr[tuple(idx[0])]!r}, "
            f"expected {exp_arr[tuple(idx[0])]!r}"
        )


def check_against_numpy(eq: str, operands, got, *, check_dtype: bool = True) -> None:
    """Full check of one einopt text-equation result against numpy."""
    expected = numpy_einsum(eq, *operands)
    inputs, output = split_text(eq)
    scale = magnitude(inputs, output, operands)
    assert_matches(got, expected, scale, check_dtype=check_dtype)
