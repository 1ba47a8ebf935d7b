import pytest

from einopt.errors import SubscriptError
from einopt.parse import Equation, parse, parse_sublist


@pytest.mark.parametrize(
    ("text", "inputs", "output", "explicit"),
    [
        ("ij,jk->ik", (("i", "j"), ("j", "k")), ("i", "k"), True),
        ("ij,jk", (("i", "j"), ("j", "k")), ("i", "k"), False),
        ("Ba", (("B", "a"),), ("B", "a"), False),
        ("ii", (("i", "i"),), (), False),
        ("...ij,...jk", ((..., "i", "j"), (..., "j", "k")), (..., "i", "k"), False),
        (" i j , j k -> i k ", (("i", "j"), ("j", "k")), ("i", "k"), True),
        ("αβ,βγ->αγ", (("α", "β"), ("β", "γ")), ("α", "γ"), True),
        (",->", ((), ()), (), True),
        ("i->", (("i",),), (), True),
    ],
)
def test_text_forms(text, inputs, output, explicit):
    assert parse(text) == Equation(inputs, output, explicit)


def test_names_mode():
    eq = parse("batch in, batch out -> batch")
    assert eq.inputs == (("batch", "in"), ("batch", "out"))
    assert eq.output == ("batch",)


def test_names_mode_implicit_and_ellipsis():
    eq = parse("... row k, k col")
    assert eq.inputs == ((..., "row", "k"), ("k", "col"))
    assert eq.output == (..., "col", "row")


def test_sublist_any_hashables():
    ops, eq = None, None
    eq, ops = parse_sublist(["A", [0, 100], "B", [100, ("x", 1)], [0, ("x", 1)]])
    assert ops == ["A", "B"]
    assert eq.inputs == ((0, 100), (100, ("x", 1)))
    assert eq.output == (0, ("x", 1))


def test_sublist_implicit_sorted_ints():
    eq, _ = parse_sublist(["A", [5, 3], "B", [3, 1]])
    assert eq.output == (1, 5)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("ij,jk->i@", "'@'"),
        ("i#,jk", "'#'"),
        ("ij->i->j", "more than once"),
        ("ij,jk->ii", "more than once"),
        ("ij,jk->iz", "'z'"),
        ("i..j", "ellipsis"),
        ("...i...", "more than one ellipsis"),
        ("ij-jk", "'->'"),
    ],
)
def test_bad_subscripts(text, fragment):
    with pytest.raises(SubscriptError, match=None) as info:
        parse(text)
    assert fragment in str(info.value)


def test_unhashable_sublist_label():
    with pytest.raises(SubscriptError, match="hashable"):
        parse_sublist(["A", [[1], 2]])


def test_str_roundtrip():
    assert str(parse("ij,jk")) == "ij,jk->ik"
    assert str(parse("bat i, bat j -> bat")) == "bat i,bat j->bat"


def test_non_ascii_symbols_are_labels():
    # opt_einsum's generated symbols include non-letters such as '×'.
    eq = parse("×Ø,Ø->×")
    assert eq.inputs == (("×", "Ø"), ("Ø",))


def test_digits_are_labels():
    # cotengra's generated equations use digits after the letters.
    assert parse("a0,01->a1").inputs == (("a", "0"), ("0", "1"))


#: Every whitespace character opt_einsum's get_symbol produces (past about 8,000 indices).
GENERATED_SPACES = ["\u1680", "\u2000", "\u2005", "\u200a", "\u2028", "\u2029", "\u202f",
                    "\u205f", "\u3000"]


@pytest.mark.parametrize("space", GENERATED_SPACES)
def test_unicode_spaces_are_labels(space):
    eq = parse(f"a{space}b,{space}c->abc")
    assert eq.inputs == (("a", space, "b"), (space, "c"))
    assert eq.output == ("a", "b", "c")
    assert parse(str(eq)) == eq  # the text form reads back the same


def test_generated_symbols_never_switch_to_names():
    oe = pytest.importorskip("opt_einsum")
    symbols = [oe.get_symbol(i) for i in range(20000)]
    terms = ["".join(symbols[k:k + 3]) for k in range(0, len(symbols), 3)]
    eq = parse(",".join(terms) + "->")
    assert eq.inputs == tuple(tuple(t) for t in terms)


@pytest.mark.parametrize(("text", "inputs"), [
    ("b i, b j -> b", (("b", "i"), ("b", "j"))),  # single characters: numpy's reading
    ("ab c,c->ab", (("ab", "c"), ("c",))),  # a longer token: names
    ("ij, jk", (("i", "j"), ("j", "k"))),  # one token per term: letters
])
def test_when_names_mode_is_on(text, inputs):
    assert parse(text).inputs == inputs
