import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shapeshifter.nn import KroneckerEmbedding, KroneckerLinear
from shapeshifter.nn.shapes import KroneckerShape, balanced_factors, exact_factors, resolve_shape


@given(size=st.integers(1, 20000), order=st.integers(2, 4))
@settings(max_examples=150, deadline=None)
def test_balanced_covers_with_near_even_factors(size, order):
    f = balanced_factors(size, order)
    q = math.ceil(round(size ** (1 / order), 9))
    assert len(f) == order
    assert math.prod(f) >= size
    # never more padding than word2ketXS's q**order
    assert math.prod(f) <= max(q**order, size)
    assert max(f) <= 2 * q


@pytest.mark.parametrize("size", [6632, 8848, 1000, 513, 512, 1024])
@pytest.mark.parametrize("order", [2, 3, 4])
def test_balanced_on_paper_sizes(size, order):
    f = balanced_factors(size, order)
    assert math.prod(f) >= size
    assert math.prod(f) - size < 0.05 * size  # little padding on these sizes


def test_balanced_prefers_exact_when_even_enough():
    assert sorted(balanced_factors(512, 2)) == [16, 32]
    assert balanced_factors(1000, 3) == (10, 10, 10)


@given(size=st.integers(2, 5000), order=st.integers(2, 4))
@settings(max_examples=150, deadline=None)
def test_exact_is_exact_or_errors(size, order):
    try:
        f = exact_factors(size, order)
    except ValueError as err:
        assert "no factorization" in str(err)
        # then there really is none: size has fewer than `order` prime factors
        n, count, p = size, 0, 2
        while p * p <= n:
            while n % p == 0:
                n //= p
                count += 1
            p += 1
        count += n > 1
        assert count < order
    else:
        assert math.prod(f) == size and all(v >= 2 for v in f) and len(f) == order


def test_exact_picks_most_even():
    assert exact_factors(1024, 2) == (32, 32)
    assert exact_factors(6632, 2) == (829, 8)
    with pytest.raises(ValueError, match="no factorization"):
        exact_factors(8849, 2)  # prime


def test_resolve_sorts_and_validates():
    s = resolve_shape(512, 512, 2, "balanced")
    assert s.out_factors == (32, 16) and s.in_factors == (16, 32)
    assert resolve_shape(10, 12, 2, ((2, 5), (3, 4))) == KroneckerShape((2, 5), (3, 4))
    with pytest.raises(ValueError, match="cannot hold"):
        resolve_shape(10, 12, 2, ((2, 4), (3, 4)))
    with pytest.raises(ValueError, match="order 3"):
        resolve_shape(8, 8, 2, ((2, 2, 2), (2, 2, 2)))
    with pytest.raises(ValueError, match="2 output factors but 3"):
        resolve_shape(8, 8, 2, ((2, 4), (2, 2, 2)))
    with pytest.raises(ValueError, match="unknown reshape scheme"):
        resolve_shape(8, 8, 2, "square")
    with pytest.raises(ValueError, match="order must be"):
        resolve_shape(8, 8, 1, "balanced")


def test_phm_scheme_keeps_the_n_by_n_factor_first():
    s = resolve_shape(512, 1024, 2, "phm4")
    assert s == KroneckerShape((4, 128), (4, 256))  # descending/ascending sorting would give (128, 4), (4, 256)
    layer = KroneckerLinear(1024, 512, rank=4, shape="phm4")
    assert [tuple(f.shape) for f in layer.factors] == [(4, 4, 4), (4, 128, 256)]
    assert layer.matrix.factor_params == 4 * (16 + 128 * 256)
    assert str(layer.kshape) == "4x4 ⊗ 128x256"  # A_i is 4x4, S_i is 128x256
    # sizes that n does not divide are padded up and cropped, like every other scheme
    assert resolve_shape(10, 7, 2, "phm4") == KroneckerShape((4, 3), (4, 2))
    assert resolve_shape(6632, 512, 2, "phm8") == KroneckerShape((8, 829), (8, 64))


@pytest.mark.parametrize("rows,cols,n", [(12, 8, 2), (10, 7, 4), (33, 64, 8)])
def test_phm_layer_is_the_sum_of_n_kronecker_products(rows, cols, n):
    torch.manual_seed(n)
    layer = KroneckerLinear(cols, rows, rank=n, shape=f"phm{n}").double()
    a, s = layer.factors  # A_i: n x n, S_i: ceil(rows/n) x ceil(cols/n)
    assert a.shape == (n, n, n)
    expected = sum(torch.kron(a[i], s[i]) for i in range(n))[:rows, :cols]
    torch.testing.assert_close(layer.dense_weight(), expected)
    x = torch.randn(5, cols, dtype=torch.float64)
    torch.testing.assert_close(layer(x), x @ expected.T + layer.bias)


def test_phm_needs_rank_n_and_order_2():
    with pytest.raises(ValueError, match="'phm4' sums n = 4 Kronecker products, so rank must be 4, got rank 2"):
        KroneckerLinear(16, 16, rank=2, shape="phm4")
    with pytest.raises(ValueError, match="rank must be 8, got rank 4"):
        KroneckerEmbedding(100, 16, rank=4, shape="phm8")
    with pytest.raises(ValueError, match="'phm4' is order 2.*got order 3"):
        resolve_shape(64, 64, 3, "phm4")
    with pytest.raises(ValueError, match="n >= 2"):
        resolve_shape(64, 64, 2, "phm1")
    with pytest.raises(ValueError, match="unknown reshape scheme.*phm<n>"):
        resolve_shape(8, 8, 2, "phm")
