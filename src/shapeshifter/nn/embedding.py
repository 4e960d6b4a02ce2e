"""`KroneckerEmbedding`: an embedding table stored as a cropped sum of Kronecker products (word2ketXS)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .factors import FactorizedModule, KroneckerMatrix, Path
from .functional import kron_rows
from .shapes import ShapeSpec


class KroneckerEmbedding(FactorizedModule):
    """Lookup of rows of ``E = crop(sum_k F_1k ⊗ ... ⊗ F_Nk)`` of shape (num_embeddings, embedding_dim).

    A row is built from one row of each factor (the mixed-radix digits of its index), so the table is
    never materialized during training. `project` computes ``h @ E.T`` through the same factors, which
    makes the module usable as a tied output projection. The ``padding_idx`` row is zero everywhere
    (lookups, `project`, `dense_weight`) and lookups of it send no gradient to the factors.

    Args:
        num_embeddings, embedding_dim: the table being replaced.
        rank, order, shape: as for `KroneckerLinear`.
        padding_idx: index whose row is pinned to zero.
        init_std: std of the table's entries at init; default 1.0 matches `nn.Embedding` (N(0, 1)).
        path: execution path of `project` (see `KroneckerMatrix`).
    """

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
        super().__init__()
        if padding_idx is not None:
            if padding_idx < 0:
                padding_idx += num_embeddings
            if not 0 <= padding_idx < num_embeddings:
                raise ValueError(f"padding_idx {padding_idx} is outside [0, {num_embeddings})")
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.matrix = KroneckerMatrix(num_embeddings, embedding_dim, rank, order, shape, path, device, dtype,
                                      zero_row=padding_idx)
        self.reset_parameters(init_std)

    @torch.no_grad()
    def reset_parameters(self, init_std: float | None = None, generator: torch.Generator | None = None) -> None:
        self.matrix.init_factors(1.0 if init_std is None else init_std, generator)

    def dense_weight(self) -> Tensor:
        """The ``(num_embeddings, embedding_dim)`` table, materialized, padding row zero."""
        return self.matrix.dense_weight()

    def choose_path(self, tokens: int) -> str:
        """Gather rows from the factors, or build the table once and index it, whichever costs less.

        Gathering costs a batched GEMM of ``tokens * rank * dim`` (small matrices, about 4x less efficient
        than one large GEMM); building costs one GEMM of ``rows * rank * dim`` plus writing the table.
        """
        if self.matrix.path != "auto":
            return self.matrix.path
        ks = self.matrix.kshape
        gather = 4 * tokens * self.rank * ks.padded_in
        build = ks.padded_out * ks.padded_in * (self.rank + self.matrix.copy_cost)
        return "factored" if gather < build else "dense"

    def forward(self, index: Tensor) -> Tensor:
        if index.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"KroneckerEmbedding expects integer indices, got {index.dtype}")
        if not torch.is_grad_enabled():
            return F.embedding(index, self.matrix.cached_weight())
        if self.choose_path(index.numel()) == "dense":
            return F.embedding(index, self.matrix.dense_weight())
        out = kron_rows(index, list(self.matrix.factors))
        if self.matrix.kshape.padded_in != self.embedding_dim:
            out = out[..., : self.embedding_dim]
        if self.padding_idx is not None:
            out = out * (index != self.padding_idx).unsqueeze(-1).to(out.dtype)
        return out

    def project(self, h: Tensor, bias: Tensor | None = None) -> Tensor:
        """Logits ``h @ E.T (+ bias)`` for ``h`` of shape ``(..., embedding_dim)``, through the factors."""
        return self.matrix.matmul_t(h, bias)

    @classmethod
    def from_dense(
        cls,
        weight_or_embedding: Tensor | nn.Embedding,
        rank: int,
        order: int = 2,
        shape: ShapeSpec = "balanced",
        **kwargs,
    ) -> tuple[KroneckerEmbedding, float]:
        """Best rank-``rank`` Kronecker-sum approximation of a trained table; returns (layer, rel. error)."""
        from .projection import dense_source, project_into

        table = isinstance(weight_or_embedding, nn.Embedding)
        if table:
            kwargs.setdefault("padding_idx", weight_or_embedding.padding_idx)
        weight = dense_source(weight_or_embedding.weight if table else weight_or_embedding, "table")
        layer = cls(weight.shape[0], weight.shape[1], rank, order, shape, device=weight.device,
                    dtype=weight.dtype, **kwargs)
        return layer, project_into(layer.matrix, weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, padding_idx={self.padding_idx}"


class TiedKroneckerOutput(nn.Module):
    """Output projection tied to a `KroneckerEmbedding`: ``logits = h @ E.T (+ b)``.

    Holds the embedding by reference, so the tie survives `state_dict` round trips and the factors are
    counted once.
    """

    def __init__(self, embedding: KroneckerEmbedding, bias: Tensor | None = None) -> None:
        super().__init__()
        self.embedding = embedding
        self.bias = nn.Parameter(bias.detach().clone()) if bias is not None else None
        self.in_features, self.out_features = embedding.embedding_dim, embedding.num_embeddings

    def forward(self, h: Tensor) -> Tensor:
        return self.embedding.project(h, self.bias)

    def dense_weight(self) -> Tensor:
        return self.embedding.dense_weight()

    def extra_repr(self) -> str:
        return f"tied to embedding {self.out_features}x{self.in_features}, bias={self.bias is not None}"
