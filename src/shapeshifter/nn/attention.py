"""`FactoredMultiheadAttention`: `nn.MultiheadAttention` whose fused in-projection is a `FactoredMatrix`.

`nn.MultiheadAttention` keeps q, k and v stacked in one ``3d x d`` parameter, ``in_proj_weight``, and its
forward (like `nn.TransformerEncoderLayer`'s inference fast path) hands that tensor to fused kernels rather
than calling a submodule. So the factorized module keeps all of `nn.MultiheadAttention` and serves
``in_proj_weight`` materialized from the factors: the masks, dropout, ``out_proj`` and the fast paths are
PyTorch's own, and an exact factorization gives the dense module's outputs. The price: the in-projection always
runs on the materialized W (built per forward in training, cached in inference), never the factored path.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .factors import FactoredMatrix


class FactoredMultiheadAttention(nn.MultiheadAttention):
    """`nn.MultiheadAttention` (self-attention sizes: ``kdim = vdim = embed_dim``) with ``W_in = in_proj``.

    Args:
        embed_dim, num_heads, dropout, bias, add_bias_kv, add_zero_attn, batch_first: as `nn.MultiheadAttention`.
        in_proj: the ``3 * embed_dim x embed_dim`` matrix ``[W_q; W_k; W_v]``, e.g. ``KroneckerMatrix(3 * d, d,
            rank)`` (one factorization of the fused matrix) or ``StackedMatrix([KroneckerMatrix(d, d, rank)] * 3)``
            built three times (one per slice). Its factors are drawn like `nn.MultiheadAttention`'s W (Xavier).

    ``in_proj_weight`` is read-only, materialized from ``in_proj`` (`FactoredMatrix.read_weight`): differentiable
    while training, the cached W in inference. The parameters are ``in_proj.*``, ``in_proj_bias``, ``out_proj``.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        in_proj: FactoredMatrix,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        batch_first: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if (in_proj.rows, in_proj.cols) != (3 * embed_dim, embed_dim):
            raise ValueError(f"in_proj must be {3 * embed_dim}x{embed_dim} (q, k, v stacked) for embed_dim "
                             f"{embed_dim}, got {in_proj.rows}x{in_proj.cols}")
        super().__init__(embed_dim, num_heads, dropout, bias, add_bias_kv, add_zero_attn, batch_first=batch_first,
                         device=device, dtype=dtype)
        del self._parameters["in_proj_weight"]  # registered by nn.MultiheadAttention; W is in_proj's now
        self.in_proj = in_proj
        in_proj.init_factors(xavier_std(3 * embed_dim, embed_dim))

    @classmethod
    def replacing(cls, mha: nn.MultiheadAttention, in_proj: FactoredMatrix,
                  in_proj_bias: Tensor | None = None) -> FactoredMultiheadAttention:
        """``mha`` with W replaced by ``in_proj``, whose factors are kept as they are (fitted or drawn by the
        caller); the settings are ``mha``'s, and its ``out_proj``, ``bias_k``/``bias_v`` and (unless
        ``in_proj_bias`` is given) ``in_proj_bias`` are the same objects, shared rather than copied."""
        if not mha._qkv_same_embed_dim:
            raise ValueError("only a MultiheadAttention with kdim = vdim = embed_dim has a fused in_proj_weight")
        kept = [f.detach().clone() for f in in_proj.factors]
        new = cls(mha.embed_dim, mha.num_heads, in_proj, mha.dropout, mha.in_proj_bias is not None,
                  mha.bias_k is not None, mha.add_zero_attn, mha.batch_first, device=kept[0].device,
                  dtype=kept[0].dtype)
        with torch.no_grad():
            for f, value in zip(in_proj.factors, kept, strict=True):
                f.copy_(value)
        new.in_proj_bias = mha.in_proj_bias if in_proj_bias is None else in_proj_bias
        new.out_proj, new.bias_k, new.bias_v = mha.out_proj, mha.bias_k, mha.bias_v
        return new.train(mha.training)

    def __getattr__(self, name: str) -> Any:
        # nn.Module resolves parameters here, after normal lookup fails; in_proj_weight is no longer one.
        # (Not a property: nn.MultiheadAttention.__init__ registers a parameter of that name first.)
        in_proj = self.__dict__.get("_modules", {}).get("in_proj") if name == "in_proj_weight" else None
        if in_proj is not None:
            return in_proj.read_weight()
        return super().__getattr__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "in_proj_weight" and "in_proj" in self.__dict__.get("_modules", {}):
            raise AttributeError(
                f"{type(self).__name__}.in_proj_weight is read-only: it is materialized from the factors "
                f"(`.in_proj.factors`); change the factors, or load a state dict of factors, instead")
        super().__setattr__(name, value)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"


def xavier_std(fan_out: int, fan_in: int) -> float:
    """Std of `nn.init.xavier_uniform_` on a ``fan_out x fan_in`` matrix (`nn.MultiheadAttention`'s W init)."""
    return math.sqrt(2.0 / (fan_in + fan_out))
