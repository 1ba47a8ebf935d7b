"""Structured operands (deltas, convolution patterns, selectors) and the rewrite that
turns an einsum holding them into an ordinary einsum over views of its operands."""

from .operands import ConvPattern as ConvPattern
from .operands import Delta as Delta
from .operands import Selector as Selector
from .operands import Structured as Structured
from .operands import conv_pattern as conv_pattern
from .operands import delta as delta
from .operands import is_structured as is_structured
from .operands import one_hot as one_hot
from .rewrite import Rewrite as Rewrite
from .rewrite import rewrite as rewrite

__all__ = ["ConvPattern", "Delta", "Rewrite", "Selector", "Structured", "conv_pattern",
           "delta", "is_structured", "one_hot", "rewrite"]
