import functools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shapeshifter.nn import KroneckerLinear
from shapeshifter.nn.functional import factored_flops

SIZES = st.sampled_from([1, 7, 16, 33, 64, 100, 513, 1000])


def reference_weight(layer: KroneckerLinear) -> torch.Tensor:
    """Independent oracle: torch.kron over the factor list, summed over rank, then cropped."""
    full = sum(functools.reduce(torch.kron, [f[k] for f in layer.factors]) for k in range(layer.rank))
    return full[: layer.out_features, : layer.in_features]


@given(in_f=SIZES, out_f=SIZES, order=st.integers(2, 4), rank=st.integers(1, 8), bias=st.booleans(),
       scheme=st.sampled_from(["balanced", "exact"]))
@settings(max_examples=60, deadline=None)
def test_forward_matches_dense_on_both_paths(in_f, out_f, order, rank, bias, scheme):
    torch.manual_seed(in_f * 7 + out_f + order + rank)
    try:
        layer = KroneckerLinear(in_f, out_f, rank, order, scheme, bias=bias).double()
    except ValueError as err:
        assert scheme == "exact" and "no factorization" in str(err)
        return
    w = layer.dense_weight()
    assert w.shape == (out_f, in_f)
    torch.testing.assert_close(w, reference_weight(layer))
    x = torch.randn(3, 5, in_f, dtype=torch.float64)
    expected = x @ w.T + (layer.bias if bias else 0)
    for path in ("factored", "dense", "auto"):
        layer.matrix.path = path
        torch.testing.assert_close(layer(x), expected)
    with torch.no_grad():  # inference path: cached materialized weight
        torch.testing.assert_close(layer(x), expected)
    ks = layer.kshape
    assert math.prod(ks.out_factors) >= out_f and math.prod(ks.in_factors) >= in_f
    n_params = sum(p.numel() for p in layer.parameters())
    assert n_params == rank * sum(m * n for m, n in zip(ks.out_factors, ks.in_factors)) + (out_f if bias else 0)
    assert [tuple(f.shape) for f in layer.factors] == [(rank, m, n) for m, n in zip(ks.out_factors, ks.in_factors)]


@pytest.mark.parametrize("in_f,out_f,order,rank", [(513, 1000, 2, 3), (1000, 513, 3, 2), (64, 6632, 2, 4),
                                                    (8848, 16, 3, 2), (100, 33, 4, 8)])
def test_gradients_match_autograd_through_dense_weight(in_f, out_f, order, rank):
    torch.manual_seed(0)
    layer = KroneckerLinear(in_f, out_f, rank, order).double()
    x = torch.randn(6, in_f, dtype=torch.float64, requires_grad=True)
    target = torch.randn(6, out_f, dtype=torch.float64)
    params = [x, layer.bias, *layer.factors]

    ref_loss = ((x @ layer.dense_weight().T + layer.bias - target) ** 2).sum()
    ref = torch.autograd.grad(ref_loss, params)
    for path in ("factored", "dense"):
        layer.matrix.path = path
        loss = ((layer(x) - target) ** 2).sum()
        got = torch.autograd.grad(loss, params)
        for g, r in zip(got, ref):
            torch.testing.assert_close(g, r)


def test_explicit_shape_and_bad_shape():
    layer = KroneckerLinear(12, 10, rank=2, shape=((2, 5), (3, 4)))
    assert [tuple(f.shape) for f in layer.factors] == [(2, 2, 3), (2, 5, 4)]
    with pytest.raises(ValueError, match="cannot hold"):
        KroneckerLinear(12, 10, rank=2, shape=((2, 4), (3, 4)))
    with pytest.raises(ValueError, match="rank"):
        KroneckerLinear(12, 10, rank=0)
    with pytest.raises(ValueError, match="last dim 12"):
        layer(torch.randn(2, 11))


@pytest.mark.parametrize("order,rank", [(2, 1), (2, 8), (3, 2), (4, 4)])
def test_init_matches_dense_linear_variance(order, rank):
    torch.manual_seed(1)
    stds = [KroneckerLinear(512, 512, rank, order).dense_weight().std().item() for _ in range(20)]
    target = torch.nn.Linear(512, 512).weight.std().item()
    mean = sum(stds) / len(stds)
    assert abs(mean / target - 1) < 0.15
    layer = KroneckerLinear(512, 512, rank, order, init_std=0.1)
    assert 0.05 < layer.dense_weight().std().item() < 0.2


def test_inference_cache_tracks_parameter_updates():
    torch.manual_seed(0)
    layer = KroneckerLinear(40, 30, rank=2)
    x = torch.randn(4, 40)
    with torch.no_grad():
        before = layer(x)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(x).pow(2).sum().backward()
    opt.step()
    with torch.no_grad():
        after = layer(x)
        torch.testing.assert_close(after, x @ layer.dense_weight().T + layer.bias)
    assert not torch.allclose(before, after)


def test_auto_path_prefers_factored_for_large_batches_and_low_rank():
    layer = KroneckerLinear(512, 512, rank=1)
    assert layer.matrix.choose_path(4096) == "factored"
    assert factored_flops(4096, (32, 16), (16, 32), 1) < 4096 * 512 * 512
    big_rank = KroneckerLinear(512, 512, rank=64)
    assert big_rank.matrix.choose_path(4096) == "dense"


def test_extra_repr_shows_shape_rank_and_compression():
    text = repr(KroneckerLinear(512, 1024, rank=2, order=2))
    assert "1024x512" in text and "rank=2" in text and "order=2" in text and "compression=" in text
    assert "params=" in text
