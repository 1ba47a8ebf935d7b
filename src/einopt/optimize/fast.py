"""The optional compiled accelerator: ``pip install einopt[fast]`` (the ``cotengrust`` package).

cotengrust implements, in Rust, a randomized greedy contraction order and the exact
dynamic program over connected subsets, the two inner loops of einopt's searches. Where
it is installed, ``hyper`` draws its greedy trees from it (tens of times faster than
Python, so it samples more trees within its budget), and ``optimal`` uses it for
networks past the pure-Python search's reach. ``auto`` does not: its floor is
opt_einsum's greedy tree itself (:mod:`.reference`), which the compiled greedy does not
reproduce (costlier on 148 of 300 random 40-tensor hypergraphs, cheaper on the rest).
Every tree it returns is priced by einopt's own cost model and kept only where it is
cheaper, so results never get worse with it; without it every search runs in Python.

``EINOPT_FAST=0`` in the environment turns it off (for comparisons and tests).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from ..network import Network
from ..tree import ContractionTree
from .objective import Objective

__all__ = ["accelerator", "Compiled", "MAX_COSTMOD"]

MAX_COSTMOD = 1.0


@lru_cache(maxsize=1)
def _module() -> Any:
    try:
        import cotengrust
    except ImportError:
        return None
    return cotengrust


def accelerator() -> Any:
    """The cotengrust module, or None where it is not installed or turned off."""
    if os.environ.get("EINOPT_FAST", "1").lower() in ("0", "false", "no", "off"):
        return None
    return _module()


def _char(i: int) -> str:
    """Index id ``i`` as the one-character label cotengrust reads (surrogates skipped)."""
    c = 0x100 + i
    return chr(c if c < 0xD800 else c + 0x800)


class Compiled:
    """One network in cotengrust's input format, built once and searched many times."""

    def __init__(self, network: Network, module: Any) -> None:
        self.network = network
        self.module = module
        self.inputs = [[_char(i) for i in term] for term in network.terms]
        self.output = [_char(i) for i in network.output if network.output_mask >> i & 1]
        held = {i for term in network.terms for i in term}
        self.sizes = {_char(i): float(network.sizes[i]) for i in held}

    @staticmethod
    def _safe(costmod: float) -> float:
        """Cost modifiers above 1 can make cotengrust's log-space scores overflow on
        networks of huge intermediates (the process aborts): they are capped at 1."""
        return min(max(costmod, 0.01), MAX_COSTMOD)

    def _tree(self, ssa: list[list[int]]) -> ContractionTree:
        return ContractionTree.from_ssa_path(self.network.num_tensors, ssa)

    def greedy(self, costmod: float = 1.0, temperature: float = 0.0,
               seed: int | None = None) -> ContractionTree:
        """A (randomized) greedy tree by ``size(ab)/c - c*(size(a) + size(b))``, ``c`` the
        cost modifier, with Boltzmann noise of ``temperature`` on the log scores."""
        ssa = self.module.optimize_greedy(self.inputs, self.output, self.sizes,
                                          costmod=self._safe(costmod), temperature=temperature,
                                          seed=seed, simplify=True, use_ssa=True)
        return self._tree(ssa)

    def sample(self, trials: int, costmod: tuple[float, float] = (0.1, 1.0),
               temperature: tuple[float, float] = (0.001, 1.0), seed: int | None = None
               ) -> tuple[ContractionTree, float]:
        """The cheapest of ``trials`` randomized greedy trees (cost modifier uniform and
        temperature log-uniform in the ranges), and its log10 flops (float32: to rank)."""
        ssa, log10_flops = self.module.optimize_random_greedy_track_flops(
            self.inputs, self.output, self.sizes, ntrials=trials,
            costmod=(self._safe(costmod[0]), self._safe(costmod[1])),
            temperature=temperature, seed=seed, simplify=True, use_ssa=True)
        return self._tree(ssa), float(log10_flops)

    def optimal(self, objective: Objective, outer: bool = True) -> ContractionTree | None:
        """The exact optimum over connected subsets (and outer products, with ``outer``),
        or None for an objective cotengrust does not minimize."""
        name = objective.name
        if name == "combo" and objective.factor != 64:  # cotengrust's fixed weight
            return None
        ssa = self.module.optimize_optimal(self.inputs, self.output, self.sizes,
                                           minimize=name, search_outer=outer,
                                           simplify=True, use_ssa=True)
        return self._tree(ssa)
