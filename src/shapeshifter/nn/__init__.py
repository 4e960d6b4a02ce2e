"""Factorized layers: pure PyTorch, no framework imports."""

from .attention import FactoredMultiheadAttention
from .embedding import FactoredEmbedding, KroneckerEmbedding, TiedKroneckerOutput, TiedOutput
from .factors import FactoredMatrix, KroneckerMatrix
from .linear import FactoredLinear, KroneckerLinear
from .lowrank import LowRankEmbedding, LowRankLinear, LowRankMatrix
from .shapes import KroneckerShape, balanced_factors, exact_factors, resolve_shape
from .stacked import StackedMatrix

__all__ = [
    "FactoredEmbedding",
    "FactoredLinear",
    "FactoredMatrix",
    "FactoredMultiheadAttention",
    "KroneckerEmbedding",
    "KroneckerLinear",
    "KroneckerMatrix",
    "KroneckerShape",
    "LowRankEmbedding",
    "LowRankLinear",
    "LowRankMatrix",
    "StackedMatrix",
    "TiedKroneckerOutput",
    "TiedOutput",
    "balanced_factors",
    "exact_factors",
    "resolve_shape",
]
