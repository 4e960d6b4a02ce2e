"""`KroneckerLinear`: a drop-in `nn.Linear` whose weight is a cropped sum of Kronecker products.

`FactoredLinear` is what every factorized linear layer shares (bias, init, forward, `from_dense`);
`LowRankLinear` (`shapeshifter.nn.lowrank`) is the other kind.
"""

from __future__ import annotations

from typing import Any, Self

import torch
from torch import Tensor, nn

from .factors import FactoredMatrix, FactorizedModule, KroneckerMatrix, Path, default_linear_std
from .projection import dense_source, project_into
from .shapes import KroneckerShape, ShapeSpec


class FactoredLinear(FactorizedModule):
    """``y = x @ W.T + b`` with W the (out, in) matrix of a `FactoredMatrix`; subclasses pick the kind.

    Shape:
        input ``(..., in_features)``, output ``(..., out_features)``.
    """

    def __init__(
        self,
        matrix: FactoredMatrix,
        bias: bool = True,
        init_std: float | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = matrix.cols, matrix.rows
        self.matrix = matrix
        if bias:
            self.bias = nn.Parameter(torch.empty(self.out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(init_std)

    @torch.no_grad()
    def reset_parameters(self, init_std: float | None = None, generator: torch.Generator | None = None) -> None:
        """Init W's entries with std ``init_std`` (default: `nn.Linear`'s) and the bias like `nn.Linear`."""
        self.matrix.init_factors(default_linear_std(self.in_features) if init_std is None else init_std, generator)
        if self.bias is not None:
            bound = 1.0 / self.in_features**0.5
            self.bias.uniform_(-bound, bound, generator=generator)

    def dense_weight(self) -> Tensor:
        """The ``(out_features, in_features)`` weight, materialized."""
        return self.matrix.dense_weight()

    def forward(self, x: Tensor) -> Tensor:
        return self.matrix.matmul_t(x, self.bias)

    @classmethod
    def from_dense(cls, weight_or_linear: Tensor | nn.Linear, *args: Any, **kwargs: Any) -> tuple[Self, float]:
        """A ``cls(in, out, *args, **kwargs)`` fitted to a trained weight, bias copied; (layer, rel. error)."""
        linear = isinstance(weight_or_linear, nn.Linear)
        weight = dense_source(weight_or_linear.weight if linear else weight_or_linear)
        bias = weight_or_linear.bias if linear else None
        out_f, in_f = weight.shape
        layer = cls(in_f, out_f, *args, bias=bias is not None, device=weight.device, dtype=weight.dtype, **kwargs)
        error = project_into(layer.matrix, weight)
        if bias is not None:
            with torch.no_grad():
                layer.bias.copy_(bias)
        return layer, error

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class KroneckerLinear(FactoredLinear):
    """``y = x @ W.T + b`` with ``W = crop(sum_{k<rank} F_1k ⊗ ... ⊗ F_Nk)`` of shape (out, in).

    Args:
        in_features, out_features: the dense layer being replaced.
        rank: number of Kronecker terms r.
        order: number of factors N per term.
        shape: reshape scheme (``"balanced"``, ``"exact"``, ``"phm<n>"``) or explicit
            ``((m_1..m_N), (n_1..n_N))``.
        bias: learn an additive bias, as `nn.Linear`.
        init_std: std of the entries of W at init; default matches `nn.Linear` (1/sqrt(3 * in)).
        path: ``"auto"`` (default), ``"factored"`` or ``"dense"``; see `FactoredMatrix`.
    """

    matrix: KroneckerMatrix

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        order: int = 2,
        shape: ShapeSpec = "balanced",
        bias: bool = True,
        init_std: float | None = None,
        path: Path = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        matrix = KroneckerMatrix(out_features, in_features, rank, order, shape, path, device, dtype)
        super().__init__(matrix, bias, init_std, device, dtype)

    @property
    def kshape(self) -> KroneckerShape:
        return self.matrix.kshape

    @classmethod
    def from_dense(
        cls,
        weight_or_linear: Tensor | nn.Linear,
        rank: int,
        order: int = 2,
        shape: ShapeSpec = "balanced",
        **kwargs: Any,
    ) -> tuple[KroneckerLinear, float]:
        """Best rank-``rank`` Kronecker-sum approximation of a trained weight; returns (layer, rel. error).

        Order 2 is exact and optimal (Van Loan-Pitsianis rearrangement + truncated SVD); order > 2 uses
        CP-ALS on the rearranged tensor (see `shapeshifter.nn.projection`). The bias is copied.
        """
        return super().from_dense(weight_or_linear, rank, order, shape, **kwargs)
