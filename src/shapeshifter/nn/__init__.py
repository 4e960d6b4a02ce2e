"""Factorized layers: pure PyTorch, no framework imports."""

from .embedding import FactoredEmbedding, KroneckerEmbedding, TiedKroneckerOutput, TiedOutput
from .factors import FactoredMatrix, KroneckerMatrix
from .linear import FactoredLinear, KroneckerLinear
from .lowrank import LowRankEmbedding, LowRankLinear, LowRankMatrix
from .shapes import KroneckerShape, balanced_factors, exact_factors, resolve_shape

__all__ = [
    "FactoredEmbedding",
    "FactoredLinear",
    "FactoredMatrix",
    "KroneckerEmbedding",
    "KroneckerLinear",
    "KroneckerMatrix",
    "KroneckerShape",
    "LowRankEmbedding",
    "LowRankLinear",
    "LowRankMatrix",
    "TiedKroneckerOutput",
    "TiedOutput",
    "balanced_factors",
    "exact_factors",
    "resolve_shape",
]
