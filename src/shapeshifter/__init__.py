"""Shapeshifter: Transformers whose weight matrices are sums of Kronecker products of small factors."""

from shapeshifter.params import count_parameters
from shapeshifter.surgery import LayerSpec, ShapeshiftReport, parse_policy, shapeshift

__all__ = ["LayerSpec", "ShapeshiftReport", "count_parameters", "parse_policy", "shapeshift"]
