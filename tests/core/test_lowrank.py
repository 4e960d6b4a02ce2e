import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shapeshifter.nn import LowRankEmbedding, LowRankLinear, LowRankMatrix, TiedKroneckerOutput, TiedOutput

SIZES = st.sampled_from([1, 7, 16, 33, 64, 100, 513])
PATHS = ("factored", "dense", "auto")


@given(in_f=SIZES, out_f=SIZES, rank=st.integers(1, 40), bias=st.booleans())
@settings(max_examples=40, deadline=None)
def test_forward_matches_dense_weight_on_every_path(in_f, out_f, rank, bias):
    torch.manual_seed(in_f * 7 + out_f + rank)
    layer = LowRankLinear(in_f, out_f, rank, bias=bias).double()
    u, v = layer.factors
    assert (tuple(u.shape), tuple(v.shape)) == ((out_f, rank), (rank, in_f))
    w = layer.dense_weight()
    torch.testing.assert_close(w, torch.einsum("ik,kj->ij", u, v))  # independent of the matmul it checks
    x = torch.randn(3, 5, in_f, dtype=torch.float64)
    expected = x @ w.T + (layer.bias if bias else 0)
    for path in PATHS:
        layer.matrix.path = path
        torch.testing.assert_close(layer(x), expected)
    with torch.no_grad():  # inference path: cached materialized weight
        torch.testing.assert_close(layer(x), expected)
    assert sum(p.numel() for p in layer.parameters()) == rank * (in_f + out_f) + (out_f if bias else 0)
    assert layer.matrix.factor_params == rank * (in_f + out_f)


@pytest.mark.parametrize("path", ["factored", "dense"])
def test_gradients_match_autograd_through_dense_weight(path):
    torch.manual_seed(0)
    layer = LowRankLinear(70, 50, rank=6, path=path).double()
    x = torch.randn(8, 70, dtype=torch.float64, requires_grad=True)
    target = torch.randn(8, 50, dtype=torch.float64)
    params = [x, layer.bias, *layer.factors]
    u, v = layer.factors
    ref = torch.autograd.grad(((x @ (u @ v).T + layer.bias - target) ** 2).sum(), params)
    got = torch.autograd.grad(((layer(x) - target) ** 2).sum(), params)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r)


def test_parameter_names_follow_the_matrix_factors_convention():
    names = {n for n, _ in LowRankLinear(8, 6, rank=2).named_parameters()}
    assert names == {"matrix.factors.0", "matrix.factors.1", "bias"}
    emb = LowRankEmbedding(30, 8, rank=3)
    assert [n for n, _ in emb.named_parameters()] == ["matrix.factors.0", "matrix.factors.1"]
    assert emb.kind == "lowrank" and emb.order is None and isinstance(emb.matrix, LowRankMatrix)


@pytest.mark.parametrize("num,dim,rank,padding_idx", [(6632, 64, 20, 1), (300, 513, 7, None), (50, 16, 40, 0)])
def test_embedding_rows_and_projection_match_the_dense_table(num, dim, rank, padding_idx):
    torch.manual_seed(0)
    emb = LowRankEmbedding(num, dim, rank, padding_idx=padding_idx).double()
    table = emb.dense_weight()
    assert table.shape == (num, dim)
    idx = torch.randint(0, num, (3, 11))
    idx[0, :2] = torch.tensor([num - 1, 1])
    h = torch.randn(4, 5, dim, dtype=torch.float64)
    for path in PATHS:
        emb.matrix.path = path
        torch.testing.assert_close(emb(idx), table[idx])
        torch.testing.assert_close(emb.project(h), h @ table.T)
    with torch.no_grad():
        torch.testing.assert_close(emb(idx), table[idx])
        torch.testing.assert_close(emb.project(h), h @ table.T)


@pytest.mark.parametrize("path", ["factored", "dense"])
def test_padding_row_is_zero_and_gets_no_gradient(path):
    torch.manual_seed(0)
    emb = LowRankEmbedding(100, 16, rank=4, padding_idx=1, path=path)
    out = emb(torch.tensor([[1, 1, 1]]))
    assert torch.count_nonzero(out) == 0
    out.sum().backward()
    assert all(f.grad is None or torch.count_nonzero(f.grad) == 0 for f in emb.factors)
    assert torch.count_nonzero(emb.dense_weight()[1]) == 0
    logits = emb.project(torch.randn(2, 16))
    assert logits[:, 1].abs().max() == 0
    logits.sum().backward()  # the tied-output path sends nothing to U's padding row either
    u_grad = emb.factors[0].grad
    assert torch.count_nonzero(u_grad[1]) == 0 and torch.count_nonzero(u_grad) > 0
    emb.zero_grad()
    emb(torch.tensor([[5]])).sum().backward()  # non-padding rows do get gradient
    assert all(torch.count_nonzero(f.grad) > 0 for f in emb.factors)


def test_tied_output_shares_low_rank_factors_and_survives_state_dict():
    torch.manual_seed(0)
    emb = LowRankEmbedding(300, 32, rank=5, padding_idx=0)
    out = TiedOutput(emb, bias=torch.zeros(300))
    h = torch.randn(4, 32)
    torch.testing.assert_close(out(h), h @ emb.dense_weight().T)
    model = torch.nn.ModuleDict({"emb": emb, "out": out})
    assert sum(p.numel() for p in model.parameters()) == 5 * (300 + 32) + 300
    fresh = torch.nn.ModuleDict({"emb": LowRankEmbedding(300, 32, rank=5, padding_idx=0)})
    fresh["out"] = TiedKroneckerOutput(fresh["emb"], bias=torch.ones(300))  # the old name still works
    fresh.load_state_dict(model.state_dict())
    assert fresh["out"].embedding is fresh["emb"]
    torch.testing.assert_close(fresh["out"](h), out(h))


def test_from_dense_is_exact_at_full_rank_and_the_svd_error_below():
    torch.manual_seed(0)
    lin = torch.nn.Linear(24, 40)
    layer, err = LowRankLinear.from_dense(lin, rank=24)
    assert err < 1e-5
    torch.testing.assert_close(layer.dense_weight(), lin.weight, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(layer.bias, lin.bias)
    x = torch.randn(3, 24)
    torch.testing.assert_close(layer(x), lin(x), rtol=1e-4, atol=1e-5)
    s = torch.linalg.svdvals(lin.weight.detach().double())
    for rank in (1, 5, 12):
        _, err = LowRankLinear.from_dense(lin.weight, rank)
        expected = float(s[rank:].square().sum().sqrt() / s.square().sum().sqrt())  # Eckart-Young
        assert err == pytest.approx(expected, rel=1e-4)
    _, over = LowRankLinear.from_dense(lin.weight, rank=30)  # more than min(rows, cols): zero-padded, exact
    assert over < 1e-5
    u, v = LowRankLinear.from_dense(lin.weight.double(), rank=6)[0].factors
    torch.testing.assert_close(u.T @ u, v @ v.T)  # sqrt(s) on both sides: U and V equally scaled (diag(s))
    torch.testing.assert_close(u.T @ u, torch.diag(s[:6]))


def test_embedding_from_dense_keeps_padding_and_fits_the_table():
    torch.manual_seed(0)
    dense = torch.nn.Embedding(50, 8, padding_idx=3)
    emb, err = LowRankEmbedding.from_dense(dense, rank=8)
    assert emb.padding_idx == 3 and err < 1e-5
    torch.testing.assert_close(emb(torch.arange(50)), dense.weight.detach(), rtol=1e-4, atol=1e-5)
    low, low_err = LowRankEmbedding.from_dense(dense, rank=2)
    assert 0 < low_err < 1 and low.matrix.factor_params == 2 * (50 + 8)
    with pytest.raises(ValueError, match="2-D"):
        LowRankEmbedding.from_dense(torch.randn(2, 3, 4), rank=1)


def test_inference_cache_tracks_parameter_updates():
    torch.manual_seed(0)
    layer = LowRankLinear(40, 30, rank=3)
    x = torch.randn(4, 40)
    with torch.no_grad():
        before = layer(x)
        torch.testing.assert_close(before, layer.matrix.matmul_t(x, layer.bias).detach())
    cached = layer.matrix.cached_weight()
    assert layer.matrix.cached_weight() is cached  # no rebuild while the factors are unchanged
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(x).pow(2).sum().backward()
    opt.step()
    with torch.no_grad():
        after = layer(x)  # few rows: the inference path may take the factors, which are always current
        torch.testing.assert_close(after, x @ layer.dense_weight().T + layer.bias, rtol=1e-5, atol=1e-4)
        cached_after = torch.nn.functional.linear(x, layer.matrix.cached_weight(), layer.bias)
        torch.testing.assert_close(cached_after, x @ layer.dense_weight().T + layer.bias)  # the cache was rebuilt
    assert layer.matrix.cached_weight() is not cached
    assert not torch.allclose(before, after)


def test_default_init_matches_the_dense_layers_scale():
    torch.manual_seed(1)
    target = torch.nn.Linear(512, 512).weight.std().item()
    stds = [LowRankLinear(512, 512, rank=16).dense_weight().std().item() for _ in range(10)]
    assert abs(sum(stds) / len(stds) / target - 1) < 0.15
    assert 0.08 < LowRankLinear(512, 512, rank=16, init_std=0.1).dense_weight().std().item() < 0.12
    table_stds = [LowRankEmbedding(1000, 64, rank=8).dense_weight().std().item() for _ in range(10)]
    assert abs(sum(table_stds) / len(table_stds) - 1.0) < 0.15


def test_auto_path_goes_through_the_factors_while_rank_is_below_the_break_even():
    # factored: batch * r * (rows + cols); dense: r * rows * cols + batch * rows * cols; break-even r ~ 256
    assert LowRankLinear(512, 512, rank=64).matrix.choose_path(4096) == "factored"
    assert LowRankLinear(512, 512, rank=400).matrix.choose_path(4096) == "dense"
    emb = LowRankEmbedding(6632, 512, rank=32)
    assert emb.choose_path(1000) == "factored" and emb.choose_path(100_000) == "dense"


def test_factored_paths_never_build_the_matrix():
    """FLOPs of the factored paths are those of the two thin products, without the rows x cols matrix."""
    from torch.utils.flop_counter import FlopCounterMode

    layer = LowRankLinear(300, 200, rank=8, bias=False, path="factored")
    emb = LowRankEmbedding(5000, 64, rank=8, path="factored")
    for run, flops in ((lambda: layer(torch.randn(16, 300)), 2 * 16 * 8 * (300 + 200)),
                       (lambda: emb(torch.randint(0, 5000, (4, 10))), 2 * 40 * 8 * 64),
                       (lambda: emb.project(torch.randn(16, 64)), 2 * 16 * 8 * (5000 + 64))):
        with FlopCounterMode(display=False) as counter:
            run()
        assert counter.get_total_flops() == flops


def test_extra_repr_shows_shape_rank_params_and_compression():
    text = repr(LowRankLinear(512, 6632, rank=20))
    assert "6632x512" in text and "rank=20" in text and "order=" not in text
    assert f"params={20 * (6632 + 512):,}" in text and "compression=23.8x" in text
    assert LowRankEmbedding(6632, 512, rank=20).matrix.describe() == "6632x20 · 20x512"


def test_bad_inputs():
    with pytest.raises(ValueError, match="rank"):
        LowRankLinear(12, 10, rank=0)
    with pytest.raises(ValueError, match="last dim 12"):
        LowRankLinear(12, 10, rank=2)(torch.randn(2, 11))
    with pytest.raises(ValueError, match="padding_idx"):
        LowRankEmbedding(10, 4, rank=1, padding_idx=10)
    with pytest.raises(TypeError, match="LowRankEmbedding expects integer"):
        LowRankEmbedding(10, 4, rank=1)(torch.zeros(2))
    with pytest.raises(ValueError, match="does not fit"):
        from shapeshifter.nn.projection import project_into

        project_into(LowRankMatrix(4, 5, 2), torch.randn(5, 4))
