"""Low-rank layers, ``W = U @ V``: the baseline a Kronecker factorization is compared against.

`LowRankMatrix` is a `FactoredMatrix` with two factors, U of shape ``(rows, rank)`` and V of shape
``(rank, cols)``, so the layers built on it go through the same surgery, parameter accounting, tied output
and projection as the Kronecker ones. `LowRankLinear` is a drop-in `nn.Linear`; `LowRankEmbedding` is
ALBERT's factorized embedding (a ``V x e`` table times an ``e x d`` projection).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .embedding import FactoredEmbedding, check_padding_idx
from .factors import FactoredMatrix, Path
from .linear import FactoredLinear
from .projection import lowrank_factors


class LowRankMatrix(FactoredMatrix):
    """A ``rows x cols`` matrix ``W = U @ V`` with ``factors = [U (rows x rank), V (rank x cols)]``.

    The factored path computes ``x @ W.T`` as ``(x @ V.T) @ U.T``: ``batch * rank * (rows + cols)``
    multiply-adds against ``batch * rows * cols`` for a materialized W, so it is the cheaper one whenever
    ``rank < rows * cols / (rows + cols)`` (always, when the layer has fewer parameters than the dense
    one). See `FactoredMatrix` for the paths, the inference cache and ``zero_row``.
    """

    kind: ClassVar[str] = "lowrank"
    order = None  # not a Kronecker sum

    def __init__(
        self,
        rows: int,
        cols: int,
        rank: int,
        path: Path = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        zero_row: int | None = None,
    ) -> None:
        super().__init__(rows, cols, rank, path, zero_row)
        self.factors = nn.ParameterList([
            nn.Parameter(torch.empty(rows, rank, device=device, dtype=dtype)),  # U
            nn.Parameter(torch.empty(rank, cols, device=device, dtype=dtype)),  # V
        ])

    def _materialize(self) -> Tensor:
        u, v = self.factors
        return u @ v

    @classmethod
    def materialize_stacked(cls, matrices: Sequence[FactoredMatrix]) -> Tensor:
        """One batched GEMM: ``stack(U) @ stack(V)``, ``(G, rows, cols)``."""
        return torch.bmm(torch.stack([m.factors[0] for m in matrices]), torch.stack([m.factors[1] for m in matrices]))

    def _factored_matmul_t(self, x: Tensor) -> Tensor:
        u, v = self.factors
        return F.linear(F.linear(x, v), u)  # (B, cols) -> (B, rank) -> (B, rows)

    def gather_rows(self, index: Tensor) -> Tensor:
        u, v = self.factors
        return F.embedding(index, u) @ v  # (*, rank) @ (rank, cols)

    def path_costs(self, batch: int) -> tuple[float, float]:
        factored = batch * self.rank * (self.rows + self.cols)
        dense = self.rank * self.rows * self.cols + batch * self.rows * self.cols  # build W, then one GEMM
        return factored, dense

    def gather_costs(self, tokens: int) -> tuple[float, float]:
        return tokens * self.rank * self.cols, self.rows * self.rank * self.cols

    def best_factors(self, weight: Tensor) -> list[Tensor]:
        return lowrank_factors(weight, self.rank)

    def describe(self) -> str:
        return f"{self.rows}x{self.rank} · {self.rank}x{self.cols}"


class LowRankLinear(FactoredLinear):
    """``y = x @ (U @ V).T + b``, a drop-in `nn.Linear` of rank ``rank``.

    Args:
        in_features, out_features: the dense layer being replaced.
        rank: inner dimension of ``U (out x rank) @ V (rank x in)``.
        bias: learn an additive bias, as `nn.Linear`.
        init_std: std of the entries of W at init; default matches `nn.Linear` (1/sqrt(3 * in)).
        path: ``"auto"`` (default), ``"factored"`` or ``"dense"``; see `FactoredMatrix`.
    """

    matrix: LowRankMatrix

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        bias: bool = True,
        init_std: float | None = None,
        path: Path = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(LowRankMatrix(out_features, in_features, rank, path, device, dtype), bias, init_std,
                         device, dtype)

    @classmethod
    def from_dense(cls, weight_or_linear: Tensor | nn.Linear, rank: int, **kwargs: Any) -> tuple[LowRankLinear, float]:
        """Best rank-``rank`` approximation of a trained weight (truncated SVD); returns (layer, rel. error)."""
        return super().from_dense(weight_or_linear, rank, **kwargs)


class LowRankEmbedding(FactoredEmbedding):
    """ALBERT's factorized embedding: rows of ``E = U @ V``, a ``num x rank`` table times ``rank x dim``.

    A lookup gathers rows of U and multiplies them by V; `project` (tied output) is ``(h @ V.T) @ U.T``.
    See `FactoredEmbedding` for the padding row.

    Args:
        num_embeddings, embedding_dim: the table being replaced.
        rank: the inner embedding size (ALBERT's E).
        padding_idx: index whose row is pinned to zero.
        init_std: std of the table's entries at init; default 1.0 matches `nn.Embedding` (N(0, 1)).
        path: execution path of lookups and `project` (see `FactoredMatrix`).
    """

    matrix: LowRankMatrix

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        rank: int,
        padding_idx: int | None = None,
        init_std: float | None = None,
        path: Path = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        padding_idx = check_padding_idx(padding_idx, num_embeddings)
        matrix = LowRankMatrix(num_embeddings, embedding_dim, rank, path, device, dtype, zero_row=padding_idx)
        super().__init__(matrix, init_std)

    @classmethod
    def from_dense(
        cls, weight_or_embedding: Tensor | nn.Embedding, rank: int, **kwargs: Any
    ) -> tuple[LowRankEmbedding, float]:
        """Best rank-``rank`` approximation of a trained table (truncated SVD); returns (layer, rel. error)."""
        return super().from_dense(weight_or_embedding, rank, **kwargs)
