"""`KroneckerEmbedding`: an embedding table stored as a cropped sum of Kronecker products (word2ketXS).

`FactoredEmbedding` is what every factorized table shares (lookup paths, padding row, `project`);
`LowRankEmbedding` (`shapeshifter.nn.lowrank`) is the other kind. `TiedOutput` is the output projection
tied to either.
"""

from __future__ import annotations

from typing import Any, Self

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .factors import FactoredMatrix, FactorizedModule, KroneckerMatrix, Path, ReadOnlyWeight, no_autocast
from .projection import dense_source, project_into
from .shapes import KroneckerShape, ShapeSpec


def check_padding_idx(padding_idx: int | None, num_embeddings: int) -> int | None:
    """``padding_idx`` made non-negative, as `nn.Embedding` does; ValueError when outside the table."""
    if padding_idx is None:
        return None
    if padding_idx < 0:
        padding_idx += num_embeddings
    if not 0 <= padding_idx < num_embeddings:
        raise ValueError(f"padding_idx {padding_idx} is outside [0, {num_embeddings})")
    return padding_idx


class FactoredEmbedding(FactorizedModule):
    """Lookup of rows of the (num_embeddings, embedding_dim) table E of a `FactoredMatrix`.

    Rows are gathered from the factors, so the table is never materialized during training (unless
    building it once is cheaper for this many tokens). `project` computes ``h @ E.T`` through the same
    factors, which makes the module usable as a tied output projection. The ``padding_idx`` row (the
    matrix's ``zero_row``) is zero everywhere (lookups, `project`, `dense_weight`) and lookups of it send
    no gradient to the factors.

    Shape:
        integer index of any shape ``(*)``, output ``(*, embedding_dim)``.
    """

    def __init__(self, matrix: FactoredMatrix, init_std: float | None = None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = matrix.rows, matrix.cols
        self.padding_idx = matrix.zero_row
        self.matrix = matrix
        self.reset_parameters(init_std)

    @torch.no_grad()
    def reset_parameters(self, init_std: float | None = None, generator: torch.Generator | None = None) -> None:
        """Init the table's entries with std ``init_std``; default 1.0 matches `nn.Embedding` (N(0, 1))."""
        self.matrix.init_factors(1.0 if init_std is None else init_std, generator)

    def dense_weight(self) -> Tensor:
        """The ``(num_embeddings, embedding_dim)`` table, materialized, padding row zero."""
        return self.matrix.dense_weight()

    def choose_path(self, tokens: int) -> str:
        """Gather rows from the factors, or build the table once and index it, whichever costs less."""
        return self.matrix.choose_gather_path(tokens)

    def forward(self, index: Tensor) -> Tensor:
        if index.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"{type(self).__name__} expects integer indices, got {index.dtype}")
        # `nn.Embedding` is exact and keeps its table's dtype under autocast; so do the gathers here
        with no_autocast(index.device):
            return self._lookup(index)

    def _lookup(self, index: Tensor) -> Tensor:
        if not torch.is_grad_enabled():
            return F.embedding(index, self.matrix.cached_weight())
        if self.choose_path(index.numel()) == "dense":
            return F.embedding(index, self.matrix.dense_weight())
        out = self.matrix.gather_rows(index)
        if self.padding_idx is not None:
            out = out * (index != self.padding_idx).unsqueeze(-1).to(out.dtype)
        return out

    def project(self, h: Tensor, bias: Tensor | None = None) -> Tensor:
        """Logits ``h @ E.T (+ bias)`` for ``h`` of shape ``(..., embedding_dim)``, through the factors."""
        return self.matrix.matmul_t(h, bias)

    @classmethod
    def from_dense(cls, weight_or_embedding: Tensor | nn.Embedding, *args: Any, **kwargs: Any) -> tuple[Self, float]:
        """A ``cls(num, dim, *args, **kwargs)`` fitted to a trained table (padding_idx kept); (layer, error)."""
        table = isinstance(weight_or_embedding, nn.Embedding)
        if table:
            kwargs.setdefault("padding_idx", weight_or_embedding.padding_idx)
        weight = dense_source(weight_or_embedding.weight if table else weight_or_embedding, "table")
        layer = cls(weight.shape[0], weight.shape[1], *args, device=weight.device, dtype=weight.dtype, **kwargs)
        return layer, project_into(layer.matrix, weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, padding_idx={self.padding_idx}"


class KroneckerEmbedding(FactoredEmbedding):
    """Lookup of rows of ``E = crop(sum_k F_1k ⊗ ... ⊗ F_Nk)`` of shape (num_embeddings, embedding_dim).

    A row is built from one row of each factor (the mixed-radix digits of its index); see
    `FactoredEmbedding` for the paths, `project` and the padding row.

    Args:
        num_embeddings, embedding_dim: the table being replaced.
        rank, order, shape: as for `KroneckerLinear`.
        padding_idx: index whose row is pinned to zero.
        init_std: std of the table's entries at init; default 1.0 matches `nn.Embedding` (N(0, 1)).
        path: execution path of lookups and `project` (see `FactoredMatrix`).
    """

    matrix: KroneckerMatrix

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        rank: int,
        order: int = 2,
        shape: ShapeSpec = "balanced",
        padding_idx: int | None = None,
        init_std: float | None = None,
        path: Path = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        padding_idx = check_padding_idx(padding_idx, num_embeddings)
        matrix = KroneckerMatrix(num_embeddings, embedding_dim, rank, order, shape, path, device, dtype,
                                 zero_row=padding_idx)
        super().__init__(matrix, init_std)

    @property
    def kshape(self) -> KroneckerShape:
        return self.matrix.kshape

    @classmethod
    def from_dense(
        cls,
        weight_or_embedding: Tensor | nn.Embedding,
        rank: int,
        order: int = 2,
        shape: ShapeSpec = "balanced",
        **kwargs: Any,
    ) -> tuple[KroneckerEmbedding, float]:
        """Best rank-``rank`` Kronecker-sum approximation of a trained table; returns (layer, rel. error)."""
        return super().from_dense(weight_or_embedding, rank, order, shape, **kwargs)


class TiedOutput(ReadOnlyWeight):
    """Output projection tied to a factorized embedding (either kind): ``logits = h @ E.T (+ b)``.

    Holds the embedding by reference, so the tie survives `state_dict` round trips and the factors are
    counted once. ``weight`` is the embedding's (read-only) table, as for a tied `nn.Linear`.
    """

    def __init__(self, embedding: FactoredEmbedding, bias: Tensor | None = None) -> None:
        super().__init__()
        self.embedding = embedding
        self.bias = nn.Parameter(bias.detach().clone()) if bias is not None else None
        self.in_features, self.out_features = embedding.embedding_dim, embedding.num_embeddings

    def forward(self, h: Tensor) -> Tensor:
        return self.embedding.project(h, self.bias)

    def dense_weight(self) -> Tensor:
        return self.embedding.dense_weight()

    def _read_weight(self) -> Tensor:
        return self.embedding.weight

    def extra_repr(self) -> str:
        return f"tied to embedding {self.out_features}x{self.in_features}, bias={self.bias is not None}"


TiedKroneckerOutput = TiedOutput  # the name before low-rank embeddings existed; old imports and pickles
