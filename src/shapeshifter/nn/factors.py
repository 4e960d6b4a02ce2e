"""The matrices behind every factorized layer: `FactoredMatrix` and its Kronecker kind, `KroneckerMatrix`.

A factored matrix holds ``factors``, a few small tensors standing for a ``rows x cols`` matrix W. Linear
layers and embeddings differ only in how they read W, and the kinds of factorization differ only in how W
is built from the factors, so `FactoredMatrix` keeps what they all share: the inference cache, the pinned
zero row, the path choice and the tail of ``x @ W.T``. A `KroneckerMatrix` stores
``W = crop(sum_k F_1k ⊗ ... ⊗ F_Nk)`` with N factors of shape ``(rank, m_j, n_j)``; the low-rank kind
(``W = U @ V``) lives in `shapeshifter.nn.lowrank`.
"""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .functional import factored_flops, kron_apply, kron_materialize, kron_rows, materialize_flops
from .projection import kronecker_factors
from .shapes import KroneckerShape, ShapeSpec, check_scheme_rank, resolve_shape

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


class FactoredMatrix(nn.Module, ABC):
    """A ``rows x cols`` matrix held as ``factors``; the base of every kind of factorization.

    `matmul_t` computes ``x @ W.T`` along the cheaper of two exact paths: ``"factored"`` goes through the
    factors, ``"dense"`` materializes W and runs one matmul; ``"auto"`` picks per batch from the kind's
    cost estimate. With autograd off (inference) the materialized W is cached until a factor changes, so
    prediction costs what the dense layer costs. ``zero_row`` (an embedding's padding row) is pinned to
    zero by a product with a 0/1 mask, so no gradient reaches the factors through it.

    A kind sets ``factors`` and implements `_materialize`, `_factored_matmul_t`, `gather_rows`,
    `path_costs`, `gather_costs`, `best_factors` and `describe`.
    """

    kind: ClassVar[str]
    order: int | None  # factors per Kronecker term; None for kinds that are not Kronecker sums
    factors: nn.ParameterList

    def __init__(self, rows: int, cols: int, rank: int, path: Path = "auto", zero_row: int | None = None) -> None:
        super().__init__()
        if not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank must be a positive integer, got {rank!r}")
        if path not in ("auto", "factored", "dense"):
            raise ValueError(f"path must be 'auto', 'factored' or 'dense', got {path!r}")
        self.rows, self.cols, self.rank = rows, cols, rank
        self.path = path
        self.zero_row = zero_row
        self._cache: tuple[tuple, Tensor, int] | None = None
        # per-call choices that depend only on shapes and settings, computed once (see `_choose`)
        self._choices: dict[tuple, Literal["factored", "dense"]] = {}
        self._keep: dict[tuple, Tensor] = {}
        self._group: Any = None  # a `shapeshifter.nn.grouped.WeightGroup` building W with its peers, or None

    # -- what a kind implements --------------------------------------------------------------------------
    @abstractmethod
    def _materialize(self) -> Tensor:
        """The ``rows x cols`` matrix, before the zero row is applied (differentiable)."""

    @abstractmethod
    def _factored_matmul_t(self, x: Tensor) -> Tensor:
        """``x @ W.T`` through the factors, ``x`` of shape ``(batch, cols)``, zero row not yet applied."""

    @abstractmethod
    def gather_rows(self, index: Tensor) -> Tensor:
        """Rows ``W[index]`` built from the factors, shape ``index.shape + (cols,)``, zero row not applied."""

    @abstractmethod
    def path_costs(self, batch: int) -> tuple[float, float]:
        """(factored, dense) cost of `matmul_t` on ``batch`` rows, in GEMM multiply-add units."""

    @abstractmethod
    def gather_costs(self, tokens: int) -> tuple[float, float]:
        """(gather rows from the factors, build W and index it) cost of looking up ``tokens`` rows."""

    @abstractmethod
    def best_factors(self, weight: Tensor) -> list[Tensor]:
        """Factor values that best approximate ``weight`` (see `shapeshifter.nn.projection`)."""

    @abstractmethod
    def describe(self) -> str:
        """The factor sizes, for reports: ``"32x16 ⊗ 16x32"`` or ``"6632x20 · 20x512"``."""

    # -- shared ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def init_factors(self, target_std: float, generator: torch.Generator | None = None) -> None:
        """Draw factors so that entries of the represented matrix have std ``target_std``."""
        s = factor_std(target_std, self.rank, len(self.factors))
        for f in self.factors:
            f.normal_(0.0, s, generator=generator)

    @classmethod
    def materialize_stacked(cls, matrices: Sequence[FactoredMatrix]) -> Tensor:
        """`_materialize` of several matrices of this kind and the same factor shapes, ``(G, rows, cols)``; a kind
        overrides it to build them all in one batched operation (`StackedMatrix`, `shapeshifter.nn.grouped`)."""
        return torch.stack([m._materialize() for m in matrices])

    def dense_weight(self) -> Tensor:
        """The represented ``rows x cols`` matrix, materialized (differentiable), in the factors' dtype.

        Built with autocast off, as a dense layer's weight is a parameter in its own dtype: the consumer
        (`F.linear` under autocast) casts it, and the inference cache never holds a low-precision copy. Inside a
        forward of a model with grouped weights (`shapeshifter.nn.grouped`), W comes from one batched build
        shared with the model's other matrices of the same shape.
        """
        with no_autocast(self.factors[0].device):
            group = getattr(self, "_group", None)
            w = group.weight(self) if group is not None else None
            if w is None:
                w = self._materialize()
            return w if self.zero_row is None else w * self._row_keep(w)[:, None]

    def _row_keep(self, like: Tensor) -> Tensor:
        """Mask of length `rows` zeroing `zero_row` (a product, so no gradient flows through that row); built once
        per device and dtype."""
        key = (like.device, like.dtype)
        if torch.compiler.is_compiling():  # traced into the graph as constants
            keep = torch.ones(self.rows, device=like.device, dtype=like.dtype)
            keep[self.zero_row] = 0
            return keep
        keep = self._keep.get(key)
        if keep is None:
            keep = torch.ones(self.rows, device=like.device, dtype=like.dtype)
            keep[self.zero_row] = 0
            self._keep[key] = keep
        return keep

    def _choose(self, what: str, n: int, costs: Callable[[int], tuple[float, float]]) -> Literal["factored", "dense"]:
        """The path of ``what`` for ``n`` rows, computed once per (n, path setting, copy cost): the choice depends
        only on shapes, so a training or decoding step pays a dict lookup, not the cost model. Under
        `torch.compile` the comparison runs at trace time (a guard), once per compiled shape, so no cache."""
        if torch.compiler.is_compiling():
            return self._pick(*costs(n))
        key = (what, n, self.path, getattr(self, "copy_cost", None))
        choice = self._choices.get(key)
        if choice is None:
            if len(self._choices) > 1024:  # many distinct lengths (unbucketed batches): keep the memory bounded
                self._choices.clear()
            choice = self._choices[key] = self._pick(*costs(n))
        return choice

    def choose_path(self, batch: int) -> Literal["factored", "dense"]:
        """The cheaper path of `matmul_t` for ``batch`` input rows (forward estimate)."""
        return self._choose("train", batch, self.path_costs)

    def choose_inference_path(self, batch: int) -> Literal["factored", "dense"]:
        """The cheaper path of `matmul_t` with autograd off, where the dense path reuses the cached W and pays only
        its GEMM: at low rank and few rows (beam-search steps) the factors win, so prediction can be faster than
        dense."""
        return self._choose("inference", batch, lambda b: (self.path_costs(b)[0], float(b) * self.rows * self.cols))

    def choose_gather_path(self, tokens: int) -> Literal["factored", "dense"]:
        """The cheaper way to look up ``tokens`` rows: gather them from the factors, or index W."""
        return self._choose("gather", tokens, self.gather_costs)

    def _pick(self, factored: float, dense: float) -> Literal["factored", "dense"]:
        if self.path != "auto":
            return self.path
        return "factored" if factored < dense else "dense"

    def cached_weight(self) -> Tensor:
        """Materialized W, detached, rebuilt only when a factor changed (in place or replaced).

        A write into the returned tensor itself (outside ``.data``) also triggers a rebuild, so it can never
        leak into later outputs. Under `torch.compile` the version check is not traceable: a compiled graph reads
        the W built before the call (`shapeshifter.nn.compiled.prime_inference_cache`; a graph input, guarded).
        """
        if torch.compiler.is_compiling() and self._cache is not None:
            return self._cache[1]
        factors = self.factors
        # a ParameterList's own dict: iterating the list itself costs a getattr per factor, on every decoding step
        params = factors._parameters.values() if isinstance(factors, nn.ParameterList) else factors
        key = tuple((f._version, f.data_ptr()) for f in params)
        cache = self._cache
        if cache is None or cache[0] != key or cache[1]._version != cache[2]:
            # A detached leaf flagged requires_grad: on torch 2.13's CPU build F.linear takes a ~3x slower
            # kernel for weights without requires_grad (measured in beam search); it is only ever used with
            # autograd off, so no graph is recorded and it never receives a gradient.
            # Built outside inference mode: an inference tensor has no version counter to catch writes into it.
            with torch.inference_mode(False), torch.no_grad():
                w = self.dense_weight().detach().requires_grad_(True)
            cache = self._cache = (key, w, w._version)
        return cache[1]

    def read_weight(self) -> Tensor:
        """W for code that reads a layer's ``.weight``: fresh and differentiable while autograd records and a
        factor trains (so it never goes stale and gradients reach the factors), else the inference cache."""
        if torch.is_grad_enabled() and any(f.requires_grad for f in self.factors):
            return self.dense_weight()
        return self.cached_weight()

    def matmul_t(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        """``x @ W.T (+ bias)`` for ``x`` of shape ``(..., cols)``; returns ``(..., rows)``."""
        if x.shape[-1] != self.cols:
            raise ValueError(f"expected input with last dim {self.cols}, got shape {tuple(x.shape)}")
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.cols)
        if not torch.is_grad_enabled():
            if self.choose_inference_path(x2.shape[0]) == "dense":
                return F.linear(x, self.cached_weight(), bias)
        elif self.choose_path(x2.shape[0]) == "dense":
            return F.linear(x, self.dense_weight(), bias)
        y = self._factored_matmul_t(x2)  # (B, rows); under autocast already in its dtype, as F.linear's
        if self.zero_row is not None:
            y = y * self._row_keep(y)
        if bias is not None:
            y = y + bias.to(y.dtype)  # F.linear adds the bias in the output dtype too
        return y.reshape(*lead, self.rows)

    @property
    def factor_params(self) -> int:
        return sum(f.numel() for f in self.factors)

    def compression(self) -> float:
        """Dense entries per stored factor entry."""
        return self.rows * self.cols / self.factor_params

    def _shape_note(self) -> str:
        """Anything about the matrix size the report should say besides rows x cols (e.g. padding)."""
        return ""

    def extra_repr(self) -> str:
        order = "" if self.order is None else f", order={self.order}"
        return (
            f"{self.rows}x{self.cols}{self._shape_note()}, rank={self.rank}{order}, factors={self.describe()}, "
            f"params={self.factor_params:,}, compression={self.compression():.1f}x, path={self.path}"
        )


class KroneckerMatrix(FactoredMatrix):
    """A ``rows x cols`` matrix stored as a rank-``rank`` sum of order-``order`` Kronecker products.

    The factored path contracts the input with one factor per mode (`kron_apply`); see `FactoredMatrix`
    for the paths, the inference cache and ``zero_row``.
    """

    kind: ClassVar[str] = "kronecker"
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
        super().__init__(rows, cols, rank, path, zero_row)
        check_scheme_rank(shape, rank)
        self.kshape: KroneckerShape = resolve_shape(rows, cols, order, shape)
        self.order = self.kshape.order
        self.factors = nn.ParameterList(
            nn.Parameter(torch.empty(rank, m, n, device=device, dtype=dtype))
            for m, n in zip(self.kshape.out_factors, self.kshape.in_factors, strict=True)
        )

    def full_weight(self) -> Tensor:
        """The padded ``prod(m_j) x prod(n_j)`` matrix (before cropping)."""
        return kron_materialize(list(self.factors))

    def _materialize(self) -> Tensor:
        return self.full_weight()[: self.rows, : self.cols]

    @classmethod
    def materialize_stacked(cls, matrices: Sequence[FactoredMatrix]) -> Tensor:
        """One batched build: each mode's factors stacked, ``(G, rank, m_j, n_j)``, then `kron_materialize`."""
        first = matrices[0]
        stacked = [torch.stack(mode) for mode in zip(*(list(m.factors) for m in matrices), strict=True)]
        return kron_materialize(stacked)[:, : first.rows, : first.cols]

    def _factored_matmul_t(self, x: Tensor) -> Tensor:
        pad = self.kshape.padded_in - self.cols
        y = kron_apply(F.pad(x, (0, pad)) if pad else x, list(self.factors))
        return y[:, : self.rows] if self.kshape.padded_out != self.rows else y

    def gather_rows(self, index: Tensor) -> Tensor:
        out = kron_rows(index, list(self.factors))
        return out[..., : self.cols] if self.kshape.padded_in != self.cols else out

    def path_costs(self, batch: int) -> tuple[float, float]:
        ks = self.kshape
        m, n, r = ks.out_factors, ks.in_factors, self.rank
        dense = materialize_flops(m, n, r) + batch * self.rows * self.cols
        dense += self.copy_cost * ks.padded_out * ks.padded_in  # W is written once
        # the factored path writes an intermediate of batch * rank * prod(dims) after every mode: a proxy for its
        # memory traffic, kept as calibrated for order 2 too although `_kron_apply_2` copies less (counting only
        # its writes picked the factors for rank 8, 512x512 at 4,096 rows, measured there at 1.7x the dense GEMM)
        dims, copied = list(n), 0
        for j in range(len(m)):
            dims[j] = m[j]
            copied += batch * r * math.prod(dims)
        return factored_flops(batch, m, n, r) + self.copy_cost * copied, dense

    def gather_costs(self, tokens: int) -> tuple[float, float]:
        """Gathering costs a batched GEMM of ``tokens * rank * dim`` (small matrices, about 4x less efficient
        than one large GEMM); building costs one GEMM of ``rows * rank * dim`` plus writing the table."""
        ks = self.kshape
        gather = 4 * tokens * self.rank * ks.padded_in
        build = ks.padded_out * ks.padded_in * (self.rank + self.copy_cost)
        return gather, build

    def best_factors(self, weight: Tensor) -> list[Tensor]:
        return kronecker_factors(weight, self.kshape, self.rank)

    def describe(self) -> str:
        return str(self.kshape)

    def _shape_note(self) -> str:
        ks = self.kshape
        if (ks.padded_out, ks.padded_in) == (self.rows, self.cols):
            return ""
        return f" (padded {ks.padded_out}x{ks.padded_in})"


def no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """A context with autocast off for ``device``'s type (a no-op where it is not on)."""
    try:
        enabled = torch.is_autocast_enabled(device.type)
    except RuntimeError:  # a device type autocast does not know (meta)
        enabled = False
    return torch.autocast(device.type, enabled=False) if enabled else contextlib.nullcontext()


class ReadOnlyWeight(nn.Module):
    """A module whose ``weight`` is computed: reading it works like a dense layer's, assigning it is an error.

    Code written for `nn.Linear` / `nn.Embedding` reads ``.weight`` for its dtype, device and shape, or hands
    it to fused kernels (`nn.TransformerEncoderLayer`'s inference fast path, `nn.MultiheadAttention`'s
    ``out_proj``); an assignment (a re-tie, a load of a dense weight) would silently detach the module from
    what it computes, so it raises instead.
    """

    @property
    def weight(self) -> Tensor:
        return self._read_weight()

    def _read_weight(self) -> Tensor:
        raise NotImplementedError

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "weight":
            raise AttributeError(
                f"{type(self).__name__}.weight is read-only: it is materialized from the factors "
                f"(`.factors`); change the factors, or load a state dict of factors, instead")
        super().__setattr__(name, value)


class FactorizedModule(ReadOnlyWeight):
    """Base of the layers that read a `FactoredMatrix` held as ``self.matrix``: the shared accessors.

    ``weight`` is W materialized (`FactoredMatrix.read_weight`): differentiable in training, cached in
    inference; building it costs a dense matrix, so the layers' own forward never reads it.
    """

    matrix: FactoredMatrix

    def _read_weight(self) -> Tensor:
        return self.matrix.read_weight()

    @property
    def factors(self) -> nn.ParameterList:
        """The factor tensors (Kronecker: the j-th of shape ``(rank, m_j, n_j)``; low rank: U, V)."""
        return self.matrix.factors

    @property
    def rank(self) -> int:
        return self.matrix.rank

    @property
    def order(self) -> int | None:
        return self.matrix.order

    @property
    def kind(self) -> str:
        """``"kronecker"`` or ``"lowrank"``: how the factors make the matrix."""
        return self.matrix.kind


def default_linear_std(in_features: int) -> float:
    """Std of PyTorch's default `nn.Linear` init, U(-1/sqrt(in), 1/sqrt(in))."""
    return 1.0 / math.sqrt(3.0 * in_features)
