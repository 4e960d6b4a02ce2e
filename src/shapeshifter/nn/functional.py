"""Kronecker-sum arithmetic on factor lists, without building the big matrix unless asked to.

``factors`` is a list of N tensors, the j-th of shape ``(rank, m_j, n_j)``; they stand for the
``prod(m_j) x prod(n_j)`` matrix ``sum_k F_1k ⊗ F_2k ⊗ ... ⊗ F_Nk`` (``F_1`` outermost, as in
``torch.kron(F_1, torch.kron(F_2, ...))``). Row index ``i`` has mixed-radix digits ``(i_1, ..., i_N)`` in
base ``(m_1, ..., m_N)`` with ``i_1`` most significant; columns likewise in base ``(n_j)``.

The factored product uses ``(A ⊗ B) vec(X) = vec(B X Aᵀ)`` generalised to N modes: the input row is
reshaped to an ``n_1 x ... x n_N`` tensor and each mode is contracted with its factor. The rank dimension
is folded into the GEMMs: the first contraction multiplies by all ranks at once (``n_j x rank*m_j``), the
last one sums over rank inside its GEMM (``rank*n_j x m_j``), so order 2 costs exactly two GEMMs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def kron_materialize(factors: Sequence[Tensor]) -> Tensor:
    """The full ``prod(m_j) x prod(n_j)`` matrix ``sum_k ⊗_j F_jk``.

    All but the last Kronecker step keep the rank axis (small broadcasts); the last one sums over rank
    inside a GEMM (``(r, a*b)ᵀ @ (r, c*d)``), which is far faster than a broadcast product then a sum.
    Factors with leading dimensions ``(..., rank, m_j, n_j)`` give one matrix per leading index from the same
    few batched operations (``(..., prod(m_j), prod(n_j))``), for building many same-shaped matrices at once.
    """
    lead = factors[0].shape[:-3]
    w = factors[0]
    for f in factors[1:-1]:
        r, a, b = w.shape[-3:]
        c, d = f.shape[-2:]
        w = (w[..., :, :, None, :, None] * f[..., :, None, :, None, :]).reshape(*lead, r, a * c, b * d)
    f = factors[-1]
    r, a, b = w.shape[-3:]
    c, d = f.shape[-2:]
    full = w.reshape(*lead, r, a * b).transpose(-1, -2) @ f.reshape(*lead, r, c * d)  # (..., a*b, c*d)
    return full.reshape(*lead, a, b, c, d).transpose(-3, -2).reshape(*lead, a * c, b * d)


def contraction_order(out_factors: Sequence[int], in_factors: Sequence[int]) -> list[int]:
    """Modes in the order that keeps intermediates smallest: shrinking modes (m_j < n_j) first."""
    return sorted(range(len(out_factors)), key=lambda j: out_factors[j] / in_factors[j])


def kron_apply(x: Tensor, factors: Sequence[Tensor]) -> Tensor:
    """``x @ W.T`` for the Kronecker sum W, with ``x`` of shape ``(batch, prod(n_j))`` (already padded).

    Returns ``(batch, prod(m_j))``. Each step moves the contracted mode to the end, multiplies, and
    moves the new mode back, so the tensor keeps the layout ``(batch, d_1, ..., d_N[, rank])``.
    """
    if len(factors) == 2:
        return _kron_apply_2(x, factors[0], factors[1])
    n = [f.shape[2] for f in factors]
    m = [f.shape[1] for f in factors]
    rank = factors[0].shape[0]
    order = contraction_order(m, n)
    batch = x.shape[0]
    dims = list(n)
    t = x.reshape(batch, *n)  # (B, d_1..d_N)
    for step, j in enumerate(order):
        first, last = step == 0, step == len(order) - 1
        f = factors[j]  # (r, m_j, n_j)
        if first:
            # (B, ..., n_j, ...) -> (..., n_j) @ (n_j, r*m_j) -> (B, ..., r, m_j) -> rank to the end
            t = t.movedim(1 + j, -1)
            lead = t.shape[:-1]
            t = t.reshape(-1, n[j]) @ f.permute(2, 0, 1).reshape(n[j], rank * m[j])
            t = t.reshape(*lead, rank, m[j]).movedim(-1, 1 + j)  # (B, d.., r) with m_j at 1+j
        elif last:
            # sum over rank inside the GEMM: (..., r, n_j) @ (r*n_j, m_j)
            t = t.movedim(1 + j, -1)  # (B, ..., r, n_j)
            lead = t.shape[:-2]
            t = t.reshape(-1, rank * n[j]) @ f.permute(0, 2, 1).reshape(rank * n[j], m[j])
            t = t.reshape(*lead, m[j]).movedim(-1, 1 + j)
        else:
            # batched over rank: (r, M, n_j) @ (r, n_j, m_j)
            t = t.movedim(-1, 0).movedim(2 + j, -1)  # (r, B, ..., n_j)
            lead = t.shape[1:-1]
            t = torch.bmm(t.reshape(rank, -1, n[j]), f.transpose(1, 2))
            t = t.reshape(rank, *lead, m[j]).movedim(-1, 2 + j).movedim(0, -1)
        dims[j] = m[j]
    return t.reshape(batch, math.prod(dims))


def _kron_apply_2(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Order 2, ``y_b = sum_k A_k X_b B_kᵀ`` with ``X_b`` the ``n_1 x n_2`` view of row b, in two GEMMs and no copy
    of an activation: the rank axis is folded into the factors (small copies), so every reshape below is a view.

    ``(B*n_1, n_2) @ (n_2, r*m_2)`` gives ``T`` as ``(B, n_1*r, m_2)``; one batched GEMM with ``[A_1 .. A_r]``
    laid out as ``(m_1, n_1*r)`` (shared by the batch) sums over ``n_1`` and rank and leaves ``(B, m_1, m_2)``.
    """
    rank, m1, n1 = a.shape
    _, m2, n2 = b.shape
    batch = x.shape[0]
    t = x.reshape(batch * n1, n2) @ b.permute(2, 0, 1).reshape(n2, rank * m2)  # (B*n1, r*m2)
    t = t.reshape(batch, n1 * rank, m2)  # (B, n1, r, m2) with (n1, r) merged
    y = torch.matmul(a.permute(1, 2, 0).reshape(m1, n1 * rank), t)  # (m1, n1*r) @ (B, n1*r, m2) -> (B, m1, m2)
    return y.reshape(batch, m1 * m2)


def kron_rows(index: Tensor, factors: Sequence[Tensor]) -> Tensor:
    """Rows ``W[index]`` of the Kronecker sum, each built from one row of every factor.

    ``index`` is any integer tensor; the result has shape ``index.shape + (prod(n_j),)``. The factor rows
    are gathered with `F.embedding`, whose backward is a fast dense scatter-add.
    """
    flat = index.reshape(-1)
    rank = factors[0].shape[0]
    digits = []
    rem = flat
    for f in reversed(factors):
        digits.append(rem % f.shape[1])
        rem = torch.div(rem, f.shape[1], rounding_mode="floor")
    digits.reverse()
    gathered = [
        F.embedding(d, f.transpose(0, 1).reshape(f.shape[1], rank * f.shape[2])).view(-1, rank, f.shape[2])
        for f, d in zip(factors, digits, strict=True)
    ]  # each (T, r, n_j)
    rows = gathered[0]
    for g in gathered[1:-1]:
        rows = (rows[:, :, :, None] * g[:, :, None, :]).reshape(g.shape[0], rank, -1)
    # last mode: sum over rank inside a batched GEMM, (T, P, r) @ (T, r, n_N)
    out = torch.bmm(rows.transpose(1, 2), gathered[-1])
    return out.reshape(*index.shape, -1)


def factored_flops(batch: int, out_factors: Sequence[int], in_factors: Sequence[int], rank: int) -> int:
    """Multiply-adds of `kron_apply` for ``batch`` rows (the forward pass)."""
    dims = list(in_factors)
    total = 0
    # order 2 (`_kron_apply_2`) always contracts the last mode first: its input needs no copy that way
    order = [1, 0] if len(out_factors) == 2 else contraction_order(out_factors, in_factors)
    for j in order:
        # every rank maps the n_j mode of a prod(dims)-element row to m_j outputs
        total += batch * math.prod(dims) * out_factors[j] * rank
        dims[j] = out_factors[j]
    return total


def materialize_flops(out_factors: Sequence[int], in_factors: Sequence[int], rank: int) -> int:
    """Multiplies needed to build the full padded matrix with `kron_materialize`."""
    total, rows, cols = 0, out_factors[0], in_factors[0]
    for m_j, n_j in zip(out_factors[1:], in_factors[1:], strict=True):
        rows, cols = rows * m_j, cols * n_j
        total += rank * rows * cols
    return total
