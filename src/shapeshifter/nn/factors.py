"""`KroneckerMatrix`: the parameters shared by every factorized layer.

A layer holds ``factors``, N tensors of shape ``(rank, m_j, n_j)``, standing for the matrix
``W = crop(sum_k F_1k ⊗ ... ⊗ F_Nk)`` of shape ``(rows, cols)``. Linear layers and embeddings differ only
in how they read that matrix, so the factors, the shape bookkeeping, the init and `dense_weight()` live here.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .functional import factored_flops, kron_apply, kron_materialize, materialize_flops
from .shapes import KroneckerShape, ShapeSpec, resolve_shape

Path = Literal["auto", "factored", "dense"]

# Relative cost of one element written by a reshape/permute copy against one multiply-add inside a GEMM.
# The factored path copies its intermediates between small GEMMs; the dense path runs one large GEMM.
# Calibrated on the `make bench-layers` grid on a 2-core x86 CPU (161 linear points: the choice it makes is
# within 3.4% of the faster path on average); set `KroneckerMatrix.copy_cost` per machine or GPU.
COPY_COST = 48.0


def factor_std(target_std: float, rank: int, order: int) -> float:
    """Std of iid zero-mean factor entries that gives entries of W the std ``target_std``.

    An entry of W is a sum over ``rank`` terms, each a product of ``order`` independent entries, so
    ``Var(W_ij) = rank * s**(2 * order)``.
    """
    return (target_std**2 / rank) ** (1.0 / (2 * order))


class KroneckerMatrix(nn.Module):
    """A ``rows x cols`` matrix stored as a rank-``rank`` sum of order-``order`` Kronecker products.

    `matmul_t` computes ``x @ W.T`` along the cheaper of two exact paths: ``"factored"`` contracts the
    input with one factor per mode, ``"dense"`` materializes W and runs one matmul; ``"auto"`` picks per
    batch from a FLOP/memory estimate. With autograd off (inference) the materialized W is cached until a
    factor changes, so prediction costs what the dense layer costs.
    """

    copy_cost: float = COPY_COST

    def __init__(
        self,
        rows: int,
        cols: int,
        rank: int,
        order: int = 2,
        shape: ShapeSpec = "balanced",
        path: Path = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        zero_row: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank must be a positive integer, got {rank!r}")
        if path not in ("auto", "factored", "dense"):
            raise ValueError(f"path must be 'auto', 'factored' or 'dense', got {path!r}")
        self.path = path
        self.zero_row = zero_row  # a row pinned to zero (an embedding's padding_idx)
        self._cache: tuple[tuple, Tensor] | None = None
        self.rows, self.cols, self.rank = rows, cols, rank
        self.kshape: KroneckerShape = resolve_shape(rows, cols, order, shape)
        self.order = self.kshape.order
        self.factors = nn.ParameterList(
            nn.Parameter(torch.empty(rank, m, n, device=device, dtype=dtype))
            for m, n in zip(self.kshape.out_factors, self.kshape.in_factors, strict=True)
        )

    @torch.no_grad()
    def init_factors(self, target_std: float, generator: torch.Generator | None = None) -> None:
        """Draw factors so that entries of the represented matrix have std ``target_std``."""
        s = factor_std(target_std, self.rank, self.order)
        for f in self.factors:
            f.normal_(0.0, s, generator=generator)

    def full_weight(self) -> Tensor:
        """The padded ``prod(m_j) x prod(n_j)`` matrix (before cropping)."""
        return kron_materialize(list(self.factors))

    def dense_weight(self) -> Tensor:
        """The represented ``rows x cols`` matrix, materialized (differentiable)."""
        w = self.full_weight()[: self.rows, : self.cols]
        return w if self.zero_row is None else w * self._row_keep(w)[:, None]

    def _row_keep(self, like: Tensor) -> Tensor:
        """Mask of length `rows` zeroing `zero_row` (a product, so no gradient flows through that row)."""
        keep = torch.ones(self.rows, device=like.device, dtype=like.dtype)
        keep[self.zero_row] = 0
        return keep

    def choose_path(self, batch: int) -> Literal["factored", "dense"]:
        """The cheaper path for ``batch`` input rows, in GEMM multiply-add units (forward estimate)."""
        if self.path != "auto":
            return self.path
        ks = self.kshape
        m, n, r = ks.out_factors, ks.in_factors, self.rank
        dense = materialize_flops(m, n, r) + batch * self.rows * self.cols
        dense += self.copy_cost * ks.padded_out * ks.padded_in  # W is written once
        # the factored path writes an intermediate of batch * rank * prod(dims) after every mode
        dims, copied = list(n), 0
        for j in range(len(m)):
            dims[j] = m[j]
            copied += batch * r * math.prod(dims)
        factored = factored_flops(batch, m, n, r) + self.copy_cost * copied
        return "factored" if factored < dense else "dense"

    def cached_weight(self) -> Tensor:
        """Materialized W, detached, rebuilt only when a factor changed (in place or replaced)."""
        key = tuple((f._version, f.data_ptr()) for f in self.factors)
        cache = self._cache
        if cache is None or cache[0] != key:
            # A detached leaf flagged requires_grad: on torch 2.13's CPU build F.linear takes a ~3x slower
            # kernel for weights without requires_grad (measured in beam search); it is only ever used with
            # autograd off, so no graph is recorded and it never receives a gradient.
            cache = self._cache = (key, self.dense_weight().detach().requires_grad_(True))
        return cache[1]

    def matmul_t(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        """``x @ W.T (+ bias)`` for ``x`` of shape ``(..., cols)``; returns ``(..., rows)``."""
        if x.shape[-1] != self.cols:
            raise ValueError(f"expected input with last dim {self.cols}, got shape {tuple(x.shape)}")
        if not torch.is_grad_enabled():
            return F.linear(x, self.cached_weight(), bias)
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.cols)
        if self.choose_path(x2.shape[0]) == "dense":
            return F.linear(x, self.dense_weight(), bias)
        pad = self.kshape.padded_in - self.cols
        if pad:
            x2 = F.pad(x2, (0, pad))
        y = kron_apply(x2, list(self.factors))
        if self.kshape.padded_out != self.rows:
            y = y[:, : self.rows]
        if self.zero_row is not None:
            y = y * self._row_keep(y)
        if bias is not None:
            y = y + bias
        return y.reshape(*lead, self.rows)

    @property
    def factor_params(self) -> int:
        return self.rank * self.kshape.params_per_rank()

    def compression(self) -> float:
        """Dense entries per stored factor entry."""
        return self.rows * self.cols / self.factor_params

    def extra_repr(self) -> str:
        pad = ""
        if (self.kshape.padded_out, self.kshape.padded_in) != (self.rows, self.cols):
            pad = f" (padded {self.kshape.padded_out}x{self.kshape.padded_in})"
        return (
            f"{self.rows}x{self.cols}{pad}, rank={self.rank}, order={self.order}, factors={self.kshape}, "
            f"params={self.factor_params:,}, compression={self.compression():.1f}x, path={self.path}"
        )


class FactorizedModule(nn.Module):
    """Base of the layers that read a `KroneckerMatrix` held as ``self.matrix``: the shared accessors."""

    matrix: KroneckerMatrix

    @property
    def factors(self) -> nn.ParameterList:
        """The N factor tensors, the j-th of shape ``(rank, m_j, n_j)``."""
        return self.matrix.factors

    @property
    def rank(self) -> int:
        return self.matrix.rank

    @property
    def order(self) -> int:
        return self.matrix.order

    @property
    def kshape(self) -> KroneckerShape:
        return self.matrix.kshape


def default_linear_std(in_features: int) -> float:
    """Std of PyTorch's default `nn.Linear` init, U(-1/sqrt(in), 1/sqrt(in))."""
    return 1.0 / math.sqrt(3.0 * in_features)
