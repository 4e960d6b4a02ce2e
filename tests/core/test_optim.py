"""Optimizer groups: factor parameters get the scaled learning rate, decay rules still apply."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from shapeshifter.nn import KroneckerLinear, LowRankLinear
from shapeshifter.optim import factor_ids, param_groups


def model() -> nn.Module:
    return nn.Sequential(KroneckerLinear(16, 16, rank=2), LowRankLinear(16, 8, rank=2), nn.LayerNorm(8),
                         nn.Linear(8, 4))


def test_factor_parameters_get_the_scaled_lr_and_nothing_else_does() -> None:
    m = model()
    groups = param_groups(m, lr=1e-3, factor_lr_scale=3.0)
    scaled = [g for g in groups if "lr" in g]
    assert len(scaled) == 1 and scaled[0]["lr"] == pytest.approx(3e-3)
    factors = factor_ids(m)
    assert {id(p) for p in scaled[0]["params"]} == factors and len(factors) == 4  # 2 Kronecker + U, V
    assert factors == {id(p) for n, p in m.named_parameters() if ".matrix.factors." in f".{n}"}
    assert sum(len(g["params"]) for g in groups) == len(list(m.parameters()))


def test_a_factorized_multihead_attention_in_projection_gets_the_scaled_lr() -> None:
    from shapeshifter.nn import FactoredMultiheadAttention, KroneckerMatrix, StackedMatrix

    attn = FactoredMultiheadAttention(8, 2, StackedMatrix([KroneckerMatrix(8, 8, 1) for _ in range(3)]))
    scaled = [g for g in param_groups(attn, lr=1e-3, factor_lr_scale=3.0) if "lr" in g]
    assert {id(p) for p in scaled[0]["params"]} == {id(f) for f in attn.in_proj.factors}
    assert len(scaled[0]["params"]) == 6


def test_default_scale_keeps_one_group_and_decay_rules_split_groups() -> None:
    m = model()
    assert len(param_groups(m, lr=1e-3)) == 1
    groups = param_groups(m, 1e-3, 2.0, weight_decay=0.01, no_decay=lambda n, p: p.ndim < 2)
    assert {(("lr" in g), g["weight_decay"]) for g in groups} == {(True, 0.01), (False, 0.01), (False, 0.0)}


def test_scaled_groups_move_factors_further_in_one_adam_step() -> None:
    torch.manual_seed(0)
    steps = []
    for scale in (1.0, 3.0):
        m = model()
        torch.manual_seed(0)
        before = m[0].matrix.factors[0].detach().clone()
        opt = torch.optim.Adam(param_groups(m, 1e-3, scale), lr=1e-3)
        m(torch.randn(5, 16)).sum().backward()
        opt.step()
        steps.append((m[0].matrix.factors[0].detach() - before).abs().max().item())
    assert steps[1] == pytest.approx(3 * steps[0], rel=1e-4)
