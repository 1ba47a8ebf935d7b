"""Convolutions as einsums for torch: functionals, layers and factored convolutions.

Needs torch (the ``torch`` extra). ``einopt.nn.functional.conv2d`` and friends equal
``torch.nn.functional``'s; ``einopt.nn.Conv2d`` is ``torch.nn.Conv2d`` run as an einsum;
``einopt.nn.FactoredConv2d`` is a convolution whose kernel is a tensor network;
``einopt.nn.enumerate_decompositions`` lists every such network of a kernel (the
Einconv class) and prices each for a layer's sizes.
"""

from . import functional as functional
from .decompositions import Decomposition as Decomposition
from .decompositions import Decompositions as Decompositions
from .decompositions import enumerate_decompositions as enumerate_decompositions
from .einconv import Priced as Priced
from .einconv import Pricing as Pricing
from .einconv import price as price
from .modules import PRESETS as PRESETS
from .modules import Conv1d as Conv1d
from .modules import Conv2d as Conv2d
from .modules import Conv3d as Conv3d
from .modules import ConvTranspose1d as ConvTranspose1d
from .modules import ConvTranspose2d as ConvTranspose2d
from .modules import ConvTranspose3d as ConvTranspose3d
from .modules import EinsumLayer as EinsumLayer
from .modules import FactoredConv1d as FactoredConv1d
from .modules import FactoredConv2d as FactoredConv2d
from .modules import FactoredConv3d as FactoredConv3d
from .modules import factored_spec as factored_spec

__all__ = ["PRESETS", "EinsumLayer", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
           "ConvTranspose2d", "ConvTranspose3d", "FactoredConv1d", "FactoredConv2d",
           "FactoredConv3d", "factored_spec", "functional", "enumerate_decompositions",
           "Decomposition", "Decompositions", "price", "Priced", "Pricing"]
