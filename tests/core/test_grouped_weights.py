"""Grouped weight builds: same outputs and gradients as per-matrix builds, fewer operators, nothing in inference."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from shapeshifter.bench.step_profile import count_ops
from shapeshifter.nn import KroneckerLinear, LowRankLinear
from shapeshifter.nn.grouped import group_weights


class Stack(nn.Module):
    """Three same-shaped layers of each kind and one of another shape, all on their dense path."""

    def __init__(self, order: int) -> None:
        super().__init__()
        self.kron = nn.ModuleList(KroneckerLinear(24, 24, rank=3, order=order, path="dense") for _ in range(3))
        self.low = nn.ModuleList(LowRankLinear(24, 24, rank=2, path="dense") for _ in range(3))
        self.odd = KroneckerLinear(24, 12, rank=2, path="dense")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in [*self.kron, *self.low]:
            x = torch.tanh(layer(x))
        return self.odd(x)


def _step(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad()
    y = model(x)
    y.square().sum().backward()
    return y.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("order", [2, 3])
def test_grouped_build_matches_per_matrix_build_and_dispatches_fewer_ops(order: int) -> None:
    torch.manual_seed(0)
    plain = Stack(order)
    grouped = copy.deepcopy(plain)
    group_weights(grouped, cpu=True)
    x = torch.randn(5, 24)
    for _ in range(2):  # the first forward learns which members want W; the second builds them together
        y0, g0 = _step(plain, x)
        y1, g1 = _step(grouped, x)
        torch.testing.assert_close(y1, y0, atol=1e-6, rtol=1e-5)
        for a, b in zip(g1, g0, strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    plain_ops = sum(count_ops(lambda: _step(plain, x)).values())
    grouped_ops = sum(count_ops(lambda: _step(grouped, x)).values())
    assert grouped_ops < plain_ops


def test_two_forwards_before_one_backward_and_inference() -> None:
    torch.manual_seed(1)
    plain = Stack(2)
    grouped = copy.deepcopy(plain)
    group_weights(grouped, cpu=True)
    x1, x2 = torch.randn(3, 24), torch.randn(4, 24)
    for model in (plain, grouped):
        model(x1).sum().backward()  # learn the members
        model.zero_grad()
        (model(x1).sum() + model(x2).square().sum()).backward()  # gradient accumulation over two forwards
    for a, b in zip(grouped.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5)
    with torch.no_grad():  # inference: each matrix's own cache, no batched build
        torch.testing.assert_close(grouped(x1), plain(x1), atol=1e-6, rtol=1e-5)
    assert not grouped.kron[0].matrix._group.built


def test_disabled_groups_and_lone_matrices_build_alone() -> None:
    torch.manual_seed(2)
    model = Stack(2)
    grouped = group_weights(model, cpu=True)
    assert model.odd.matrix._group is None  # the only 12x24 matrix: no group
    grouped.enabled = False
    model(torch.randn(2, 24)).sum().backward()
    model(torch.randn(2, 24)).sum().backward()
    assert not model.kron[0].matrix._group.built and not model.kron[0].matrix._group.active


def test_cpu_matrices_build_alone_by_default() -> None:
    torch.manual_seed(3)
    plain = Stack(2)
    grouped = copy.deepcopy(plain)
    group_weights(grouped)
    x = torch.randn(4, 24)
    for _ in range(2):
        y0, g0 = _step(plain, x)
        y1, g1 = _step(grouped, x)
        torch.testing.assert_close(y1, y0, atol=1e-6, rtol=1e-5)
    assert sum(count_ops(lambda: _step(grouped, x)).values()) == sum(count_ops(lambda: _step(plain, x)).values())
