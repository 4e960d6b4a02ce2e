import functools

import pytest
import torch

from shapeshifter.nn import KroneckerEmbedding, KroneckerLinear
from shapeshifter.nn.projection import _kron2, kronecker_svd


def kron_sum(factors):
    return sum(functools.reduce(torch.kron, [f[k] for f in factors]) for k in range(factors[0].shape[0]))


@pytest.mark.parametrize("rank", [1, 2, 5])
@pytest.mark.parametrize("shape", [((8, 6), (5, 7)), ((16, 32), (32, 16))])
def test_order2_recovers_exact_kronecker_sum(rank, shape):
    torch.manual_seed(rank)
    (m1, m2), (n1, n2) = shape
    truth = kron_sum([torch.randn(rank, m1, n1, dtype=torch.float64), torch.randn(rank, m2, n2, dtype=torch.float64)])
    layer, err = KroneckerLinear.from_dense(truth.float(), rank, 2, shape)
    assert err < 1e-5
    torch.testing.assert_close(layer.dense_weight().double(), truth, rtol=1e-4, atol=1e-4)


def test_order2_with_cropping_recovers_padded_truth():
    torch.manual_seed(0)
    truth = kron_sum([torch.randn(2, 10, 9, dtype=torch.float64), torch.randn(2, 10, 9, dtype=torch.float64)])
    # the 95x75 top-left block is exactly a cropped Kronecker sum; the padding must not be fitted as zeros
    block = truth[:95, :75]
    _, err = KroneckerLinear.from_dense(block, 2, 2, ((10, 10), (9, 9)))
    zero_padded = _kron2(kronecker_svd(block, (10, 10), (9, 9), 2, impute_iters=0))[:95, :75]
    zero_padded_err = float(torch.linalg.norm(zero_padded - block) / torch.linalg.norm(block))
    assert zero_padded_err > 0.05  # fitting the padding as zeros is far off
    assert err < 1e-3


def test_order3_recovers_rank1():
    torch.manual_seed(0)
    truth = kron_sum([torch.randn(1, 4, 3, dtype=torch.float64), torch.randn(1, 5, 2, dtype=torch.float64),
                      torch.randn(1, 3, 4, dtype=torch.float64)])
    _, err = KroneckerLinear.from_dense(truth, 1, 3, ((4, 5, 3), (3, 2, 4)))
    assert err < 1e-5


@pytest.mark.parametrize("order", [2, 3])
def test_error_decreases_with_rank_on_real_matrices(order):
    torch.manual_seed(0)
    # a non-Kronecker matrix: smooth structure plus noise, not a few Kronecker terms
    i = torch.arange(96.0)[:, None]
    j = torch.arange(80.0)[None, :]
    w = torch.sin(i / 7) * torch.cos(j / 5) + 0.3 * torch.tanh((i - j) / 20) + 0.05 * torch.randn(96, 80)
    errors = [KroneckerLinear.from_dense(w, r, order)[1] for r in (1, 2, 4, 8, 16)]
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.9 * errors[0]


def test_from_dense_copies_bias_and_embedding_padding():
    lin = torch.nn.Linear(12, 10)
    layer, _ = KroneckerLinear.from_dense(lin, rank=2)
    torch.testing.assert_close(layer.bias, lin.bias)
    emb = torch.nn.Embedding(50, 8, padding_idx=3)
    kemb, err = KroneckerEmbedding.from_dense(emb, rank=4)
    assert kemb.padding_idx == 3 and 0 < err < 1
    with pytest.raises(ValueError, match="2-D"):
        KroneckerLinear.from_dense(torch.randn(2, 3, 4), rank=1)
