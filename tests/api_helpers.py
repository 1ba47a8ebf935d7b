"""Helpers shared by the public-API tests."""

from __future__ import annotations

import numpy as np

from cases import (
    CASES,
    Case,
    split_text,
)

OPTIMIZERS = ("auto", "optimal", "greedy")
OTHER_DTYPES = (np.float32, np.complex128, np.int64, np.int8, np.bool_)

MULTI = [c for c in CASES if c.nops >= 2]
MULTI_IDS = [c.label for c in MULTI]


def _seed(case: Case) -> int:
    return sum(ord(ch) for ch in case.label) % 1000


def _is_ellipsis(lab) -> bool:
    return lab == "..." or lab is Ellipsis


def index_sizes(case: Case) -> tuple[dict, tuple[int, ...]]:
    """Size of every label (size-1 broadcasting applied) and the broadcast ellipsis shape."""
    inputs, _ = split_text(case.eq)
    per_label: dict = {}
    ell_shapes = []
    for term, shape in zip(inputs, case.shapes, strict=False):
        if any(_is_ellipsis(lab) for lab in term):
            k = [i for i, lab in enumerate(term) if _is_ellipsis(lab)][0]
            n_after = len(term) - k - 1
            n_ell = len(shape) - (len(term) - 1)
            ell_shapes.append(tuple(shape[k : k + n_ell]))
            dims = list(zip(term[:k], shape[:k], strict=False)) + list(
                zip(term[k + 1 :], shape[len(shape) - n_after :], strict=False)
            )
        else:
            dims = list(zip(term, shape, strict=False))
        for lab, d in dims:
            per_label.setdefault(lab, []).append(d)
    sizes = {lab: np.broadcast_shapes(*[(d,) for d in ds])[0] for lab, ds in per_label.items()}
    ell = np.broadcast_shapes(*ell_shapes) if ell_shapes else ()
    return sizes, tuple(ell)


def has_broadcasting(case: Case) -> bool:
    """Whether some ordinary label has different sizes across operands."""
    inputs, _ = split_text(case.eq)
    seen: dict = {}
    for term, shape in zip(inputs, case.shapes, strict=False):
        if any(_is_ellipsis(lab) for lab in term):
            continue
        for lab, d in zip(term, shape, strict=False):
            if seen.setdefault(lab, d) != d:
                return True
    return False


def assert_valid_path(path, nops: int, *, pairwise: bool) -> None:
    path = list(path)
    remaining = nops
    for step in path:
        step = tuple(step)
        assert len(step) >= 1
        assert len(set(step)) == len(step), f"repeated position in step {step}"
        assert all(isinstance(i, (int, np.integer)) for i in step)
        assert all(0 <= i < remaining for i in step), f"step {step} out of range ({remaining})"
        if pairwise:
            assert len(step) == 2, f"step {step} is not pairwise"
        remaining = remaining - len(step) + 1
    assert remaining == 1, f"path {path} leaves {remaining} operands"
    if pairwise:
        assert len(path) == nops - 1


def to_sublist(eq: str, operands) -> list:
    """The sublist-form arguments for a text equation (labels renamed to ints in order)."""
    inputs, output = split_text(eq)
    labels = sorted({lab for t in inputs for lab in t if not _is_ellipsis(lab)})
    num = {lab: i for i, lab in enumerate(labels)}

    def conv(term):
        return [Ellipsis if _is_ellipsis(lab) else num[lab] for lab in term]

    args: list = []
    for op, term in zip(operands, inputs, strict=False):
        args += [op, conv(term)]
    if output is not None:
        args.append(conv(output))
    return args


def race_with_clear(threads, pause: float = 0.0) -> None:
    """Run ``threads`` to the end while another thread empties every cache of einopt over
    and over (every ``pause`` seconds), so they read caches being emptied under them."""
    import threading

    import einopt

    stop = threading.Event()

    def clear() -> None:
        while not stop.wait(pause):
            einopt.clear_caches()

    cleaner = threading.Thread(target=clear)
    cleaner.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    cleaner.join()
