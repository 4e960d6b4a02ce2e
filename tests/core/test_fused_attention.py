"""`nn.MultiheadAttention`'s fused in_proj_weight under shapeshift: factorized as one matrix (``qkv: fused``) or
per q/k/v slice (``qkv: per_slice``), same outputs at an exact policy in training and in the eval fast path."""

import copy

import pytest
import torch
from torch import nn

from shapeshifter.bench.fused_qkv import error_rows, matched_fused_rank, per_slice_matrix, time_rows
from shapeshifter.nn import FactoredMultiheadAttention, KroneckerMatrix, LowRankMatrix, StackedMatrix
from shapeshifter.nn.projection import project_into
from shapeshifter.params import count_parameters
from shapeshifter.surgery import parse_policy, shapeshift

D, HEADS = 16, 2
# Order 2 at a rank no matrix here exceeds (48x16: 8x4 ⊗ 6x4, Kronecker rank <= 24; 16x16 and 32x16 less),
# fitted by projection: every factorized matrix is its dense weight up to float error.
EXACT = {t: {"rank": 32} for t in ("attention", "ffn")}


def encoder() -> nn.Module:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(D, HEADS, 32, dropout=0.0, batch_first=True)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


def exact_pair(qkv: str) -> tuple[nn.Module, nn.Module, list]:
    dense = encoder()
    model = copy.deepcopy(dense)
    policy = {t: {**spec, "qkv": qkv} for t, spec in EXACT.items()}
    report = shapeshift(model, policy, init="project")
    return dense, model, report.layers


@pytest.mark.parametrize("qkv", ["fused", "per_slice"])
def test_exact_policy_keeps_outputs_in_training_and_in_the_eval_fast_path(qkv, monkeypatch):
    dense, model, records = exact_pair(qkv)
    in_proj = [r for r in records if r.name.endswith("self_attn.in_proj")]
    assert len(in_proj) == 2 and all(r.status == "factorized" and r.reconstruction_error < 1e-5 for r in in_proj)
    x = torch.randn(2, 5, D, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model(x), dense(x), rtol=1e-4, atol=1e-5)  # training mode: module path
    model.eval()
    dense.eval()
    calls = []
    fast = torch._transformer_encoder_layer_fwd
    monkeypatch.setattr(torch, "_transformer_encoder_layer_fwd", lambda *a: calls.append(1) or fast(*a))
    with torch.no_grad():
        out = model(x)  # the fast path reads in_proj_weight (cached W) straight into a fused kernel
    assert len(calls) == 2, "the fused fast path was not taken"
    with torch.no_grad():
        torch.testing.assert_close(out, dense(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("qkv", ["fused", "per_slice"])
def test_backward_reaches_the_in_projection_factors(qkv):
    _, model, _ = exact_pair(qkv)
    model(torch.randn(2, 5, D)).pow(2).mean().backward()
    attn = model.layers[0].self_attn
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in attn.in_proj.factors)
    assert attn.in_proj_bias.grad is not None


def test_report_and_counts_list_multihead_attention_as_handled():
    model = encoder()
    dense = count_parameters(model)
    assert dense["by_type"]["attention"]["params"] == 2 * (3 * D * D + 3 * D + D * D + D)  # in_proj + out_proj
    report = shapeshift(model, {"attention": {"rank": 2, "qkv": "per_slice"}})
    assert report.unhandled == []
    rec = {r.name: r for r in report.layers}["layers.0.self_attn.in_proj"]
    attn = model.layers[0].self_attn
    assert isinstance(attn.in_proj, StackedMatrix) and rec.factors == "3 × [4x4 ⊗ 4x4]"
    assert rec.params_after == attn.in_proj.factor_params + 3 * D == 3 * 2 * 32 + 3 * D
    assert rec.layer_type == "attention" and rec.rank == 2
    after = count_parameters(model)
    assert after["by_type"]["attention"]["factorized"] == sum(
        m.matrix.factor_params if hasattr(m, "matrix") else m.in_proj.factor_params
        for layer in model.layers for m in (layer.self_attn, layer.self_attn.out_proj))
    assert after["dense_equivalent"] == dense["total"]


def test_in_proj_weight_is_read_only_and_state_dicts_round_trip():
    _, model, _ = exact_pair("per_slice")
    attn = model.layers[0].self_attn
    with pytest.raises(AttributeError, match="read-only"):
        attn.in_proj_weight = nn.Parameter(torch.zeros(3 * D, D))
    twin = encoder()
    shapeshift(twin, {t: {**spec, "qkv": "per_slice"} for t, spec in EXACT.items()})
    twin.load_state_dict(model.state_dict())
    x = torch.randn(2, 5, D)
    torch.testing.assert_close(twin(x), model(x))
    with pytest.raises(RuntimeError, match="in_proj_weight"):  # a dense checkpoint does not load silently
        twin.load_state_dict(encoder().state_dict())


def test_layer_built_directly_matches_nn_multihead_attention_interface():
    attn = FactoredMultiheadAttention(D, HEADS, KroneckerMatrix(3 * D, D, 2), batch_first=True)
    assert attn.in_proj_weight.shape == (3 * D, D)
    assert abs(attn.in_proj_weight.std().item() / (2 / (4 * D)) ** 0.5 - 1) < 0.5  # Xavier scale, as MHA's
    out, weights = attn(torch.randn(2, 5, D), torch.randn(2, 5, D), torch.randn(2, 5, D))
    assert out.shape == (2, 5, D) and weights.shape == (2, 5, 5)
    with pytest.raises(ValueError, match="48x16"):
        FactoredMultiheadAttention(D, HEADS, KroneckerMatrix(D, D, 2))


def test_separate_kdim_projections_stay_reported_as_unhandled():
    model = nn.ModuleDict({"attn": nn.MultiheadAttention(D, HEADS, kdim=8, vdim=8)})
    report = shapeshift(model, {"attention": {"rank": 1}})
    assert {r.name for r in report.unhandled} == {"attn.q_proj_weight", "attn.k_proj_weight", "attn.v_proj_weight"}
    assert all("kdim/vdim" in r.reason for r in report.unhandled)
    assert type(model["attn"]) is nn.MultiheadAttention


def test_qkv_policy_field_is_validated():
    assert parse_policy({"attention": {"rank": 1}})["attention"].qkv == "fused"
    with pytest.raises(ValueError, match="qkv must be"):
        parse_policy({"attention": {"rank": 1, "qkv": "split"}})


@pytest.mark.parametrize("kind", [KroneckerMatrix, LowRankMatrix])
def test_stacked_matrix_paths_projection_and_rows_agree(kind):
    torch.manual_seed(0)
    parts = [kind(8, 6, 6) for _ in range(3)]
    stacked = StackedMatrix(parts)
    weight = torch.randn(24, 6)
    assert project_into(stacked, weight) < 1e-5  # rank 6 is exact for 8x6 slices of either kind
    torch.testing.assert_close(stacked.dense_weight(), weight, rtol=1e-4, atol=1e-5)
    x = torch.randn(5, 6)
    torch.testing.assert_close(stacked._factored_matmul_t(x), x @ weight.T, rtol=1e-4, atol=1e-5)
    index = torch.tensor([[0, 9], [17, 23]])
    torch.testing.assert_close(stacked.gather_rows(index), weight[index], rtol=1e-4, atol=1e-5)
    assert stacked.factor_params == sum(p.factor_params for p in parts)
    with pytest.raises(ValueError, match="share size"):
        StackedMatrix([kind(8, 6, 2), kind(8, 6, 3)])


def test_fused_qkv_bench_runs_on_tiny_sizes():
    weights = [torch.randn(3 * 16, 16)]
    row = error_rows(weights, [1, 2])[1]
    assert row["params"] == per_slice_matrix(16, 2).factor_params
    assert 0 < row["per_slice_error"] < 1 and 0 < row["fused_error"] < 1
    assert matched_fused_rank(16, 1) >= 1
    timing = time_rows(16, 2, [1], batch=2, length=4, reps=2)[0]
    assert timing["per_slice_ratio"] > 0 and timing["fused_ratio"] > 0
