"""dask: plans build lazy task graphs; sliced plans spread their slices over a cluster."""

from __future__ import annotations

import numpy as np
import pytest

import einopt

from cases import make_operands

da = pytest.importorskip("dask.array")


def test_lazy_and_chunk_aware():
    a, b, c = make_operands([(40, 30), (30, 20), (20, 10)], np.float64, seed=0)
    da_ops = [da.from_array(x, chunks=10) for x in (a, b, c)]
    got = einopt.einsum("ij,jk,kl->il", *da_ops)
    assert isinstance(got, da.Array)  # nothing computed yet
    assert got.npartitions > 1  # the chunks survive the plan
    np.testing.assert_allclose(got.compute(), a @ b @ c)


def test_distributed_sliced_equals_serial():
    distributed = pytest.importorskip("distributed")
    eq = "ab,bc,cd,de->ae"
    ops = make_operands([(8, 9), (9, 10), (10, 11), (11, 7)], np.float64, seed=1)
    p = einopt.plan(eq, *[x.shape for x in ops], memory_limit=40)
    assert p.num_slices > 2
    serial = p(*ops, executor="serial")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        got = einopt.einsum(eq, *ops, memory_limit=40, executor=client)
    np.testing.assert_allclose(got, serial, rtol=1e-12)
    np.testing.assert_allclose(serial, np.einsum(eq, *ops), rtol=1e-12)
