import pytest
import torch

from shapeshifter.nn import KroneckerEmbedding, TiedKroneckerOutput


@pytest.mark.parametrize("num,dim,order,rank", [(8848, 64, 2, 4), (6632, 48, 3, 2), (1000, 513, 2, 1),
                                                (513, 30, 4, 3)])
def test_rows_match_dense_table_and_projection(num, dim, order, rank):
    torch.manual_seed(0)
    emb = KroneckerEmbedding(num, dim, rank, order).double()
    table = emb.dense_weight()
    assert table.shape == (num, dim)
    idx = torch.randint(0, num, (3, 11))
    idx[0, 0] = num - 1
    h = torch.randn(5, dim, dtype=torch.float64)
    for path in ("factored", "dense", "auto"):
        emb.matrix.path = path
        torch.testing.assert_close(emb(idx), table[idx])
        torch.testing.assert_close(emb.project(h), h @ table.T)
    with torch.no_grad():
        torch.testing.assert_close(emb(idx), table[idx])


@pytest.mark.parametrize("path", ["factored", "dense"])
def test_padding_row_is_zero_and_gets_no_gradient(path):
    torch.manual_seed(0)
    emb = KroneckerEmbedding(100, 16, rank=2, padding_idx=1, path=path)
    idx = torch.tensor([[1, 1, 1]])
    out = emb(idx)
    assert torch.count_nonzero(out) == 0
    out.sum().backward()
    assert all(f.grad is None or torch.count_nonzero(f.grad) == 0 for f in emb.factors)
    assert torch.count_nonzero(emb.dense_weight()[1]) == 0
    assert emb.project(torch.randn(2, 16))[:, 1].abs().max() == 0
    # non-padding rows do get gradient
    emb(torch.tensor([[5]])).sum().backward()
    assert any(torch.count_nonzero(f.grad) > 0 for f in emb.factors)


def test_tied_output_shares_factors():
    emb = KroneckerEmbedding(300, 32, rank=3, padding_idx=0)
    out = TiedKroneckerOutput(emb)
    h = torch.randn(4, 32)
    torch.testing.assert_close(out(h), h @ emb.dense_weight().T)
    model = torch.nn.ModuleDict({"emb": emb, "out": out})
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in emb.parameters())
    state = model.state_dict()
    fresh = torch.nn.ModuleDict({"emb": KroneckerEmbedding(300, 32, rank=3, padding_idx=0)})
    fresh["out"] = TiedKroneckerOutput(fresh["emb"])
    fresh.load_state_dict(state)
    assert fresh["out"].embedding is fresh["emb"]
    torch.testing.assert_close(fresh["out"](h), out(h))


def test_default_init_matches_nn_embedding_scale():
    torch.manual_seed(0)
    stds = [KroneckerEmbedding(1000, 64, rank=4).dense_weight().std().item() for _ in range(10)]
    assert abs(sum(stds) / len(stds) - 1.0) < 0.15


def test_bad_inputs():
    with pytest.raises(ValueError, match="padding_idx"):
        KroneckerEmbedding(10, 4, rank=1, padding_idx=10)
    with pytest.raises(TypeError, match="integer"):
        KroneckerEmbedding(10, 4, rank=1)(torch.zeros(2))
