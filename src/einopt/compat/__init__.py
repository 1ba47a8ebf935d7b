"""Drop-in names of other libraries on top of the api.

- :mod:`.contract`: opt_einsum's ``contract``, ``contract_path``, ``contract_expression``.
"""

from __future__ import annotations

from .contract import ContractExpression as ContractExpression
from .contract import PathInfo as PathInfo
from .contract import contract as contract
from .contract import contract_expression as contract_expression
from .contract import contract_path as contract_path

__all__ = ["ContractExpression", "PathInfo", "contract", "contract_expression", "contract_path"]
