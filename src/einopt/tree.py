"""Stage 3: :class:`ContractionTree`, the one currency every optimizer returns.

A binary tree over a network's tensors, stored in SSA form: leaves are ``0..n-1`` and
the ``k``-th merge creates node ``n + k``. Converts to and from opt_einsum's linear
paths and SSA paths, and totals flops, largest intermediate and write with the exact
hyperedge-aware cost model.
"""

from __future__ import annotations

import math
import operator
from bisect import bisect_left
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from .cost import HolderCounts, pair_flops, size_of
from .errors import IncompletePathError, PathError, PathTypeError
from .network import Network

__all__ = ["ContractionTree", "TreeCost", "append_merges", "read_path", "tree_cost",
           "tree_totals"]

Path = list[tuple[int, ...]]


def read_path(path: Any) -> tuple[tuple[int, ...], ...]:
    """A linear path (opt_einsum's format) as tuples of ints, its types checked.

    Positions must be ints (numpy's integers count; floats do not, as in numpy), each
    entry a sequence of them; whether they name live operands is checked when the path
    is applied (:meth:`ContractionTree.from_linear_path`).

    Raises:
        PathTypeError: ``path`` is not a sequence of entries, an entry is not a sequence,
            or a position is not an int (the entry and the position are named).
    """
    if isinstance(path, (str, bytes)) or not hasattr(path, "__iter__"):
        raise PathTypeError(f"a path is a list of tuples of operand positions, got "
                            f"{type(path).__name__}")
    entries = []
    for step, entry in enumerate(path):
        if isinstance(entry, (str, bytes)) or not hasattr(entry, "__iter__"):
            raise PathTypeError(f"path entry {step} is {entry!r}, not a tuple of operand "
                                f"positions")
        items = tuple(entry)
        positions = []
        for p in items:
            try:
                positions.append(operator.index(p))
            except TypeError:
                raise PathTypeError(f"path entry {step} {items!r} is not a tuple of ints: "
                                    f"position {p!r} is a {type(p).__name__}") from None
        entries.append(tuple(positions))
    return tuple(entries)


@dataclass(frozen=True, slots=True)
class ContractionTree:
    """A contraction order as a binary tree in SSA form.

    Attributes:
        num_leaves: number of tensors.
        merges: ``merges[k] = (x, y)`` merges nodes ``x`` and ``y`` into node
            ``num_leaves + k``; there are ``num_leaves - 1`` merges (none for one leaf).
        sliced: index ids to slice (loop over), empty when none.
    """

    num_leaves: int
    merges: tuple[tuple[int, int], ...]
    sliced: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        n = self.num_leaves
        if n >= 1 and len(self.merges) != n - 1:
            raise PathError(f"a tree over {n} tensors needs {n - 1} merges, got {len(self.merges)}")
        used = set()
        for k, (x, y) in enumerate(self.merges):
            for z in (x, y):
                if not 0 <= z < n + k or z in used:
                    raise PathError(f"merge {k} uses node {z}, which is not available")
                used.add(z)

    def to_dict(self) -> dict[str, Any]:
        """The tree as plain lists and ints (JSON-ready); :meth:`from_dict` reads it."""
        return {"num_leaves": self.num_leaves, "merges": [list(m) for m in self.merges],
                "sliced": list(self.sliced)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContractionTree:
        """The tree stored by :meth:`to_dict`."""
        return cls(int(data["num_leaves"]),
                   tuple((int(x), int(y)) for x, y in data["merges"]),
                   tuple(int(i) for i in data["sliced"]))

    @classmethod
    def from_ssa_path(cls, num_leaves: int, path: Sequence[Sequence[int]]) -> ContractionTree:
        """Build from an SSA path (each entry names node ids; results get new ids)."""
        merges: list[tuple[int, int]] = []
        nxt = num_leaves
        alias: dict[int, int] = {}
        for entry in path:
            ids = [alias.get(int(i), int(i)) for i in entry]
            if len(ids) == 1:
                alias[nxt] = ids[0]
                nxt += 1
                continue
            x = ids[0]
            for y in ids[1:]:
                merges.append((x, y))
                x = num_leaves + len(merges) - 1
            alias[nxt] = x
            nxt += 1
        return cls._finish(num_leaves, merges)

    @classmethod
    def from_linear_path(cls, num_leaves: int, path: Sequence[Sequence[int]]) -> ContractionTree:
        """Build from opt_einsum's linear path format.

        Each entry names positions in the current operand list; those operands are
        removed and their result appended. Entries of one position are no-ops here
        (single-operand work is done by the plan anyway); entries of three or more are
        merged left to right. A complete path leaves one operand.
        """
        live = list(range(num_leaves))
        merges: list[tuple[int, int]] = []
        for step, entry in enumerate(read_path(path)):
            pos = list(entry)
            if not pos or len(set(pos)) != len(pos) or any(not 0 <= p < len(live) for p in pos):
                raise PathError(
                    f"path entry {step} {tuple(entry)!r} must name distinct positions "
                    f"among the {len(live)} current operands"
                )
            ids = [live[p] for p in pos]
            for p in sorted(pos, reverse=True):
                del live[p]
            x = ids[0]
            for y in ids[1:]:
                merges.append((x, y))
                x = num_leaves + len(merges) - 1
            live.append(x)
        if len(live) > 1:
            raise IncompletePathError(
                f"the path leaves {len(live)} operands; a complete path ends with one"
            )
        return cls(num_leaves, tuple(merges))

    @classmethod
    def left_to_right(cls, num_leaves: int) -> ContractionTree:
        """Merge the operands in order: ((0, 1), 2), 3) ..."""
        merges = [(0, 1)] if num_leaves > 1 else []
        merges += [(k, num_leaves + k - 2) for k in range(2, num_leaves)]
        return cls(num_leaves, tuple(merges))

    @classmethod
    def _finish(cls, n: int, merges: list[tuple[int, int]]) -> ContractionTree:
        used = {z for m in merges for z in m}
        live = [z for z in range(n + len(merges)) if z not in used]
        while len(live) > 1:
            x, y = live.pop(0), live.pop(0)
            merges.append((x, y))
            live.append(n + len(merges) - 1)
        return cls(n, tuple(merges))

    def ssa_path(self) -> Path:
        """The SSA path: a list of pairs of node ids."""
        return [tuple(m) for m in self.merges]

    def linear_path(self) -> Path:
        """opt_einsum's linear path format (positions in the shrinking operand list)."""
        live = list(range(self.num_leaves))
        out: Path = []
        for k, (x, y) in enumerate(self.merges):
            px, py = bisect_left(live, x), bisect_left(live, y)
            out.append((px, py) if px < py else (py, px))
            for p in sorted((px, py), reverse=True):
                del live[p]
            live.append(self.num_leaves + k)
        return out

    def with_sliced(self, sliced: Sequence[int]) -> ContractionTree:
        """The same tree with ``sliced`` index ids."""
        return ContractionTree(self.num_leaves, self.merges, tuple(sliced))


def append_merges(root: Hashable, children: Callable[[Any], tuple[Any, Any]],
                  ids: dict[Any, int], merges: list[tuple[int, int]], num_leaves: int) -> int:
    """Append the SSA merges of the binary tree below ``root``; return the root's id.

    The tree is given by ``children(node) -> (left, right)`` for inner nodes; ``ids``
    maps the nodes that already have an SSA id (the leaves) to it and is extended with
    the new ones (``num_leaves + position in merges``). Iterative post-order.
    """
    stack = [(root, False)]
    while stack:
        v, done = stack.pop()
        if v in ids:
            continue
        a, b = children(v)
        if done:
            merges.append((ids[a], ids[b]))
            ids[v] = num_leaves + len(merges) - 1
        else:
            stack += [(v, True), (b, False), (a, False)]
    return ids[root]


@dataclass(frozen=True, slots=True)
class TreeCost:
    """Totals of a tree on a network.

    Attributes:
        flops: sum over merges of the size of the union of the two inputs' indices.
        max_size: elements of the largest merge result.
        write: total elements written by all merges.
        node_masks: index mask of every node (leaves, then merge results).
        node_sizes: elements of every node.
        merge_flops: each merge's flops, in merge order (what local refinement ranks
            merges by).
    """

    flops: int
    max_size: int
    write: int
    node_masks: tuple[int, ...]
    node_sizes: tuple[int, ...]
    merge_flops: tuple[int, ...] = ()


def tree_cost(network: Network, tree: ContractionTree,
              sizes: Sequence[int] | None = None) -> TreeCost:
    """Cost of one pass of ``tree`` over ``network`` (with ``sizes`` instead, if given).

    Sliced indices are not special here: pass ``sizes`` with them set to 1 for the cost
    of one slice.
    """
    sizes = network.sizes if sizes is None else sizes
    masks = list(network.masks)
    holders = HolderCounts(masks, network.output_mask, network.num_indices)
    flops = write = max_size = 0
    # Sizes follow from the inputs' through the (few) shared and summed indices only.
    node_sizes = [size_of(m, sizes) for m in masks]
    each = []
    for x, y in tree.merges:
        a, b = masks[x], masks[y]
        r = holders.merge(a, b)
        masks.append(r)
        joint = pair_flops(a, b, sizes, node_sizes[x], node_sizes[y])
        each.append(joint)
        flops += joint
        summed = size_of((a | b) & ~r, sizes)
        s = joint // summed if summed else size_of(r, sizes)
        node_sizes.append(s)
        write += s
        max_size = max(max_size, s)
    return TreeCost(flops, max_size, write, tuple(masks), tuple(node_sizes), tuple(each))


def tree_totals(network: Network, tree: ContractionTree,
                sizes: Sequence[int] | None = None) -> TreeCost:
    """:func:`tree_cost`'s flops, largest size and write, without the node masks.

    Index sets are held sparsely (sets of ids), so a merge costs time in the indices it
    touches, not in the network's size: the way to score many candidate trees of a large
    network (:func:`tree_cost`'s masks are ints as wide as the network has indices).
    The node fields of the result are empty.
    """
    sizes = network.sizes if sizes is None else sizes
    if 0 in sizes:  # empty indices: the division below needs nonzero sizes
        return tree_cost(network, tree, sizes)
    out = {i for i in network.output if network.output_mask >> i & 1}
    held: list[set[int] | frozenset[int]] = [frozenset(t) for t in network.terms]
    counts = [0] * network.num_indices
    for term in network.terms:
        for i in term:
            counts[i] += 1
    node_sizes = [math.prod([sizes[i] for i in t]) for t in network.terms]
    flops = write = max_size = 0
    for x, y in tree.merges:
        a, b = held[x], held[y]
        if len(a) < len(b):
            a, b = b, a
        shared = 1
        summed = 1
        gone = []
        for i in b:
            if i in a:
                shared *= sizes[i]
                counts[i] -= 1
                if counts[i] == 1 and i not in out:
                    counts[i] = 0
                    summed *= sizes[i]
                    gone.append(i)
        joint = node_sizes[x] * node_sizes[y] // shared
        s = joint // summed
        r = set(a)
        r.update(b)
        r.difference_update(gone)
        held.append(r)
        held[x] = held[y] = frozenset()
        node_sizes.append(s)
        flops += joint
        write += s
        max_size = max(max_size, s)
    return TreeCost(flops, max_size, write, (), ())
