"""Fitting factors to a trained dense matrix (compression of pretrained weights).

`project_into` fits any `FactoredMatrix` through its kind's `best_factors`. Low rank (``W = U @ V``) is the
truncated SVD of W, optimal by Eckart-Young (`lowrank_factors`).

For Kronecker sums, the rearrangement of Van Loan & Pitsianis maps the (zero-padded) matrix W, reshaped to
a tensor with indices ``(i_1..i_N, j_1..j_N)``, onto an N-way tensor ``R`` with modes ``(i_1 j_1), ...,
(i_N j_N)``. A rank-r Kronecker sum ``sum_k F_1k ⊗ ... ⊗ F_Nk`` becomes the rank-r CP tensor ``sum_k
vec(F_1k) ∘ ... ∘ vec(F_Nk)``, and ``||W - W_hat||_F = ||R - R_hat||_F``. So:

* order 2: ``R`` is a matrix and its truncated SVD gives the optimal factors (Eckart-Young);
* order > 2: CP-ALS on ``R`` (tensorly's `parafac`, SVD-initialised, fixed seed). ALS is a local method
  without an optimality guarantee; the returned error says how good the fit is.

When the factor sizes pad the matrix, the padded entries are cropped away and should not be fitted.
Order 2 then alternates "fill the padding with the current approximation, refit by SVD" (hard
imputation; each step cannot increase the error on the real block), which recovers an exact cropped
Kronecker sum. For order > 2 the padding is treated as zeros to be matched. The returned relative error
is always measured on the real (cropped) block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from .shapes import KroneckerShape

if TYPE_CHECKING:  # only a type here: the factor kinds import this module for their best fits
    from .factors import FactoredMatrix


def rearrange(weight: Tensor, out_factors: tuple[int, ...], in_factors: tuple[int, ...]) -> Tensor:
    """The N-way tensor R with modes (m_j * n_j) whose rank-1 terms are vec'd Kronecker factors."""
    n_modes = len(out_factors)
    rows, cols = int(np.prod(out_factors)), int(np.prod(in_factors))
    padded = weight.new_zeros(rows, cols)
    padded[: weight.shape[0], : weight.shape[1]] = weight
    t = padded.reshape(*out_factors, *in_factors)
    perm = [p for j in range(n_modes) for p in (j, n_modes + j)]
    return t.permute(perm).reshape([m * n for m, n in zip(out_factors, in_factors, strict=True)])


def kronecker_svd(weight: Tensor, out_factors, in_factors, rank: int, impute_iters: int = 100) -> list[Tensor]:
    """Order-2 factors ``[(r, m1, n1), (r, m2, n2)]`` by truncated SVD of the rearrangement.

    Optimal when no padding is needed; with padding, refined by hard imputation of the padded block.
    """
    (m1, m2), (n1, n2) = out_factors, in_factors
    rows, cols = weight.shape
    w = weight.double()
    factors = _svd_factors(rearrange(w, out_factors, in_factors), out_factors, in_factors, rank)
    if (m1 * m2, n1 * n2) == (rows, cols):
        return factors
    prev = None
    for _ in range(impute_iters):
        full = _kron2(factors)
        err = float(torch.linalg.norm(full[:rows, :cols] - w))
        if prev is not None and prev - err <= 1e-10 * (1 + prev):
            break
        prev = err
        full[:rows, :cols] = w  # keep the real block, impute the padding with the current fit
        factors = _svd_factors(rearrange(full, out_factors, in_factors), out_factors, in_factors, rank)
    return factors


def _kron2(factors: list[Tensor]) -> Tensor:
    a, b = factors
    r, m1, n1 = a.shape
    _, m2, n2 = b.shape
    return torch.einsum("rij,rkl->ikjl", a, b).reshape(m1 * m2, n1 * n2)


def _svd_factors(r_mat: Tensor, out_factors, in_factors, rank: int) -> list[Tensor]:
    (m1, m2), (n1, n2) = out_factors, in_factors
    u, s, vh = torch.linalg.svd(r_mat, full_matrices=False)
    k = min(rank, s.numel())
    scale = s[:k].sqrt()
    a = (u[:, :k] * scale).T.reshape(k, m1, n1)
    b = (vh[:k] * scale[:, None]).reshape(k, m2, n2)
    if k < rank:  # the matrix has lower Kronecker rank than asked: extra terms are zero
        a = torch.cat([a, a.new_zeros(rank - k, m1, n1)])
        b = torch.cat([b, b.new_zeros(rank - k, m2, n2)])
    return [a, b]


def kronecker_cp(weight: Tensor, out_factors, in_factors, rank: int, n_iter_max: int = 200,
                 seed: int = 0) -> list[Tensor]:
    """Order > 2 factors by CP-ALS of the rearrangement (local optimum; see module docstring)."""
    import tensorly as tl
    from tensorly.decomposition import parafac

    r_t = rearrange(weight.double(), out_factors, in_factors).cpu().numpy()
    init = "svd" if rank <= min(r_t.shape) else "random"
    cp = parafac(tl.tensor(r_t), rank=rank, n_iter_max=n_iter_max, init=init, tol=1e-10,
                 random_state=seed, normalize_factors=True)
    weights, mats = cp
    # spread the CP weights evenly over the modes (keeps factor magnitudes balanced)
    share = np.abs(weights) ** (1.0 / len(mats))
    sign = np.sign(weights)
    factors = []
    for j, (mat, m, n) in enumerate(zip(mats, out_factors, in_factors, strict=True)):
        col = mat * share * (sign if j == 0 else 1.0)
        factors.append(torch.from_numpy(np.ascontiguousarray(col.T)).reshape(rank, m, n))
    return factors


def dense_source(weight: Tensor, what: str = "weight") -> Tensor:
    """The trained matrix a ``from_dense`` starts from: 2-D, detached (projection is not part of any graph)."""
    if weight.dim() != 2:
        raise ValueError(f"from_dense expects a 2-D {what}, got shape {tuple(weight.shape)}")
    return weight.detach()


def kronecker_factors(weight: Tensor, kshape: KroneckerShape, rank: int) -> list[Tensor]:
    """Best rank-``rank`` Kronecker factors of ``weight``: SVD for order 2, CP-ALS above."""
    fit = kronecker_svd if kshape.order == 2 else kronecker_cp
    return fit(weight, kshape.out_factors, kshape.in_factors, rank)


def lowrank_factors(weight: Tensor, rank: int) -> list[Tensor]:
    """``[U (rows x rank), V (rank x cols)]`` from the truncated SVD, sqrt(singular values) on both sides.

    Splitting the singular values evenly keeps U and V on the same scale, as random init does. A rank above
    ``min(rows, cols)`` gets zero extra columns/rows: the fit is already exact.
    """
    u, s, vh = torch.linalg.svd(weight.double(), full_matrices=False)
    k = min(rank, s.numel())
    scale = s[:k].sqrt()
    left, right = u[:, :k] * scale, vh[:k] * scale[:, None]
    if k < rank:
        left = torch.cat([left, left.new_zeros(left.shape[0], rank - k)], dim=1)
        right = torch.cat([right, right.new_zeros(rank - k, right.shape[1])])
    return [left, right]


@torch.no_grad()
def project_into(matrix: FactoredMatrix, weight: Tensor) -> float:
    """Overwrite ``matrix``'s factors with the best fit to ``weight``; returns ||W - W_hat|| / ||W||."""
    if tuple(weight.shape) != (matrix.rows, matrix.cols):
        raise ValueError(f"weight of shape {tuple(weight.shape)} does not fit a {matrix.rows}x{matrix.cols} layer")
    for param, value in zip(matrix.factors, matrix.best_factors(weight), strict=True):
        param.copy_(value.to(device=param.device, dtype=param.dtype))
    approx = matrix.dense_weight().to(torch.float64)
    w = weight.to(device=approx.device, dtype=torch.float64)
    norm = torch.linalg.norm(w)
    return float(torch.linalg.norm(w - approx) / norm) if norm > 0 else float(torch.linalg.norm(approx))
