"""Stage 1: subscripts (text or sublist form) -> :class:`Equation`.

Knows nothing of sizes or arrays. Labels are any hashables: single characters in the
numpy text form (ASCII letters, and any non-ASCII character that is not a space, as in
equations generated with opt_einsum's symbols), whitespace-separated names in the multi-character text form
(``"batch in, batch out -> batch"``), and anything hashable in the sublist form.
The ellipsis is represented by Python's ``...`` object inside a term.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import SubscriptError

__all__ = ["Equation", "Label", "parse", "parse_sublist", "sort_labels"]

Label = Hashable


@dataclass(frozen=True, slots=True)
class Equation:
    """A parsed einsum: per operand a tuple of labels, and the output labels.

    Attributes:
        inputs: one tuple of labels per operand; ``...`` marks where an ellipsis stands.
        output: the output labels in order (resolved even when the text was implicit).
        explicit: whether the output was given (``->``) rather than inferred.
    """

    inputs: tuple[tuple[Label, ...], ...]
    output: tuple[Label, ...]
    explicit: bool = True

    @property
    def nops(self) -> int:
        """Number of operands."""
        return len(self.inputs)

    def __str__(self) -> str:
        return format_equation(self.inputs, self.output)


def format_equation(inputs: Sequence[Sequence[Label]], output: Sequence[Label]) -> str:
    """Text form of an equation; names mode when some label is not a single letter."""
    terms = [*inputs, output]
    single = all(
        lab is ... or (isinstance(lab, str) and len(lab) == 1 and lab.isalpha())
        for term in terms
        for lab in term
    )
    sep = "" if single else " "

    def term_text(term: Sequence[Label]) -> str:
        return sep.join("..." if lab is ... else str(lab) for lab in term)

    return ",".join(term_text(t) for t in inputs) + "->" + term_text(output)


def _label_key(label: Label) -> tuple[int, Any]:
    if isinstance(label, bool):
        return (2, repr(label))
    if isinstance(label, int):
        return (0, label)
    if isinstance(label, str):
        return (1, label)
    return (2, repr(label))


def sort_labels(labels: Iterable[Label]) -> list[Label]:
    """Sort labels the way numpy orders an implicit output (ints, then by code point)."""
    return sorted(labels, key=_label_key)


def _implicit_output(inputs: Sequence[Sequence[Label]]) -> tuple[Label, ...]:
    counts = Counter(lab for term in inputs for lab in term if lab is not ...)
    once = sort_labels(lab for lab, c in counts.items() if c == 1)
    has_ellipsis = any(... in term for term in inputs)
    return ((...,) if has_ellipsis else ()) + tuple(once)


def _check_output(inputs: Sequence[Sequence[Label]], output: Sequence[Label]) -> None:
    seen_in = {lab for term in inputs for lab in term}
    seen: set[Label] = set()
    for lab in output:
        if lab in seen:
            name = "'...'" if lab is ... else repr(lab)
            raise SubscriptError(f"output index {name} appears more than once in the output")
        seen.add(lab)
        if lab is not ... and lab not in seen_in:
            raise SubscriptError(
                f"output index {lab!r} does not appear in any operand's subscripts"
            )


def _letters(term: str, where: str) -> tuple[Label, ...]:
    labels: list[Label] = []
    i, n = 0, len(term)
    while i < n:
        ch = term[i]
        if ch.isalpha() or (ord(ch) > 127 and not ch.isspace()):
            labels.append(ch)
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == ".":
            if term[i : i + 3] != "...":
                raise SubscriptError(f"{where} has a '.' that is not part of an ellipsis '...'")
            if ... in labels:
                raise SubscriptError(f"{where} has more than one ellipsis '...'")
            labels.append(...)
            i += 3
        else:
            raise SubscriptError(
                f"invalid character {ch!r} at position {i} in {where} subscripts {term!r}; "
                "indices must be letters (or use names separated by spaces, or the sublist form)"
            )
    return tuple(labels)


def _names(term: str, where: str) -> tuple[Label, ...]:
    labels: list[Label] = []
    for tok in term.split():
        if tok == "...":
            if ... in labels:
                raise SubscriptError(f"{where} has more than one ellipsis '...'")
            labels.append(...)
        elif "." in tok or "-" in tok or ">" in tok:
            raise SubscriptError(f"invalid index name {tok!r} in {where} subscripts {term!r}")
        else:
            labels.append(tok)
    return tuple(labels)


def parse(subscripts: str) -> Equation:
    """Parse the text form: numpy's letters, or names when a term holds inner spaces.

    Args:
        subscripts: e.g. ``"ij,jk->ik"``, ``"...ii->...i"``, ``"b i, b j -> b"``.

    Returns:
        The :class:`Equation`; an implicit output is resolved as numpy does.
    """
    if not isinstance(subscripts, str):
        raise SubscriptError(f"subscripts must be a str, got {type(subscripts).__name__}")
    if subscripts.count("->") > 1:
        raise SubscriptError(f"subscripts {subscripts!r} contain '->' more than once")
    explicit = "->" in subscripts
    lhs, _, rhs = subscripts.partition("->")
    if not explicit and (">" in lhs or "-" in lhs):
        raise SubscriptError(f"subscripts {subscripts!r} have a '-' or '>' that is not '->'")
    terms = lhs.split(",")
    names_mode = any(len(t.strip().split()) > 1 for t in [*terms, rhs])
    read = _names if names_mode else _letters
    inputs = tuple(read(t, f"operand {k}") for k, t in enumerate(terms))
    if explicit:
        output = read(rhs, "the output")
        _check_output(inputs, output)
    else:
        output = _implicit_output(inputs)
    return Equation(inputs, output, explicit)


def parse_sublist(args: Sequence[Any]) -> tuple[Equation, list[Any]]:
    """Parse numpy's sublist form ``(op0, sub0, op1, sub1, ..., [out])``.

    Labels may be any hashables (ints need not be < 52); ``...`` marks an ellipsis.

    Returns:
        The equation and the list of operands.
    """
    args = list(args)
    if not args:
        raise SubscriptError("einsum needs at least one operand")
    out_sub = args.pop() if len(args) % 2 == 1 else None
    operands = args[0::2]
    subs = args[1::2]
    inputs = tuple(_sublist(s, f"operand {k}") for k, s in enumerate(subs))
    if out_sub is None:
        return Equation(inputs, _implicit_output(inputs), False), operands
    output = _sublist(out_sub, "the output")
    _check_output(inputs, output)
    return Equation(inputs, output, True), operands


def _sublist(sub: Any, where: str) -> tuple[Label, ...]:
    if isinstance(sub, str) or not isinstance(sub, Iterable):
        raise SubscriptError(
            f"{where}: in the sublist form each subscript list must be a list of labels, "
            f"got {type(sub).__name__}"
        )
    labels: list[Label] = []
    for lab in sub:
        if lab is ...:
            if ... in labels:
                raise SubscriptError(f"{where} has more than one ellipsis")
        else:
            try:
                hash(lab)
            except TypeError:
                raise SubscriptError(
                    f"{where}: label {lab!r} is not hashable"
                ) from None
        labels.append(lab)
    return tuple(labels)
