"""The Einconv class: counts against a brute force, canonical entries, named
decompositions, and every spec's layer against the dense convolution."""

from __future__ import annotations

import itertools
import random

import pytest

torch = pytest.importorskip("torch")

import einopt  # noqa: E402
from einopt.errors import EinsumError  # noqa: E402
from einopt.nn import enumerate_decompositions, price  # noqa: E402
from einopt.nn.decompositions import NAMED, named_factors  # noqa: E402
from einopt.nn.einconv import forward_operands  # noqa: E402

TAPS, INNER = "xyz", "abde"


def brute_force(d, m):
    """Every labelled decomposition: antichains of index sets, grown over all nonempty
    subsets in order (taps used at most once), kept when they satisfy the rules."""
    taps, inner = TAPS[:d], INNER[:m]
    labels = taps + "co" + inner
    subsets = [frozenset(c) for r in range(1, len(labels) + 1)
               for c in itertools.combinations(labels, r)]
    found = []

    def valid(chosen):
        used = [s for f in chosen for s in f]
        return (all(used.count(t) == 1 for t in taps) and "c" in used and "o" in used
                and all(used.count(i) >= 2 for i in inner))

    def grow(start, chosen, used):
        if chosen and valid(chosen):
            found.append(frozenset(chosen))
        for k in range(start, len(subsets)):
            s = subsets[k]
            if s & used or any(s <= f or f <= s for f in chosen):
                continue
            chosen.append(s)
            grow(k + 1, chosen, used | (s & frozenset(taps)))
            chosen.pop()

    grow(0, [], frozenset())
    return found


def symmetries(d, m, kernel_size=None):
    """Relabellings: inner indices permuted, taps of equal kernel size permuted."""
    taps, inner = TAPS[:d], INNER[:m]
    sizes = kernel_size or (3,) * d
    for pt in itertools.permutations(range(d)):
        if any(sizes[a] != sizes[b] for a, b in zip(range(d), pt, strict=True)):
            continue
        for pi in itertools.permutations(inner):
            yield {**{taps[a]: taps[b] for a, b in enumerate(pt)},
                   **dict(zip(inner, pi, strict=True)), "c": "c", "o": "o"}


def apply(g, family):
    return frozenset(frozenset(g[s] for s in f) for f in family)


def connected(family):
    family = list(family)
    reached, linked = set(family[0]), {0}
    grew = True
    while grew:
        grew = False
        for k, f in enumerate(family):
            if k not in linked and reached & f:
                linked.add(k)
                reached |= f
                grew = True
    return len(linked) == len(family)


def orbit_count(families, group):
    """Burnside: the number of classes is the mean number of families each relabelling
    fixes."""
    fixed = sum(apply(g, f) == f for g in group for f in families)
    assert fixed % len(group) == 0
    return fixed // len(group)


def as_family(entry):
    return frozenset(frozenset(f) for f in entry.factors)


CASES = [(1, 0, None), (1, 1, None), (1, 2, None), (2, 0, None), (2, 1, None),
         (2, 2, None), (3, 0, None), (3, 1, None), (2, 1, (3, 1)), (3, 1, (3, 3, 1))]


@pytest.mark.parametrize(("d", "m", "kernel_size"), CASES)
def test_counts_equal_an_independent_brute_force(d, m, kernel_size):
    group = list(symmetries(d, m, kernel_size))
    labelled = brute_force(d, m)
    found = enumerate_decompositions(d, m, kernel_size=kernel_size)
    assert len(found) == orbit_count(labelled, group)
    assert found.count_connected == orbit_count([f for f in labelled if connected(f)], group)
    assert len(found.connected) == found.count_connected
    assert len(enumerate_decompositions(d, m, kernel_size=kernel_size, connected_only=True)) \
        == found.count_connected
    # each entry is a decomposition, its connectivity is right, no two are isomorphic
    labelled = set(labelled)
    seen = set()
    for e in found:
        family = as_family(e)
        assert family in labelled, e
        assert e.connected == connected(family)
        assert e.inner == m and e.spatial_dims == d
        orbit = {apply(g, family) for g in group}
        assert not orbit & seen, e
        seen |= orbit


def test_counts_of_the_docs():
    """The table in docs/structure.md (all, connected)."""
    table = {(1, 0): (7, 3), (1, 1): (20, 16), (2, 0): (23, 9), (2, 1): (119, 83),
             (2, 2): (2332, 1894), (3, 0): (62, 22), (3, 1): (520, 328)}
    for (d, m), (total, linked) in table.items():
        found = enumerate_decompositions(d, m)
        assert (len(found), found.count_connected) == (total, linked)


def test_several_inner_counts_are_the_union():
    both = enumerate_decompositions(2, [0, 1])
    assert len(both) == len(enumerate_decompositions(2, 0)) + len(enumerate_decompositions(2, 1))
    assert [e.inner for e in both] == sorted(e.inner for e in both)


NAMED_CASES = [(name, d) for name in NAMED for d in (1, 2, 3)
               if named_factors(name, d) is not None
               and len({s for f in named_factors(name, d) for s in f} & set(INNER)) <= 2]


@pytest.mark.parametrize(("name", "d"), NAMED_CASES)
def test_every_named_decomposition_appears_exactly_once(name, d):
    factors = named_factors(name, d)
    m = len({s for f in factors for s in f} & set(INNER))
    found = enumerate_decompositions(d, m)
    marked = [e for e in found if name in e.names]
    assert len(marked) == 1
    group = list(symmetries(d, m))
    template = frozenset(frozenset(f) for f in factors)
    assert as_family(marked[0]) in {apply(g, template) for g in group}
    assert found.named(name) is marked[0]


def test_bottleneck_is_tucker_and_the_presets_are_recognized():
    found = enumerate_decompositions(2, 2)
    assert set(found.named("bottleneck").names) == {"tucker", "bottleneck"}
    # the layer presets of the same names are the same networks
    for preset in ("tucker", "bottleneck"):
        spec, _ = einopt.nn.factored_spec(preset, 2, (3, 4))
        family = frozenset(frozenset(t) for t in spec.split("->")[0].split(","))
        assert any(as_family(found.named(preset)) == apply(g, family)
                   for g in symmetries(2, 2))
    assert "tensor_train" in enumerate_decompositions(1, 2).named("tensor_train").names


def check_layer(e, rng, kernel=3, size=7, channels=(3, 4), bond=2):
    cin, cout = channels
    layer = e.layer(cin, cout, kernel, bond, padding=1, bias=False).double()
    x = torch.randn(2, cin, *(size,) * e.spatial_dims, dtype=torch.float64)
    # the kernel from the factors by torch's own einsum, then torch's convolution
    w = torch.einsum(e.spec, *layer.factors)
    conv = [torch.nn.functional.conv1d, torch.nn.functional.conv2d,
            torch.nn.functional.conv3d][e.spatial_dims - 1]
    want = conv(x, w, padding=1)
    torch.testing.assert_close(layer(x), want, rtol=1e-10, atol=1e-10)
    assert layer.num_parameters == e.num_parameters(cin, cout, kernel, bond)


def test_every_2d_spec_with_at_most_one_inner_index_is_the_dense_convolution(rng):
    for e in enumerate_decompositions(2, [0, 1]):
        check_layer(e, rng)


@pytest.mark.parametrize(("d", "m"), [(1, 2), (2, 2), (3, 0), (3, 1)])
def test_a_sample_of_specs_is_the_dense_convolution(d, m, rng):
    entries = list(enumerate_decompositions(d, m))
    for e in random.Random(d * 10 + m).sample(entries, 12):
        check_layer(e, rng, size=5 if d == 3 else 7)


def test_pricing_counts_parameters_and_plans(rng):
    found = enumerate_decompositions(2, [0, 1])
    priced = price(found, 6, 8, 3, 4, input_size=9, batch=2)
    assert len(priced) == len(found)
    standard = next(p for p in priced if "standard" in p.decomposition.names)
    # the dense layer: one multiply-add per kernel entry and output position
    assert standard.flops == 2 * 8 * 6 * 9 * 9 * 9
    assert standard.parameters == 8 * 6 * 9
    for p in random.Random(0).sample(list(priced), 10):
        layer = p.decomposition.layer(6, 8, 3, 4, padding="same", bias=False)
        assert p.parameters == sum(t.numel() for t in layer.parameters())
        assert p.flops == layer.plan((2, 6, 9, 9)).flops
        assert p.train_flops > p.flops
    # reverse mode through the forward plan, walked here over its steps' labels: a
    # step's operand needs a gradient unless it is a pattern (its labels are a tap and
    # two positions), and costs the step's flops again for each such operand
    for p in [standard, *random.Random(1).sample(list(priced), 10)]:
        ops = forward_operands(p.decomposition, 6, 8, 3, 4, input_size=9, batch=2)
        plan = einopt.plan(*ops)
        labels = plan.network.labels
        names = [[str(labels[i]) for i in raw] for raw in plan.network.raw]
        grads = [not (all(n in "xyz" or n.startswith(("out", "in")) for n in ns)
                      and any(n.startswith(("out", "in")) for n in ns)) for ns in names]
        extra = 0
        for step in plan.steps:
            if len(step.args) == 2:
                extra += step.flops * sum(grads[a] for a in step.args)
                grads.append(any(grads[a] for a in step.args))
        assert p.train_flops == p.flops + extra
        assert p.flops < p.train_flops <= 3 * p.flops


def test_front_and_pick_against_a_scan():
    priced = price(enumerate_decompositions(2, [0, 1, 2]).connected, 16, 16, 3, 4, 8)
    points = {(p.parameters, p.flops) for p in priced}
    undominated = {(a, f) for a, f in points
                   if not any(b <= a and g <= f and (b, g) != (a, f) for b, g in points)}
    front = priced.front()
    assert [(p.parameters, p.flops) for p in front] == sorted(undominated)
    for budget in (300, 1000, 3000, 10_000):
        best = priced.pick(budget)
        assert best.parameters <= budget
        assert best.flops == min(p.flops for p in priced if p.parameters <= budget)
        few = priced.pick(best.flops * 2, minimize="parameters")
        assert few.parameters == min(p.parameters for p in priced
                                     if p.flops <= best.flops * 2)
    with pytest.raises(EinsumError, match="no decomposition has parameters <= 1"):
        priced.pick(1)
    with pytest.raises(EinsumError, match="minimize"):
        priced.pick(1000, minimize="time")


def test_measured_times_are_reported():
    priced = price(enumerate_decompositions(1, 0), 2, 3, 3, 1, 8, measure=True, repeats=1)
    assert all(p.seconds > 0 and p.train_seconds > 0 for p in priced)
    assert "ms" in str(priced[0]) and "*" in priced.table()


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    ((0,), {}, "spatial_dims must be 1, 2 or 3"),
    ((4,), {}, "spatial_dims must be 1, 2 or 3"),
    ((True,), {}, "spatial_dims must be an int"),
    (("2",), {}, "spatial_dims must be an int"),
    ((2,), {"inner": -1}, "inner must be between 0"),
    ((2,), {"inner": 9}, "inner must be between 0"),
    ((2,), {"inner": "a"}, "inner must be an int"),
    ((2,), {"kernel_size": (3, 3, 3)}, "kernel_size"),
    ((2,), {"kernel_size": 0}, "kernel_size"),
])
def test_bad_arguments_raise_clear_errors(args, kwargs, match):
    with pytest.raises(EinsumError, match=match):
        enumerate_decompositions(*args, **kwargs)


def test_bad_sizes_name_what_is_missing():
    e = enumerate_decompositions(2, 2).named("tucker")
    with pytest.raises(EinsumError, match="no size for bond 'b'"):
        e.num_parameters(4, 4, 3, {"a": 2})
    with pytest.raises(EinsumError, match="3 entries for a 2-d kernel"):
        e.num_parameters(4, 4, (3, 3, 3), 2)
    with pytest.raises(EinsumError, match="no entry here is 'cp'"):
        enumerate_decompositions(2, 0).named("cp")


def test_an_equal_budget_gets_each_entry_its_largest_bond():
    found = enumerate_decompositions(2, [1, 2]).connected
    budget = 500
    priced = price(found, 8, 8, 3, input_size=6, budget=budget)
    assert 0 < len(priced) <= len(found)
    for p in priced:
        e = p.decomposition
        assert p.parameters == e.num_parameters(8, 8, 3, p.inner_size) <= budget
        assert e.num_parameters(8, 8, 3, p.inner_size + 1) > budget
    left_out = {e.factors for e in found} - {p.decomposition.factors for p in priced}
    assert all(e.num_parameters(8, 8, 3, 1) > budget for e in found if e.factors in left_out)
    with pytest.raises(EinsumError, match="not both"):
        price(found, 8, 8, 3, 2, budget=budget)
    with pytest.raises(EinsumError, match="inner_size or budget"):
        price(found, 8, 8, 3)


@pytest.mark.parametrize(("d", "m"), [(1, 1), (2, 1), (3, 1)])
def test_the_equation_is_the_layer_with_dense_patterns(d, m):
    """numpy's einsum of ``equation()`` with dense patterns against torch's layer."""
    import numpy as np

    for e in random.Random(d).sample(list(enumerate_decompositions(d, m)), 4):
        layer = e.layer(2, 3, 3, 2, padding=1, bias=False).double()
        x = torch.randn(1, 2, *(5,) * d, dtype=torch.float64)
        pattern = np.asarray(einopt.conv_pattern(5, 3, padding=1), dtype=np.float64)
        got = np.einsum(e.equation(), x.numpy(), *[pattern] * d,
                        *[f.detach().numpy() for f in layer.factors], optimize="greedy")
        np.testing.assert_allclose(got, layer(x).detach().numpy(), rtol=1e-10, atol=1e-12)


def test_the_2d_tensor_train_appears_once_among_three_inner_indices():
    """The one named network beyond two inner indices (181,703 entries, about a minute)."""
    found = enumerate_decompositions(2, 3)
    marked = [e for e in found if "tensor_train" in e.names]
    assert len(marked) == 1 and len(found) == 181_703
    template = frozenset(frozenset(f) for f in named_factors("tensor_train", 2))
    assert as_family(marked[0]) in {apply(g, template) for g in symmetries(2, 3)}
