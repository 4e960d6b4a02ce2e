import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
