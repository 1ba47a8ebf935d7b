"""Contraction trees by recursive hypergraph partitioning (divide and conquer).

Tensors are nodes and indices hyperedges. The tensors are split into ``parts`` blocks
so that the indices cut between blocks weigh least (an index weighs log2 of its size,
or 1 each: cutting it costs a factor of its size), within a balance tolerance; each
block is split again until groups of at most ``cutoff`` tensors remain. Those are
ordered exactly (up to :data:`EXACT` tensors) or greedily, and the blocks of each split
are merged in the order an exact (or, for many blocks, greedy) search finds best.

Before splitting, scalars and (optionally) tensors whose indices are a subset of
another's are folded into other tensors (see :mod:`einopt.optimize.divide`). Splits
use KaHyPar (the optional ``kahypar`` package) with the profile that ships with einopt
(see :func:`kahypar_profile`), or the built-in multilevel partitioner of
:mod:`einopt.optimize.multilevel`. :func:`partition_params` samples the options of a
tree for randomized searches, and :func:`partition_tree_from` builds one from them.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from ..network import Network
from ..tree import ContractionTree
from .divide import Builder, reduced
from .multilevel import partition as builtin_partition
from .objective import FLOPS, Objective, OutOfTime

__all__ = ["partition_tree", "partition_tree_from", "partition_params", "PARTITION_FIRST",
           "bisect", "kahypar_bisect", "kahypar_profile", "kahypar_partition", "PARTITIONERS",
           "EXACT"]

#: Which partitioner splits: KaHyPar when it is available ("auto"), or always one.
PARTITIONERS = ("auto", "kahypar", "builtin")
#: Groups of at most this many tensors are ordered exactly (greedily beyond).
EXACT = 7
#: The blocks of a split are merged in an exactly best order up to this many blocks.
EXACT_MERGE = 10
#: Groups of fewer tensors are split by the built-in partitioner even where KaHyPar is
#: used (a KaHyPar call has a fixed cost of about half a millisecond).
KAHYPAR_MIN = 32
#: Nor are groups under this share of the network's tensors: on 10,000 tensors such
#: groups decide little of the cost (the same trees' costs over 10 drawn option sets)
#: while KaHyPar's many calls on them took a third of a tree's time.
KAHYPAR_SHARE = 1 / 32
#: Values of ``EINOPT_KAHYPAR_PROFILE`` that turn KaHyPar off.
OPT_OUT = ("none", "0")
#: No block of a split holds more than this share of its group, whatever the imbalance
#: (a loose tolerance deep down lets a split peel off a tensor or two at a time, and the
#: recursion then takes time quadratic in the group's size: 50 s on 10,000 tensors).
MAX_SHARE = 0.9
#: Integer hyperedge weights are this many units per factor of 2 of an index's size.
SCALE = 16
_PROFILES = {"cut": "kahypar_cut.ini", "km1": "kahypar_km1.ini"}


@cache
def _kahypar_importable() -> bool:
    try:
        import kahypar  # noqa: F401
    except ImportError:
        return False
    return True


def kahypar_profile(objective: str = "cut") -> str | None:
    """The KaHyPar configuration file to split with, or None for the built-in partitioner.

    ``EINOPT_KAHYPAR_PROFILE`` names a profile to use instead of einopt's (for both
    objectives), or is ``none`` / ``0`` to never use KaHyPar. Otherwise, when
    ``kahypar`` imports, the profile shipped with einopt for ``objective`` (``"cut"``
    or ``"km1"``: they differ on splits into more than two blocks).
    """
    env = os.environ.get("EINOPT_KAHYPAR_PROFILE", "").strip()
    if env.lower() in OPT_OUT or not _kahypar_importable():
        return None
    if env:
        return env if os.path.isfile(env) else None
    return str(Path(__file__).with_name(_PROFILES[objective]))


def kahypar_partition(num_nodes: int, pins: Sequence[Sequence[int]], ew: Sequence[int],
                      parts: int, imbalance: float, seed: int, profile: str) -> list[int]:
    """Block of each node of a ``parts``-way partition by KaHyPar with ``profile``.

    ``pins`` are the nodes of each hyperedge (each with at least two) and ``ew`` their
    positive integer weights.
    """
    import kahypar

    if not pins:  # KaHyPar needs a hyperedge: deal the nodes out in turn
        return [v % parts for v in range(num_nodes)]
    index = [0]
    flat: list[int] = []
    for p in pins:
        flat += p
        index.append(len(flat))
    graph = kahypar.Hypergraph(num_nodes, len(pins), index, flat, parts, list(ew), [])
    context = kahypar.Context()  # a used context keeps state: one per call
    context.loadINIconfiguration(profile)
    context.setK(parts)
    context.setEpsilon(max(imbalance, 0.001))
    context.setSeed(seed)
    context.suppressOutput(True)
    kahypar.partition(graph, context)
    return [graph.blockID(v) for v in range(num_nodes)]


def _local_hypergraph(nodes: Sequence[int], edges_of: Sequence[Sequence[int]],
                      weight: Sequence[float]) -> tuple[list[list[int]], list[int]]:
    """Hyperedges (local pins) joining two or more of ``nodes``, with integer weights."""
    local = {v: j for j, v in enumerate(nodes)}
    pins: dict[int, list[int]] = {}
    for v in nodes:
        for e in edges_of[v]:
            pins.setdefault(e, []).append(local[v])
    edges = [(e, p) for e, p in pins.items() if len(p) > 1]
    return [p for _, p in edges], [max(1, round(SCALE * weight[e])) for e, _ in edges]


def kahypar_bisect(nodes: Sequence[int], edges_of: Sequence[Sequence[int]],
                   weight: Sequence[float], imbalance: float, seed: int,
                   profile: str) -> set[int]:
    """One side of a bisection of ``nodes`` computed by KaHyPar with ``profile``."""
    pins, ew = _local_hypergraph(nodes, edges_of, weight)
    block = kahypar_partition(len(nodes), pins, ew, 2, imbalance, seed, profile)
    return {v for v, b in zip(nodes, block, strict=True) if b == 0}


def bisect(nodes: Sequence[int], edges_of: Sequence[Sequence[int]], weight: Sequence[float],
           imbalance: float, rng: random.Random, passes: int = 4, starts: int = 2) -> set[int]:
    """One side of a balanced min-cut bisection of ``nodes`` by the built-in partitioner.

    ``edges_of`` lists the hyperedges of each node, ``weight`` weighs each hyperedge,
    and no side exceeds half the nodes by more than ``imbalance`` (relative) or one
    node. ``passes`` is kept for compatibility (refinement stops when it stalls).
    """
    pins, ew = _local_hypergraph(nodes, edges_of, weight)
    block = builtin_partition(len(nodes), pins, ew, 2, imbalance, rng, starts)
    return {v for v, b in zip(nodes, block, strict=True) if b == 0}


def partition_tree(network: Network, imbalance: float = 0.1, cutoff: int = 6,
                   seed: int | None = None, objective: Objective = FLOPS,
                   weight_mode: str = "log", starts: int = 2, *, parts: int = 2,
                   parts_decay: float = 0.0, imbalance_decay: float = 0.0,
                   output_weight: float = 1.0, jitter: float = 0.0, absorb: bool = True,
                   kahypar_objective: str = "cut", partitioner: str = "auto",
                   bisect_top: bool = False, deadline: float | None = None
                   ) -> ContractionTree:
    """Tree by recursive partitioning of the tensors.

    Scalars are multiplied together and into the smallest tensor first. Groups of
    fewer than :data:`KAHYPAR_MIN` tensors (or :data:`KAHYPAR_SHARE` of all) are split
    by the built-in partitioner even where KaHyPar is used, which the built-in
    partitioner matches there at a fraction of the cost; it spends a few more
    refinement cycles on the largest groups. No block of a split holds more than
    :data:`MAX_SHARE` of its group.

    Args:
        imbalance: balance tolerance per block: a split into ``k`` blocks lets a block
            exceed the average by the fraction ``k * imbalance``.
        cutoff: groups of at most this many tensors are not split but ordered (exactly
            up to :data:`EXACT` tensors, greedily beyond).
        weight_mode: ``"log"`` (an index weighs log2 of its size) or ``"const"``.
        starts: initial splits the built-in partitioner tries per bisection.
        parts: blocks per split of the whole network; a group of a fraction ``s`` of
            the tensors is split into ``max(2, int(parts * s**parts_decay))`` blocks.
        imbalance_decay: with ``d >= 0`` the imbalance of a group of fraction ``s`` is
            ``imbalance * s**d`` (tighter deeper down); with ``d < 0`` it is
            ``1 - s**-d * (1 - imbalance)`` (looser deeper down).
        output_weight: factor on the weight of output indices (0: they do not hold
            tensors together; they are never summed, so cutting them costs less).
        jitter: with log weights, each index size is multiplied by ``1 + jitter * x``,
            ``x`` exponential, for diverse trees from one set of options.
        absorb: fold each tensor whose indices are a subset of another's into it first.
        kahypar_objective: ``"cut"`` or ``"km1"`` (connectivity), where KaHyPar splits.
        bisect_top: split the whole network in two, whatever ``parts`` (then groups as
            ``parts`` says): a first split into many blocks leaves each with many open
            indices, and merging those blocks is often the costliest step of the tree.
        partitioner: one of :data:`PARTITIONERS`.
        deadline: a ``time.perf_counter()`` value; :class:`OutOfTime` is raised at the
            first split after it.
    """
    if partitioner not in PARTITIONERS:
        raise ValueError(f"unknown partitioner {partitioner!r}; known: "
                         f"{', '.join(PARTITIONERS)}")
    n = network.num_tensors
    if n <= 1:
        return ContractionTree(n, ())
    rng = random.Random(seed)
    profile = None
    if partitioner != "builtin":
        profile = kahypar_profile(kahypar_objective)
        if profile is None and partitioner == "kahypar":
            raise ValueError("partitioner='kahypar' needs the kahypar package and a profile "
                             "(EINOPT_KAHYPAR_PROFILE opts out, or names no file)")
    red = reduced(network, absorb)
    m = len(red.hosts)
    log = weight_mode == "log"
    weight = []
    for i, w in enumerate(red.log if log else [1.0] * network.num_indices):
        if jitter and log:
            w += math.log2(1.0 + jitter * rng.expovariate(1.0))
        if red.is_out[i]:
            w *= output_weight
        weight.append(w)
    terms = red.terms
    kahypar_min = max(KAHYPAR_MIN, KAHYPAR_SHARE * m)

    def split(group: list[int], counts: dict[int, int]) -> list[list[int]]:
        if deadline is not None and time.perf_counter() > deadline:
            raise OutOfTime(f"partition tree stopped at a group of {len(group)} tensors")
        s = len(group) / m
        k = min(len(group), max(2, int(parts * s**parts_decay)))
        if bisect_top and len(group) == m:
            k = 2
        if imbalance_decay >= 0:
            eps = k * imbalance * s**imbalance_decay
        else:
            eps = k * (1 - s**-imbalance_decay * (1 - imbalance))
        eps = min(eps, k * MAX_SHARE - 1)
        local = {v: j for j, v in enumerate(group)}
        pins: dict[int, list[int]] = {e: [] for e, c in counts.items()
                                      if c > 1 and weight[e] > 0}
        for v in group:
            for e in terms[v]:
                p = pins.get(e)
                if p is not None:
                    p.append(local[v])
        edge_pins = list(pins.values())
        ew = [max(1, round(SCALE * weight[e])) for e in pins]
        if profile is not None and len(group) >= kahypar_min:
            block = kahypar_partition(len(group), edge_pins, ew, k, eps,
                                      rng.randrange(2**31), profile)
        else:  # more effort on the top splits, which decide most of the cost
            vcycles = 2 if s >= 0.25 else 1 if s >= 1 / 16 else 0
            block = builtin_partition(len(group), edge_pins, ew, k, eps, rng, starts,
                                      vcycles=vcycles)
        blocks: dict[int, list[int]] = {}
        for v, b in zip(group, block, strict=True):
            blocks.setdefault(b, []).append(v)
        return list(blocks.values())

    builder = Builder(red, objective, EXACT, EXACT_MERGE)
    builder.build(cutoff, split)
    return ContractionTree(n, tuple(builder.merges))


#: The options of a sampled search's first partition tree, every key of
#: :func:`partition_params` set: bisections of low imbalance with log-size edge weights.
#: Where a network is so large that one or two trees fit the budget (10,000 tensors at
#: 5 s), the first tree decides the result, and a random draw (imbalance up to 0.3)
#: gave 10^640-10^780 flops on a 10,000-tensor random regular network where these give
#: 10^605-10^620.
PARTITION_FIRST: dict[str, float] = {
    "imbalance": 0.02, "imbalance_decay": 0.0, "parts": 2.0, "parts_decay": 0.0,
    "cutoff": 6.0, "log_weights": 1.0, "jitter": 0.0, "output_weight": 1.0, "km1": 0.0,
    "absorb": 1.0, "starts": 2.0, "bisect_top": 0.0}


def partition_params(rng: random.Random, near: dict[str, float] | None = None
                     ) -> dict[str, float]:
    """Random options of :func:`partition_tree_from`: explored, or perturbed from ``near``."""
    if near is None:
        return {"imbalance": math.exp(rng.uniform(math.log(0.005), math.log(0.3))),
                "imbalance_decay": rng.uniform(-1.0, 3.0),
                "parts": float(rng.randint(2, 16)),
                "parts_decay": rng.uniform(0.0, 1.0),
                "cutoff": float(rng.randint(2, 32)),
                "log_weights": float(rng.random() < 0.5),
                "jitter": math.exp(rng.uniform(math.log(0.01), 0.0)),
                "output_weight": rng.choice((0.0, 1.0)),
                "km1": float(rng.random() < 0.25),
                "absorb": float(rng.random() < 0.7),
                "starts": float(rng.choice((1, 2, 4))),
                "bisect_top": float(rng.random() < 0.5)}
    p = dict(near)
    p["imbalance"] = min(0.5, max(0.002, p["imbalance"] * math.exp(rng.gauss(0, 0.3))))
    p["imbalance_decay"] = min(3.0, max(-1.0, p["imbalance_decay"] + rng.gauss(0, 0.3)))
    if rng.random() < 0.3:
        p["parts"] = float(min(16, max(2, int(p["parts"]) + rng.choice((-1, 1)))))
    p["parts_decay"] = min(1.0, max(0.0, p["parts_decay"] + rng.gauss(0, 0.1)))
    p["cutoff"] = float(min(40, max(2, int(p["cutoff"]) + rng.choice((-2, -1, 0, 0, 1, 2)))))
    p["jitter"] = min(1.0, max(1e-3, p["jitter"] * math.exp(rng.gauss(0, 0.5))))
    if rng.random() < 0.2:
        p["starts"] = float(rng.choice((1, 2, 4)))
    for key in ("log_weights", "output_weight", "km1", "absorb", "bisect_top"):
        if rng.random() < 0.1:
            p[key] = 1.0 - p[key]
    return p


def partition_tree_from(network: Network, params: dict[str, Any], seed: int | None = None,
                        objective: Objective = FLOPS, deadline: float | None = None
                        ) -> ContractionTree:
    """:func:`partition_tree` with options from :func:`partition_params` (any may be left
    out; ``partitioner`` may be among them)."""
    return partition_tree(
        network, imbalance=float(params.get("imbalance", 0.1)),
        cutoff=int(params.get("cutoff", 6)), seed=seed, objective=objective,
        starts=int(params.get("starts", 2)),
        weight_mode="log" if params.get("log_weights", 1.0) else "const",
        parts=int(params.get("parts", 2)), parts_decay=float(params.get("parts_decay", 0.0)),
        imbalance_decay=float(params.get("imbalance_decay", 0.0)),
        output_weight=float(params.get("output_weight", 1.0)),
        jitter=float(params.get("jitter", 0.0)), absorb=bool(params.get("absorb", 1.0)),
        kahypar_objective="km1" if params.get("km1", 0.0) else "cut",
        partitioner=str(params.get("partitioner", "auto")),
        bisect_top=bool(params.get("bisect_top", 0.0)), deadline=deadline)
