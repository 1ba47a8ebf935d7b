"""Drop-in names of other libraries on top of the api.

- :mod:`.contract`: opt_einsum's ``contract`` and ``contract_path``.
- :mod:`.expression`: opt_einsum's ``contract_expression``.
- :mod:`.numpy_path`: numpy's ``einsum_path`` (numpy's searches and report).
- :mod:`.path_optimizer`: ``PathOptimizer``, einopt's search as an opt_einsum path
  optimizer (for opt_einsum, jax and quimb).
- ``shared_intermediates`` (from :mod:`einopt.run.sharing`): opt_einsum's context in
  which contractions share their intermediates.
"""

from __future__ import annotations

from ..run.sharing import shared_intermediates as shared_intermediates
from .contract import PathInfo as PathInfo
from .contract import contract as contract
from .contract import contract_path as contract_path
from .expression import ContractExpression as ContractExpression
from .expression import contract_expression as contract_expression
from .numpy_path import einsum_path as einsum_path
from .path_optimizer import PathOptimizer as PathOptimizer

__all__ = ["ContractExpression", "PathInfo", "PathOptimizer", "contract", "contract_expression",
           "contract_path", "einsum_path", "shared_intermediates"]
