import json

import numpy as np
import pytest

import einopt
from einopt.network import build_network
from einopt.optimize.cache import canonical_key
from einopt.parse import parse


@pytest.mark.parametrize(
    ("eq", "shapes"),
    [
        ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
        ("...ii,i->...i", [(2, 3, 3), (3,)]),
        ("ni,ni,nj,nj->n", [(4, 5), (4, 5), (4, 6), (4, 6)]),
    ],
)
def test_plan_json_roundtrip(eq, shapes):
    rng = np.random.default_rng(0)
    ops = [rng.standard_normal(s) for s in shapes]
    p = einopt.plan(eq, *ops, memory_limit=16)
    q = einopt.Plan.from_json(p.to_json())
    assert (q.path, q.flops, q.max_size, q.sliced) == (p.path, p.flops, p.max_size, p.sliced)
    np.testing.assert_allclose(q(*ops), np.einsum(eq, *ops))
    json.loads(p.to_json())


def test_sublist_int_labels_roundtrip():
    p = einopt.plan(np.ones((2, 3)), [0, 100], np.ones((3, 4)), [100, 7], [0, 7])
    assert einopt.Plan.from_json(p.to_json()).path == p.path


def test_bad_json():
    with pytest.raises(einopt.EinsumError, match="not an einopt plan"):
        einopt.Plan.from_json('{"format": "other"}')


def test_canonical_key_ignores_labels():
    a = build_network(parse("ab,bc->ac"), [(2, 3), (3, 4)])
    b = build_network(parse("xy,yz->xz"), [(2, 3), (3, 4)])
    c = build_network(parse("xy,yz->xz"), [(2, 3), (3, 5)])
    assert canonical_key(a, "o") == canonical_key(b, "o") != canonical_key(c, "o")


def test_disk_cache_reuses_the_search(tmp_path, monkeypatch):
    calls = []
    import einopt.optimize as opt

    real = opt.OPTIMIZERS["greedy"]

    def counting(net, budget):
        calls.append(1)
        return real(net, budget)

    monkeypatch.setitem(opt.OPTIMIZERS, "greedy", counting)
    p1 = einopt.plan("ab,bc,cd->ad", (2, 3), (3, 4), (4, 5), optimize="greedy",
                     cache_dir=tmp_path)
    p2 = einopt.plan("xy,yz,zw->xw", (2, 3), (3, 4), (4, 5), optimize="greedy",
                     cache_dir=tmp_path)
    assert len(calls) == 1 and p1.path == p2.path
    assert len(list(tmp_path.glob("*.json"))) == 1
