"""`StackedMatrix`: a matrix whose row blocks are factorized separately, ``W = [W_1; ...; W_B]``.

A fused in-projection (`nn.MultiheadAttention`'s ``in_proj_weight``, GPT-2's ``c_attn``) is the q, k and v
maps stacked, ``3d x d``. Factorizing each ``d x d`` slice on its own gives it the structure a model with
separate q/k/v projections gets from the same policy; one factorization of the whole ``3d x d`` matrix shares
factors across the slices instead (see `shapeshifter.bench.fused_qkv` for which fits trained weights better).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .factors import FactoredMatrix, Path


class StackedMatrix(FactoredMatrix):
    """``W = [W_1; ...; W_B]`` (rows stacked), each block a `FactoredMatrix` of the same kind, size and rank.

    ``factors`` lists the parts' factors in order (part 0's, then part 1's, ...), so the inference cache,
    initialization and projection (`project_into`) treat the blocks as one matrix; the factored path runs
    each part's and concatenates; W is built for all parts in one batched operation. The parts' own ``path`` is
    not used: this matrix chooses for all of them.
    """

    def __init__(self, parts: Sequence[FactoredMatrix], path: Path = "auto") -> None:
        if not parts:
            raise ValueError("a stacked matrix needs at least one part")
        first = parts[0]
        same = {(p.rows, p.cols, p.kind, p.rank, p.order) for p in parts}
        if len(same) != 1:
            raise ValueError(f"the parts of a stacked matrix must share size, kind, rank and order, got {same}")
        if any(p.zero_row is not None for p in parts):
            raise ValueError("the parts of a stacked matrix cannot pin a zero row")
        super().__init__(first.rows * len(parts), first.cols, first.rank, path)
        self.parts = nn.ModuleList(parts)
        self.order = first.order
        self.block_rows = first.rows
        # one batched build of W needs the parts to share their class and factor shapes, not only their size
        self._batched = len({(type(p), tuple(f.shape for f in p.factors)) for p in parts}) == 1

    @property
    def kind(self) -> str:  # type: ignore[override]  # the parts' kind: "kronecker" or "lowrank"
        return self.parts[0].kind

    @property
    def factors(self) -> list[nn.Parameter]:  # type: ignore[override]
        return [f for part in self.parts for f in part.factors]

    @torch.no_grad()
    def init_factors(self, target_std: float, generator: torch.Generator | None = None) -> None:
        for part in self.parts:
            part.init_factors(target_std, generator)

    def _materialize(self) -> Tensor:
        if not self._batched:
            return torch.cat([part._materialize() for part in self.parts])
        # one batched build, (B, block_rows, cols) -> (B * block_rows, cols)
        return type(self.parts[0]).materialize_stacked(list(self.parts)).reshape(self.rows, self.cols)

    def _factored_matmul_t(self, x: Tensor) -> Tensor:
        return torch.cat([part._factored_matmul_t(x) for part in self.parts], dim=-1)

    def gather_rows(self, index: Tensor) -> Tensor:
        block, local = index // self.block_rows, index % self.block_rows
        out = self.parts[0].gather_rows(local)
        for b, part in enumerate(self.parts[1:], start=1):
            out = torch.where((block == b).unsqueeze(-1), part.gather_rows(local), out)
        return out

    def path_costs(self, batch: int) -> tuple[float, float]:
        costs = [part.path_costs(batch) for part in self.parts]
        return sum(c[0] for c in costs), sum(c[1] for c in costs)

    def gather_costs(self, tokens: int) -> tuple[float, float]:
        costs = [part.gather_costs(tokens) for part in self.parts]
        return sum(c[0] for c in costs), sum(c[1] for c in costs)

    def best_factors(self, weight: Tensor) -> list[Tensor]:
        blocks = weight.split(self.block_rows)
        return [f for part, w in zip(self.parts, blocks, strict=True) for f in part.best_factors(w)]

    def describe(self) -> str:
        return f"{len(self.parts)} × [{self.parts[0].describe()}]"
