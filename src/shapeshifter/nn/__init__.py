"""Factorized layers: pure PyTorch, no framework imports."""

from .embedding import KroneckerEmbedding, TiedKroneckerOutput
from .factors import KroneckerMatrix
from .linear import KroneckerLinear
from .shapes import KroneckerShape, balanced_factors, exact_factors, resolve_shape

__all__ = [
    "KroneckerEmbedding",
    "KroneckerLinear",
    "KroneckerMatrix",
    "KroneckerShape",
    "TiedKroneckerOutput",
    "balanced_factors",
    "exact_factors",
    "resolve_shape",
]
