"""Every tensor-network decomposition of a convolution kernel (the Einconv class).

A kernel ``K[o, c, x, y, ...]`` (output channel ``o``, input channel ``c``, one tap index
per spatial dimension) is written as a product of factor tensors summed over ``m`` inner
(bond) indices. Following Hayashi et al. (NeurIPS 2019), a decomposition is a set of
factors, each a set of indices, such that

1. no factor's index set contains another's (a contained factor merges into the one
   that contains it: it adds no expressive power, only parameters);
2. every spatial index is in exactly one factor (it pairs with its own convolution
   pattern, so a spatial index shared by two factors would not be a convolution);
3. each channel index is in at least one factor;
4. each inner index is in at least two factors (else it sums out of its factor).

Two decompositions are the same when they differ only by renaming inner indices or by
permuting spatial axes of equal kernel size; each class is listed once, in canonical
form (the least relabelling, factors sorted).

Generation does not loop over the 2^(2^n) families of index sets: a factor is a *core*
(its channel and inner indices) plus a block of spatial indices. The factors holding
spatial indices are a set partition of the spatial axes with one core per block; the
factors without spatial indices are an antichain of nonempty cores, none inside a core
of the first kind (the only containment the rules leave possible), grown by
backtracking over the cores that are allowed at all.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from ..errors import OptionError, OptionTypeError

__all__ = ["Decomposition", "Decompositions", "Listing", "enumerate_decompositions", "NAMED",
           "TAPS", "INNER", "named_factors", "canonical_masks"]

#: Tap (spatial) index letters, in order of the kernel's spatial axes.
TAPS = "xyz"
#: Inner (bond) index letters, in canonical order (``c`` and ``o`` are the channels).
INNER = "abdefghijk"
#: Largest number of inner indices enumerated: the class grows doubly exponentially
#: (2-d with 3 takes about a minute: 181,703 networks; 4 would take hours).
MAX_INNER = 3

#: Names of the decompositions that :func:`named_factors` builds, as the literature
#: calls them: ``bottleneck`` (1x1 reduce, k x k, 1x1 expand) is the same network as
#: ``tucker`` (Tucker-2 over the channels), so one entry carries both names.
NAMED = ("standard", "depthwise_separable", "cp", "tucker", "bottleneck",
         "spatially_separable", "(2+1)d", "tensor_train")


# -- index sets as bitmasks: bits 0..d-1 the taps, then c, then o, then the inner ------

def _letters(d: int, m: int) -> str:
    return TAPS[:d] + "co" + INNER[:m]


def _mask(labels: str, d: int, m: int) -> int:
    letters = _letters(d, m)
    return sum(1 << letters.index(s) for s in labels)


def _label_order(d: int, m: int) -> list[int]:
    """Bit positions in the order a factor's labels are written: o, c, inner, taps."""
    return [d + 1, d, *range(d + 2, d + 2 + m), *range(d)]


def _text(mask: int, d: int, m: int) -> str:
    letters = _letters(d, m)
    return "".join(letters[b] for b in _label_order(d, m) if mask >> b & 1)


def _relabellings(d: int, m: int, kernel_size: Sequence[int]) -> list[list[int]]:
    """Bit maps of the symmetry group: inner indices renamed, equal-size taps permuted."""
    classes: dict[int, list[int]] = {}
    for t, k in enumerate(kernel_size):
        classes.setdefault(k, []).append(t)
    tap_maps = []
    for perms in itertools.product(*[itertools.permutations(c) for c in classes.values()]):
        target = list(range(d))
        for cls, perm in zip(classes.values(), perms, strict=True):
            for src, dst in zip(cls, perm, strict=True):
                target[src] = dst
        tap_maps.append(target)
    inner = range(d + 2, d + 2 + m)
    return [taps + [d, d + 1] + list(p)
            for taps in tap_maps for p in itertools.permutations(inner)]


def _tables(d: int, m: int, kernel_size: Sequence[int]) -> list[list[int]]:
    """Per group element, the image of every mask."""
    n = d + 2 + m
    tables = []
    for target in _relabellings(d, m, kernel_size):
        table = [0] * (1 << n)
        for mask in range(1, 1 << n):
            low = mask & -mask
            table[mask] = table[mask ^ low] | 1 << target[low.bit_length() - 1]
        tables.append(table)
    return tables


def canonical_masks(masks: Iterable[int], tables: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """The least sorted image of a set of factor masks over the group ``tables``."""
    masks = list(masks)
    return min(tuple(sorted(t[f] for f in masks)) for t in tables)


def _connected(masks: Sequence[int]) -> bool:
    """Whether the factors form one network (factors adjacent when they share an index)."""
    reached, seen, changed = masks[0], {0}, True
    while changed:
        changed = False
        for k, f in enumerate(masks):
            if k not in seen and f & reached:
                seen.add(k)
                reached |= f
                changed = True
    return len(seen) == len(masks)


@dataclass(frozen=True)
class Decomposition:
    """One decomposition of a ``spatial_dims``-d kernel in canonical form.

    ``factors`` are label strings over ``o`` (output channel), ``c`` (input channel),
    inner letters ``a, b, d, ...`` and taps ``x, y, z``; ``names`` are the named
    decompositions it is (see :data:`NAMED`).
    """

    factors: tuple[str, ...]
    spatial_dims: int
    inner: int
    connected: bool
    names: tuple[str, ...] = ()

    @property
    def kernel_labels(self) -> str:
        """The kernel's labels, ``oc`` then the taps."""
        return "oc" + TAPS[:self.spatial_dims]

    @property
    def spec(self) -> str:
        """The kernel as an einsum of the factors (``FactoredConv{d}d``'s ``spec``)."""
        return ",".join(self.factors) + "->" + self.kernel_labels

    @property
    def inner_labels(self) -> str:
        return INNER[:self.inner]

    def equation(self) -> str:
        """The layer's forward einsum: input ``n c`` + input positions (upper case), one
        pattern per spatial dimension (tap, output position, input position), then the
        factors; the output is ``n o`` + output positions."""
        d = self.spatial_dims
        ins, outs = "HWD"[:d], "PQR"[:d]
        patterns = [f"{TAPS[t]}{outs[t]}{ins[t]}" for t in range(d)]
        return ",".join([f"nc{ins}", *patterns, *self.factors]) + f"->no{outs}"

    def sizes(self, in_channels: int, out_channels: int, kernel_size: Any,
              inner_size: int | dict[str, int]) -> dict[str, int]:
        """Every label's size for these channel counts, taps and bond sizes."""
        d = self.spatial_dims
        taps = tuple(kernel_size) if isinstance(kernel_size, (tuple, list)) else \
            (kernel_size,) * d
        if len(taps) != d:
            raise OptionError(f"kernel_size {kernel_size!r} has {len(taps)} entries for a "
                              f"{d}-d kernel")
        if isinstance(inner_size, dict):
            missing = [b for b in self.inner_labels if b not in inner_size]
            if missing:
                raise OptionError(f"inner_size has no size for bond {missing[0]!r} of "
                                  f"{self.spec}")
            bonds = {b: int(inner_size[b]) for b in self.inner_labels}
        else:
            bonds = dict.fromkeys(self.inner_labels, int(inner_size))
        return {"o": out_channels, "c": in_channels, **dict(zip(TAPS, taps, strict=False)),
                **bonds}

    def num_parameters(self, in_channels: int, out_channels: int, kernel_size: Any,
                       inner_size: int | dict[str, int]) -> int:
        """Entries of all factors (no bias)."""
        sizes = self.sizes(in_channels, out_channels, kernel_size, inner_size)
        total = 0
        for f in self.factors:
            n = 1
            for s in f:
                n *= sizes[s]
            total += n
        return total

    def inner_size_for(self, budget: int, in_channels: int, out_channels: int,
                       kernel_size: Any) -> int | None:
        """The largest bond size (the same for every inner index) whose factors keep
        to ``budget`` parameters; None when even size 1 does not (and 0 without inner
        indices when the layer keeps to it)."""
        def params(r: int) -> int:
            return self.num_parameters(in_channels, out_channels, kernel_size, r)

        if params(1) > budget:
            return None
        if not self.inner:
            return 0
        lo, hi = 1, 2
        while params(hi) <= budget:
            lo, hi = hi, hi * 2
        while hi - lo > 1:  # params grows with the bond size: bisect
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if params(mid) <= budget else (lo, mid)
        return lo

    def layer(self, in_channels: int, out_channels: int, kernel_size: Any,
              inner_size: int | dict[str, int], **kwargs: Any) -> Any:
        """The ``FactoredConv{d}d`` of this decomposition (``kwargs``: stride, padding,
        dilation, bias, device, dtype). Needs torch."""
        from . import modules

        layer_type = [modules.FactoredConv1d, modules.FactoredConv2d,
                      modules.FactoredConv3d][self.spatial_dims - 1]
        sizes = self.sizes(in_channels, out_channels, kernel_size, inner_size)
        return layer_type(in_channels, out_channels, kernel_size, preset=None, spec=self.spec,
                          bond_sizes={b: sizes[b] for b in self.inner_labels}, **kwargs)

    def __str__(self) -> str:
        tag = f" ({', '.join(self.names)})" if self.names else ""
        return self.spec + tag


T = TypeVar("T")


class Listing(Sequence[T]):
    """An immutable sequence of entries (the base of the enumeration's and the
    pricing's results)."""

    def __init__(self, entries: Iterable[T]) -> None:
        self._entries = tuple(entries)

    @overload
    def __getitem__(self, k: int) -> T: ...

    @overload
    def __getitem__(self, k: slice) -> Sequence[T]: ...

    def __getitem__(self, k: Any) -> Any:
        return self._entries[k]

    def __len__(self) -> int:
        return len(self._entries)


class Decompositions(Listing[Decomposition]):
    """The decompositions :func:`enumerate_decompositions` found, in canonical order
    (fewest factors first); ``len()`` is the count."""

    def __init__(self, entries: Iterable[Decomposition], kernel_size: tuple[int, ...]) -> None:
        super().__init__(entries)
        self.kernel_size = kernel_size

    def __repr__(self) -> str:
        return (f"<{len(self)} decompositions, {self.count_connected} connected, "
                f"kernel {self.kernel_size}>")

    @property
    def count_connected(self) -> int:
        return sum(e.connected for e in self._entries)

    @property
    def connected(self) -> Decompositions:
        """The connected entries only."""
        return Decompositions([e for e in self._entries if e.connected], self.kernel_size)

    def named(self, name: str) -> Decomposition:
        """The entry that is the named decomposition ``name`` (see :data:`NAMED`)."""
        for e in self._entries:
            if name in e.names:
                return e
        raise OptionError(f"no entry here is {name!r} (it may need another number of inner "
                          f"indices); named here: "
                          f"{sorted({n for e in self._entries for n in e.names})}")


def named_factors(name: str, d: int) -> list[str] | None:
    """The factors of a named decomposition of a ``d``-d kernel (None where the name
    does not apply at that dimension)."""
    taps = TAPS[:d]
    if name == "standard":
        return ["oc" + taps]
    if name == "depthwise_separable":
        return ["c" + taps, "oc"]
    if name == "cp":
        return ["oa", "ca", *[f"a{t}" for t in taps]]
    if name in ("tucker", "bottleneck"):
        return ["oa", "cb", "ab" + taps]
    if name == "spatially_separable":  # one factor per tap, a chain from c to o
        if d < 2:
            return None
        bonds = INNER[:d - 1]
        ends = ["c", *bonds, "o"]
        return [ends[t] + ends[t + 1] + taps[t] for t in range(d)]
    if name == "(2+1)d":  # spatial (x, y) to a bond, then temporal (z)
        return ["ca" + taps[:2], "oa" + taps[2]] if d == 3 else None
    if name == "tensor_train":  # a chain over o, c, then the taps
        modes = ["o", "c", *taps]
        bonds = INNER[:len(modes) - 1]
        return [(bonds[k - 1] if k else "") + mode + (bonds[k] if k < len(bonds) else "")
                for k, mode in enumerate(modes)]
    raise OptionError(f"unknown decomposition {name!r}; choose from {', '.join(NAMED)}")


def _inner_count(factors: Sequence[str]) -> int:
    return len({s for f in factors for s in f} & set(INNER))


def _set_partitions(items: list[int]) -> Iterator[list[list[int]]]:
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in _set_partitions(rest):
        yield [[first], *part]
        for k in range(len(part)):
            yield [*part[:k], [first, *part[k]], *part[k + 1:]]


def _antichains(allowed: Sequence[int]) -> Iterator[list[int]]:
    """Every antichain (no member inside another) of the masks ``allowed``."""
    chosen: list[int] = []

    def grow(start: int) -> Iterator[list[int]]:
        yield list(chosen)
        for k in range(start, len(allowed)):
            s = allowed[k]
            if all(s & c != s and s & c != c for c in chosen):
                chosen.append(s)
                yield from grow(k + 1)
                chosen.pop()

    return grow(0)


def _labelled(d: int, m: int) -> Iterator[list[int]]:
    """Every decomposition as masks, before symmetry is taken out (with repeats)."""
    core_bits = list(range(d, d + 2 + m))
    cores = [sum(1 << core_bits[j] for j in range(len(core_bits)) if k >> j & 1)
             for k in range(1 << len(core_bits))]
    c_bit, o_bit = 1 << d, 1 << (d + 1)
    inner_bits = [1 << b for b in range(d + 2, d + 2 + m)]
    for blocks in _set_partitions(list(range(d))):
        spatial = [sum(1 << t for t in b) for b in blocks]
        for chosen in itertools.product(cores, repeat=len(blocks)):
            allowed = [s for s in cores[1:] if not any(s & k == s for k in chosen)]
            for pure in _antichains(allowed):
                family = [*chosen, *pure]
                if not any(f & c_bit for f in family) or not any(f & o_bit for f in family):
                    continue
                if any(sum(1 for f in family if f & b) < 2 for b in inner_bits):
                    continue
                yield [c | s for c, s in zip(chosen, spatial, strict=True)] + pure


def _check(spatial_dims: Any, inner: Any, kernel_size: Any) -> tuple[int, list[int],
                                                                      tuple[int, ...]]:
    if isinstance(spatial_dims, bool) or not isinstance(spatial_dims, int):
        raise OptionTypeError(f"spatial_dims must be an int (1, 2 or 3), got "
                              f"{type(spatial_dims).__name__}")
    if not 1 <= spatial_dims <= len(TAPS):
        raise OptionError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}")
    counts = [inner] if isinstance(inner, int) and not isinstance(inner, bool) else inner
    try:
        counts = sorted({int(k) for k in counts})
    except (TypeError, ValueError):
        raise OptionTypeError(f"inner must be an int or ints, got {inner!r}") from None
    if not counts or counts[0] < 0 or counts[-1] > MAX_INNER:
        raise OptionError(f"inner must be between 0 and {MAX_INNER} inner indices, got "
                          f"{inner!r}")
    if kernel_size is None:
        taps: tuple[int, ...] = (3,) * spatial_dims
    elif isinstance(kernel_size, int):
        taps = (kernel_size,) * spatial_dims
    else:
        taps = tuple(int(k) for k in kernel_size)
    if len(taps) != spatial_dims or any(k < 1 for k in taps):
        raise OptionError(f"kernel_size {kernel_size!r} must be {spatial_dims} positive "
                          f"sizes")
    return spatial_dims, counts, taps


def enumerate_decompositions(spatial_dims: int, inner: int | Iterable[int] = 0,
                             kernel_size: int | Sequence[int] | None = None,
                             connected_only: bool = False) -> Decompositions:
    """Every decomposition of a ``spatial_dims``-d convolution kernel with ``inner``
    inner indices (an int, or several counts), once each, in canonical form.

    ``kernel_size`` only decides which spatial axes are interchangeable (those of equal
    size; by default all are). ``connected_only`` keeps the networks whose factors are
    all linked. The result is a sequence of :class:`Decomposition`; the named ones
    (standard, CP, Tucker-2 = bottleneck, depthwise-separable, spatially separable,
    (2+1)-D, tensor train) carry their names.
    """
    d, counts, taps = _check(spatial_dims, inner, kernel_size)
    entries = []
    for m in counts:
        tables = _tables(d, m, taps)
        named: dict[tuple[int, ...], list[str]] = {}
        for name in NAMED:
            fs = named_factors(name, d)
            if fs is not None and _inner_count(fs) == m:
                key = canonical_masks([_mask(f, d, m) for f in fs], tables)
                named.setdefault(key, []).append(name)
        found: dict[tuple[int, ...], Decomposition] = {}
        for masks in _labelled(d, m):
            key = canonical_masks(masks, tables)
            if key in found:
                continue
            linked = _connected(key)
            if connected_only and not linked:
                continue
            factors = tuple(sorted((_text(f, d, m) for f in key), key=lambda s: (len(s), s)))
            found[key] = Decomposition(factors, d, m, linked, tuple(named.get(key, ())))
        entries += sorted(found.values(), key=lambda e: (len(e.factors), e.factors))
    return Decompositions(entries, taps)
