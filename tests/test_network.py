import pytest

from einopt.errors import ShapeError, SubscriptError
from einopt.network import EllipsisDim, bits, build_network, components
from einopt.parse import parse


def net(eq, *shapes):
    return build_network(parse(eq), shapes)


def test_ids_sizes_masks():
    n = net("ij,jk->ik", (2, 3), (3, 4))
    assert n.labels == ("i", "j", "k")
    assert n.sizes == (2, 3, 4)
    assert n.masks == (0b011, 0b110)
    assert n.output == (0, 2)
    assert n.output_mask == 0b101


def test_diagonal_taken_first():
    n = net("iij,jk->ik", (3, 3, 2), (2, 4))
    assert n.raw[0] == (0, 0, 1)
    assert n.terms[0] == (0, 1)


def test_single_holder_index_summed_first():
    n = net("ab,bc->c", (2, 3), (3, 4))
    assert n.terms == ((1,), (1, 2))  # 'a' is held by operand 0 only: summed first


def test_size_one_axes_drop_out():
    n = net("ij,jk->ik", (1, 3), (3, 1))
    assert n.terms == ((1,), (1,))
    assert n.output_mask == 0  # i and k are size 1: not held by any tensor
    assert n.output == (0, 2)


def test_broadcast_size_one_against_n():
    n = net("ij,ij->ij", (1, 3), (2, 3))
    assert n.sizes == (2, 3)
    assert n.terms == ((1,), (0, 1))


def test_ellipsis_right_aligned_broadcast():
    n = net("...ij,...jk", (5, 1, 3, 4), (2, 4, 6))
    e0, e1 = n.labels.index(EllipsisDim(0)), n.labels.index(EllipsisDim(1))
    assert n.sizes[e0] == 5 and n.sizes[e1] == 2
    assert [n.labels[i] for i in n.output] == [EllipsisDim(0), EllipsisDim(1), "i", "k"]


def test_hyperedge_kept_in_masks():
    n = net("ni,ni,nj,nj->n", (4, 5), (4, 5), (4, 6), (4, 6))
    assert all(m & 1 for m in n.masks)
    assert bits(n.output_mask) == [0]


@pytest.mark.parametrize(
    ("eq", "shapes", "err", "fragments"),
    [
        ("ij,jk->ik", [(2, 3), (4, 5)], ShapeError, ["'j'", "3", "4", "operand 0", "operand 1"]),
        ("ijk->i", [(2, 3)], ShapeError, ["operand 0", "3", "2"]),
        ("ii->i", [(2, 3)], ShapeError, ["'i'", "2", "3"]),
        ("ij,jk->ik", [(2, 3)], SubscriptError, ["2", "1"]),
        ("...i->i", [(2, 3)], SubscriptError, ["'...'"]),
        ("...ijk", [(2, 3)], ShapeError, ["operand 0", "3", "2"]),
    ],
)
def test_errors_name_operand_index_sizes(eq, shapes, err, fragments):
    with pytest.raises(err) as info:
        net(eq, *shapes)
    for f in fragments:
        assert f in str(info.value)


def test_naive_flops():
    n = net("ni,ni,nj,nj->n", (4, 5), (4, 5), (4, 6), (4, 6))
    assert n.naive_flops() == 4 * 5 * 6 * 3


def test_components():
    assert components([("a", "b"), ("c",), ("b", "d"), ("c", "e"), ()]) == \
        [[0, 2], [1, 3], [4]]
