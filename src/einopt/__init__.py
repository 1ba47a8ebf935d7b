"""einopt: an einsum optimizer is all you need.

Write a computation as a sum of products over named indices; einopt finds a cheap
contraction tree and runs every step as one fast kernel. ``einopt.einsum`` is a
drop-in for ``numpy.einsum`` and ``opt_einsum.contract``.
"""

from __future__ import annotations

from .api import Plan as Plan
from .api import clear_caches as clear_caches
from .api import einsum as einsum
from .api import plan as plan
from .autodiff import Derivative as Derivative
from .autodiff import hessian_trace_einsum as hessian_trace_einsum
from .autodiff import jacobian as jacobian
from .autodiff import jacobian_equation as jacobian_equation
from .autodiff import jvp as jvp
from .autodiff import jvp_equation as jvp_equation
from .autodiff import vjp as vjp
from .autodiff import vjp_equation as vjp_equation
from .compat import ContractExpression as ContractExpression
from .compat import PathInfo as PathInfo
from .compat import PathOptimizer as PathOptimizer
from .compat import contract as contract
from .compat import contract_expression as contract_expression
from .compat import contract_path as contract_path
from .compat import einsum_path as einsum_path
from .compat import shared_intermediates as shared_intermediates
from .errors import EinsumError as EinsumError
from .errors import OperandTypeError as OperandTypeError
from .errors import PathError as PathError
from .errors import ShapeError as ShapeError
from .errors import SubscriptError as SubscriptError
from .network import Network as Network
from .parse import Equation as Equation
from .plan import Step as Step
from .plan import StepKind as StepKind
from .structured import ConvPattern as ConvPattern
from .structured import Delta as Delta
from .structured import Selector as Selector
from .structured import conv_pattern as conv_pattern
from .structured import delta as delta
from .structured import one_hot as one_hot
from .structured.switch import Switch as Switch
from .structured.switch import switch as switch
from .tree import ContractionTree as ContractionTree

__version__ = "0.1.0"

__all__ = [
    "ContractExpression",
    "Derivative",
    "ContractionTree",
    "ConvPattern",
    "Delta",
    "EinsumError",
    "Equation",
    "Network",
    "OperandTypeError",
    "PathError",
    "PathInfo",
    "PathOptimizer",
    "Plan",
    "Selector",
    "Switch",
    "ShapeError",
    "Step",
    "StepKind",
    "SubscriptError",
    "clear_caches",
    "contract",
    "contract_expression",
    "contract_path",
    "conv_pattern",
    "delta",
    "einsum",
    "einsum_path",
    "hessian_trace_einsum",
    "jacobian",
    "jacobian_equation",
    "jvp",
    "jvp_equation",
    "one_hot",
    "plan",
    "shared_intermediates",
    "switch",
    "vjp",
    "vjp_equation",
]
