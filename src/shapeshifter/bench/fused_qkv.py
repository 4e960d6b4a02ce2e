"""Fused q/k/v in-projection: one factorization of the ``3d x d`` matrix, or one per ``d x d`` slice?

Two measurements at equal parameter counts, both in one process:

* projection error: the relative Frobenius error of the best fit (`project_into`) to the ``in_proj_weight`` of a
  small `nn.TransformerEncoder` trained for a few hundred steps on a synthetic task (sorting a sequence of
  tokens, which needs content-based attention), so the weights carry learned structure, not only their random
  init. The per-slice fit at rank r is compared with the fused fit at the same number of parameters: the fused
  error is interpolated between the two fused ranks around that count (squared error, linear in parameters, as
  an SVD's tail energy is between two ranks);
* time: forward + backward of `nn.MultiheadAttention` (self-attention) against the factorized modules at matched
  parameters, repetitions interleaved, median of per-repetition ratios to dense (`shapeshifter.bench.timing`).

`pipelines/bench_fused_qkv.py` runs both and prints the tables.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn.attention import FactoredMultiheadAttention
from ..nn.factors import FactoredMatrix, KroneckerMatrix
from ..nn.projection import project_into
from ..nn.stacked import StackedMatrix
from .timing import interleaved_times, median_ratios


def fused_matrix(d: int, rank: int) -> KroneckerMatrix:
    """One rank-``rank`` Kronecker sum for the whole ``3d x d`` in-projection (balanced factor sizes)."""
    return KroneckerMatrix(3 * d, d, rank)


def per_slice_matrix(d: int, rank: int) -> StackedMatrix:
    """A rank-``rank`` Kronecker sum for each of the q, k and v slices (``d x d``, balanced factor sizes)."""
    return StackedMatrix([KroneckerMatrix(d, d, rank) for _ in range(3)])


# -- a briefly trained encoder -----------------------------------------------------------------------------


@dataclass
class TrainedEncoder:
    weights: list[Tensor]  # in_proj_weight per layer, trained
    initial: list[Tensor]  # the same at init
    first_loss: float
    last_loss: float


def train_sorting_encoder(d: int = 64, heads: int = 4, layers: int = 2, vocab: int = 32, length: int = 16,
                          steps: int = 400, batch: int = 32, seed: int = 0) -> TrainedEncoder:
    """A `nn.TransformerEncoder` trained to output its input tokens sorted (one class per position)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    embed, pos = nn.Embedding(vocab, d), nn.Parameter(0.02 * torch.randn(length, d, generator=gen))
    layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.0, batch_first=True)
    encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
    head = nn.Linear(d, vocab)
    params = [*embed.parameters(), pos, *encoder.parameters(), *head.parameters()]
    initial = [m.self_attn.in_proj_weight.detach().clone() for m in encoder.layers]
    opt = torch.optim.Adam(params, lr=2e-3)
    losses = []
    for _ in range(steps):
        x = torch.randint(0, vocab, (batch, length), generator=gen)
        logits = head(encoder(embed(x) + pos))
        loss = F.cross_entropy(logits.reshape(-1, vocab), x.sort(dim=1).values.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    weights = [m.self_attn.in_proj_weight.detach().clone() for m in encoder.layers]
    return TrainedEncoder(weights, initial, statistics.mean(losses[:10]), statistics.mean(losses[-10:]))


# -- projection error at equal parameters ------------------------------------------------------------------


def fit_error(matrix: FactoredMatrix, weight: Tensor) -> float:
    """Relative Frobenius error of the best fit of ``matrix``'s kind and size to ``weight``."""
    return project_into(matrix, weight)


def interpolated(points: list[tuple[int, float]], params: int) -> float:
    """Error at ``params`` from (params, error) points sorted by params: squared error linear in params."""
    for (p0, e0), (p1, e1) in zip(points, points[1:], strict=False):
        if p0 <= params <= p1:
            t = (params - p0) / (p1 - p0)
            return ((1 - t) * e0**2 + t * e1**2) ** 0.5
    raise ValueError(f"{params} parameters lie outside the fused fits ({points[0][0]}..{points[-1][0]})")


def error_rows(weights: list[Tensor], ranks: list[int]) -> list[dict[str, float]]:
    """Per-slice rank r against the fused fit at the same parameter count, mean over ``weights``."""
    d = weights[0].shape[1]
    fused_per_rank = fused_matrix(d, 1).factor_params
    top = max(ranks) * per_slice_matrix(d, 1).factor_params // fused_per_rank + 1
    fused = [[(r * fused_per_rank, fit_error(fused_matrix(d, r), w)) for r in range(1, top + 1)] for w in weights]
    rows = []
    for r in ranks:
        params = per_slice_matrix(d, r).factor_params
        slices = statistics.mean(fit_error(per_slice_matrix(d, r), w) for w in weights)
        whole = statistics.mean(interpolated([(0, 1.0), *pts], params) for pts in fused)
        rows.append({"rank": r, "params": params, "fused_rank": params / fused_per_rank,
                     "per_slice_error": slices, "fused_error": whole})
    return rows


def equal_params_pair(d: int) -> tuple[int, int]:
    """The smallest (per-slice rank, fused rank) with exactly the same parameter count at size ``d``."""
    per_slice, fused = per_slice_matrix(d, 1).factor_params, fused_matrix(d, 1).factor_params
    g = math.gcd(per_slice, fused)
    return fused // g, per_slice // g


def equal_params_row(weights: list[Tensor]) -> dict[str, float]:
    """Both fits at `equal_params_pair`'s ranks (no interpolation), mean over ``weights``."""
    d = weights[0].shape[1]
    r_slice, r_fused = equal_params_pair(d)
    return {"rank": r_slice, "params": per_slice_matrix(d, r_slice).factor_params, "fused_rank": r_fused,
            "per_slice_error": statistics.mean(fit_error(per_slice_matrix(d, r_slice), w) for w in weights),
            "fused_error": statistics.mean(fit_error(fused_matrix(d, r_fused), w) for w in weights)}


# -- time --------------------------------------------------------------------------------------------------


def matched_fused_rank(d: int, rank: int) -> int:
    """The fused rank whose parameter count is nearest the per-slice count at ``rank``."""
    return max(1, round(per_slice_matrix(d, rank).factor_params / fused_matrix(d, 1).factor_params))


def attention_modules(d: int, heads: int, rank: int) -> dict[str, nn.Module]:
    """Dense `nn.MultiheadAttention`, the per-slice one at ``rank`` and the fused one at matched parameters."""
    torch.manual_seed(0)
    dense = nn.MultiheadAttention(d, heads, batch_first=True)
    return {
        "dense": dense,
        "per_slice": FactoredMultiheadAttention(d, heads, per_slice_matrix(d, rank), batch_first=True),
        "fused": FactoredMultiheadAttention(d, heads, fused_matrix(d, matched_fused_rank(d, rank)), batch_first=True),
    }


def train_step(module: nn.Module, x: Tensor) -> Callable[[], None]:
    def run() -> None:
        module.zero_grad(set_to_none=True)
        out, _ = module(x, x, x, need_weights=False)
        out.sum().backward()

    return run


def time_rows(d: int, heads: int, ranks: list[int], batch: int, length: int, reps: int) -> list[dict[str, float]]:
    """Median forward + backward time of each module over dense's, per per-slice rank."""
    x = torch.randn(batch, length, d, requires_grad=True)
    rows = []
    for r in ranks:
        modules = attention_modules(d, heads, r)
        times = interleaved_times({k: train_step(m, x) for k, m in modules.items()}, x.device, reps)
        ratios = median_ratios(times, "dense")
        rows.append({"rank": r, "fused_rank": matched_fused_rank(d, r),
                     "per_slice_params": modules["per_slice"].in_proj.factor_params,
                     "fused_params": modules["fused"].in_proj.factor_params,
                     "dense_ms": 1e3 * statistics.median(times["dense"]),
                     "per_slice_ratio": ratios["per_slice"], "fused_ratio": ratios["fused"]})
    return rows
