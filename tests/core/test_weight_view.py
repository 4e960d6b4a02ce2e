"""The read-only ``weight`` of factorized layers, and their dtypes under autocast (issue item 3)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from shapeshifter.nn import (
    KroneckerEmbedding,
    KroneckerLinear,
    LowRankEmbedding,
    LowRankLinear,
    TiedOutput,
)
from shapeshifter.surgery import shapeshift

LINEARS = [
    lambda i, o: KroneckerLinear(i, o, rank=2),
    lambda i, o: KroneckerLinear(i, o, rank=2, order=3),
    lambda i, o: LowRankLinear(i, o, rank=3),
]
EMBEDDINGS = [
    lambda n, d: KroneckerEmbedding(n, d, rank=2, padding_idx=1),
    lambda n, d: LowRankEmbedding(n, d, rank=3, padding_idx=1),
]


@given(in_f=st.integers(1, 40), out_f=st.integers(1, 40), make=st.sampled_from(LINEARS))
@settings(max_examples=30, deadline=None)
def test_linear_weight_reads_like_nn_linear(in_f, out_f, make):
    layer = make(in_f, out_f)
    dense = nn.Linear(in_f, out_f)
    w = layer.weight
    assert w.shape == dense.weight.shape == (out_f, in_f)
    assert (w.dtype, w.device) == (dense.weight.dtype, dense.weight.device)
    torch.testing.assert_close(w, layer.dense_weight())
    x = torch.randn(3, in_f)
    torch.testing.assert_close(layer(x), nn.functional.linear(x, w, layer.bias))


@pytest.mark.parametrize("make", EMBEDDINGS)
def test_embedding_weight_is_the_table(make):
    emb = make(30, 6)
    assert emb.weight.shape == (30, 6)
    torch.testing.assert_close(emb.weight[1], torch.zeros(6))
    index = torch.tensor([[0, 1, 29]])
    torch.testing.assert_close(emb(index), nn.functional.embedding(index, emb.weight))
    tied = TiedOutput(emb)
    assert tied.weight.shape == (30, 6)


@pytest.mark.parametrize("make", LINEARS)
def test_weight_read_in_training_is_differentiable_and_never_stale(make):
    torch.manual_seed(0)
    layer = make(12, 8)
    layer.weight.sum().backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in layer.factors)
    with torch.no_grad():
        before = layer.weight.clone()
        layer.factors[0].mul_(2)
    after_step = layer.weight  # autograd on: built fresh
    assert not torch.allclose(before, after_step)
    with torch.no_grad():  # autograd off: the inference cache, rebuilt since a factor changed
        torch.testing.assert_close(layer.weight, after_step.detach())
        assert layer.weight is layer.weight  # cached


def test_inference_weight_is_the_cache_and_a_write_into_it_does_not_leak():
    layer = KroneckerLinear(12, 8, rank=2)
    x = torch.randn(2, 12)
    with torch.no_grad():
        reference = layer(x)
        w = layer.weight
        assert w is layer.matrix.cached_weight()
        w.zero_()
        torch.testing.assert_close(layer(x), reference)


@pytest.mark.parametrize("module", [KroneckerLinear(4, 4, rank=1), KroneckerEmbedding(10, 4, rank=1),
                                    TiedOutput(KroneckerEmbedding(10, 4, rank=1))])
def test_assigning_weight_is_a_clear_error(module):
    with pytest.raises(AttributeError, match="read-only"):
        module.weight = nn.Parameter(torch.zeros(4, 4))
    with pytest.raises(AttributeError, match="read-only"):
        module.weight = torch.zeros(4, 4)


def test_torch_transformer_layer_fast_path_runs_on_factorized_layers(monkeypatch):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, dropout=0.0)
    holder = nn.Sequential(layer)
    report = shapeshift(holder, {"ffn": {"rank": 16}}, init="project")  # full rank: exact
    assert isinstance(layer.linear1, KroneckerLinear)
    assert max(r.reconstruction_error for r in report.factorized) < 1e-5
    layer.eval()
    x = torch.randn(2, 5, 16)
    fused = torch._transformer_encoder_layer_fwd
    calls = []
    monkeypatch.setattr(torch, "_transformer_encoder_layer_fwd", lambda *a: calls.append(1) or fused(*a))
    with torch.no_grad():
        fast = layer(x)  # inference fast path: reads linear1.weight etc. directly
    assert calls, "the fused fast path was not taken"
    slow = layer(x)  # autograd on: the module path
    torch.testing.assert_close(fast, slow.detach(), rtol=1e-4, atol=1e-5)


# -- autocast ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", LINEARS)
@pytest.mark.parametrize("path", ["factored", "dense"])
@pytest.mark.parametrize("grad", [True, False])
def test_linear_output_dtype_matches_nn_linear_under_cpu_autocast(make, path, grad):
    torch.manual_seed(0)
    layer = make(24, 12)
    layer.matrix.path = path
    dense = nn.Linear(24, 12)
    x = torch.randn(5, 24)
    with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16):
        y, expected = layer(x), dense(x)
        assert y.dtype == expected.dtype == torch.bfloat16
        assert layer.weight.dtype == dense.weight.dtype == torch.float32
    with torch.no_grad():  # the inference cache built under autocast is not a bf16 copy
        assert layer.matrix.cached_weight().dtype == torch.float32
        torch.testing.assert_close(layer(x), x @ layer.dense_weight().T + layer.bias)


@pytest.mark.parametrize("make", EMBEDDINGS)
@pytest.mark.parametrize("path", ["factored", "dense"])
@pytest.mark.parametrize("grad", [True, False])
def test_embedding_output_dtype_matches_nn_embedding_under_cpu_autocast(make, path, grad):
    emb = make(40, 8)
    emb.matrix.path = path
    index = torch.randint(0, 40, (3, 5))
    with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16):
        out, expected = emb(index), nn.Embedding(40, 8)(index)
        assert out.dtype == expected.dtype == torch.float32
        tied = TiedOutput(emb)(torch.randn(2, 8))
        assert tied.dtype == torch.bfloat16  # an output projection is an nn.Linear
    torch.testing.assert_close(out, emb.dense_weight()[index].detach())


@pytest.mark.parametrize("make", [lambda: KroneckerLinear(12, 10, 2), lambda: KroneckerEmbedding(30, 8, 2)])
def test_inference_mode_gives_the_no_grad_outputs(make):
    layer = make().eval()
    x = torch.randint(0, 30, (5,)) if isinstance(layer, KroneckerEmbedding) else torch.randn(5, 12)
    with torch.no_grad():
        expected = layer(x)
    layer.matrix._cache = None  # built afresh inside inference mode (translation decodes under it)
    with torch.inference_mode():
        got = layer(x)
    assert torch.equal(got, expected)


def test_prediction_takes_the_factors_at_low_rank_and_matches_the_dense_path():
    layer = KroneckerLinear(512, 512, rank=1).eval()
    x = torch.randn(160, 512)  # a beam-search step: few rows, where the factors cost less than the GEMM
    assert layer.matrix.choose_inference_path(160) == "factored"
    assert KroneckerLinear(512, 512, rank=8).matrix.choose_inference_path(160) == "dense"
    with torch.no_grad():
        torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.matrix.cached_weight(), layer.bias),
                                   rtol=1e-5, atol=1e-5)
