import argparse
import types

import pytest
import torch
from torch import nn

import shapeshifter
from shapeshifter.experiment.policy import policy_from_config
from shapeshifter.layer_types import LayerTypeClassifier
from shapeshifter.nn import (
    FactoredMultiheadAttention,
    KroneckerEmbedding,
    KroneckerLinear,
    LowRankEmbedding,
    LowRankLinear,
    TiedKroneckerOutput,
    TiedOutput,
)
from shapeshifter.params import count_parameters, parse_assignments
from shapeshifter.surgery import LayerSpec, parse_policy, shapeshift

PAPER_LIKE = {"embedding": {"rank": 16}, "attention": {"rank": 1}, "ffn": {"rank": 2}}


def fairseq_iwslt(src_vocab=8848, tgt_vocab=6632, **overrides):
    """fairseq's transformer_iwslt_de_en with the IWSLT'14 recipe's tied decoder embedding."""
    fairseq = pytest.importorskip("fairseq")
    from fairseq.data import Dictionary
    from fairseq.models import ARCH_CONFIG_REGISTRY
    from fairseq.models.transformer import TransformerModel

    def dictionary(n):
        d = Dictionary()
        for i in range(n - len(d)):
            d.add_symbol(f"w{i}")
        return d

    args = argparse.Namespace(share_decoder_input_output_embed=True, **overrides)
    ARCH_CONFIG_REGISTRY["transformer_iwslt_de_en"](args)
    task = types.SimpleNamespace(source_dictionary=dictionary(src_vocab), target_dictionary=dictionary(tgt_vocab))
    del fairseq
    return TransformerModel.build_model(args, task)


def test_fairseq_iwslt_transformer_gets_more_than_10x_smaller():
    torch.manual_seed(0)
    model = fairseq_iwslt()
    dense = count_parameters(model)
    assert dense["total"] == 39_469_056  # 6+6 layers, d 512, FFN 1024, 8848/6632 vocab, tied decoder in/out
    report = shapeshift(model, PAPER_LIKE)
    after = count_parameters(model)
    assert dense["total"] / after["total"] > 10
    assert after["dense_equivalent"] == dense["total"]
    assert report.unhandled == []
    kinds = {r.name: r for r in report.layers}
    assert kinds["decoder.output_projection"].kind == "tied_output"
    assert isinstance(model.decoder.output_projection, TiedKroneckerOutput)
    assert model.decoder.output_projection.embedding is model.decoder.embed_tokens
    assert isinstance(model.encoder.layers[0].self_attn.q_proj, KroneckerLinear)
    assert model.encoder.layers[0].self_attn.q_proj.rank == 1
    assert isinstance(model.decoder.layers[5].fc2, KroneckerLinear) and model.decoder.layers[5].fc2.rank == 2
    assert after["by_type"]["embedding"]["factorized"] == sum(
        m.matrix.factor_params for m in (model.encoder.embed_tokens, model.decoder.embed_tokens))


def test_shapeshifted_fairseq_model_trains_and_keeps_tie():
    torch.manual_seed(0)
    model = fairseq_iwslt(src_vocab=300, tgt_vocab=200, encoder_layers=1, decoder_layers=1)
    shapeshift(model, {"embedding": {"rank": 4}, "attention": {"rank": 2, "order": 3}, "ffn": {"rank": 1}})
    for mod in model.modules():  # fairseq's fused attention path reads .weight; the adapter turns it off
        if type(mod).__name__ == "MultiheadAttention":
            mod._set_skip_embed_dim_check()
    src = torch.randint(4, 300, (2, 9))
    tgt = torch.randint(4, 200, (2, 7))
    logits, _ = model(src, torch.tensor([9, 9]), tgt)
    assert logits.shape == (2, 7, 200)
    logits.logsumexp(-1).mean().backward()
    emb = model.decoder.embed_tokens
    assert all(f.grad is not None for f in emb.factors)
    # state dict round trip into a freshly shapeshifted model reproduces outputs
    model.eval()
    twin = fairseq_iwslt(src_vocab=300, tgt_vocab=200, encoder_layers=1, decoder_layers=1)
    shapeshift(twin, {"embedding": {"rank": 4}, "attention": {"rank": 2, "order": 3}, "ffn": {"rank": 1}})
    for mod in twin.modules():
        if type(mod).__name__ == "MultiheadAttention":
            mod._set_skip_embed_dim_check()
    twin.load_state_dict(model.state_dict())
    twin.eval()
    with torch.no_grad():
        torch.testing.assert_close(twin(src, torch.tensor([9, 9]), tgt)[0], model(src, torch.tensor([9, 9]), tgt)[0])


class TinyTorchTransformer(nn.Module):
    """Built from PyTorch's own layers, which keep a fused in_proj_weight."""

    def __init__(self):
        super().__init__()
        self.embed_tokens = nn.Embedding(50, 16, padding_idx=0)
        self.layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
        self.output_projection = nn.Linear(16, 50, bias=False)
        self.output_projection.weight = self.embed_tokens.weight

    def forward(self, x):
        return self.output_projection(self.layer(self.embed_tokens(x)))


def test_fused_attention_is_factorized_and_reported():
    model = TinyTorchTransformer()
    report = shapeshift(model, {"embedding": {"rank": 2}, "attention": {"rank": 1}, "ffn": {"rank": 1}})
    assert report.unhandled == []
    records = {r.name: r for r in report.layers}
    in_proj = records["layer.self_attn.in_proj"]
    assert (in_proj.status, in_proj.layer_type, in_proj.shape) == ("factorized", "attention", (48, 16))
    attn = model.layer.self_attn
    assert isinstance(attn, FactoredMultiheadAttention)
    # MultiheadAttention reads out_proj.weight directly: the factorized layer's read-only weight serves it
    assert isinstance(attn.out_proj, KroneckerLinear)
    assert isinstance(model.layer.linear1, KroneckerLinear)
    assert isinstance(model.output_projection, TiedKroneckerOutput)
    out = model(torch.randint(0, 50, (2, 5)))
    assert out.shape == (2, 5, 50)


def test_project_init_records_reconstruction_error_and_keeps_function_at_full_rank():
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("fc1", nn.Linear(12, 8))
    model.add_module("act", nn.ReLU())
    model.add_module("fc2", nn.Linear(8, 6))
    x = torch.randn(4, 12)
    before = model[0](x)
    # rank = min(m1 n1, m2 n2) reproduces any matrix exactly
    report = shapeshift(model, {"ffn": {"rank": 12, "scheme": [[4, 2], [4, 3]]}}, init="project")
    errors = {r.name: r.reconstruction_error for r in report.layers}
    assert errors["fc1"] < 1e-5
    assert isinstance(model.fc1, KroneckerLinear)
    assert isinstance(model.fc2, KroneckerLinear)
    assert errors["fc2"] is not None
    torch.testing.assert_close(model.fc1(x), before, rtol=1e-4, atol=1e-5)
    low = nn.Sequential(nn.Linear(64, 64))
    low_report = shapeshift(low, {"other": {"rank": 1}}, init="project")
    assert 0 < low_report.layers[0].reconstruction_error < 1


def test_random_init_matches_the_replaced_weights_scale():
    torch.manual_seed(0)
    lin = nn.Linear(256, 256)
    with torch.no_grad():
        lin.weight.normal_(0, 0.2)
    holder = nn.Sequential(lin)
    shapeshift(holder, {"other": {"rank": 4}})
    assert abs(holder[0].dense_weight().std().item() / 0.2 - 1) < 0.3


@pytest.mark.parametrize("gain", [0.25, 4.0])
def test_init_gain_scales_the_random_init_of_linears_and_embeddings(gain: float) -> None:
    torch.manual_seed(0)
    model = nn.ModuleDict({"fc": nn.Linear(256, 256), "emb": nn.Embedding(1024, 64)})
    with torch.no_grad():
        model["fc"].weight.normal_(0, 0.2)
    shapeshift(model, {"other": {"rank": 16, "init_gain": gain}, "embedding": {"rank": 16, "init_gain": gain}})
    assert model["fc"].dense_weight().std().item() == pytest.approx(0.2 * gain, rel=0.3)
    assert model["emb"].dense_weight().std().item() == pytest.approx(1.0 * gain, rel=0.3)  # nn.Embedding: N(0, 1)
    with pytest.raises(ValueError, match="init_gain must be a positive number"):
        shapeshift(nn.Sequential(nn.Linear(8, 8)), {"other": {"rank": 1, "init_gain": 0}})


def test_policy_validation():
    assert parse_policy({"ffn": "dense"})["ffn"] is None
    assert parse_policy({"ffn": {"rank": 2, "scheme": [[4, 2], [4, 3]]}})["ffn"].scheme == ((4, 2), (4, 3))
    with pytest.raises(ValueError, match="unknown layer type 'mlp'"):
        parse_policy({"mlp": {"rank": 1}})
    with pytest.raises(ValueError, match="needs a 'rank'"):
        parse_policy({"ffn": {"order": 2}})
    with pytest.raises(ValueError, match="unknown field"):
        parse_policy({"ffn": {"rank": 1, "ranks": 2}})
    with pytest.raises(ValueError, match="rank must be"):
        parse_policy({"ffn": {"rank": 0}})
    with pytest.raises(ValueError, match="init must be"):
        shapeshift(nn.Linear(2, 2), {}, init="svd")
    assert parse_assignments(["embedding.rank=16", "ffn=dense", "attention=2"]) == {
        "embedding": {"rank": 16}, "ffn": "dense", "attention": {"rank": 2}}


@pytest.mark.parametrize("name,expected", [
    ("encoder.layers.0.self_attn.q_proj", "attention"),
    ("decoder.layers.3.encoder_attn.out_proj", "attention"),
    ("bert.encoder.layer.0.attention.self.query", "attention"),
    ("bert.encoder.layer.0.attention.output.dense", "attention"),
    ("bert.encoder.layer.0.intermediate.dense", "ffn"),
    ("bert.encoder.layer.0.output.dense", "ffn"),
    ("decoder.layers.0.fc1", "ffn"),
    ("decoder.output_projection", "output"),
    ("classifier", "output"),
    ("bert.pooler.dense", "other"),
])
def test_layer_type_patterns(name, expected):
    assert LayerTypeClassifier()(name, nn.Linear(2, 2)) == expected


def test_custom_patterns_and_embedding_type():
    classify = LayerTypeClassifier({"ffn": r"\.mlp\.(in|out)$"})
    assert classify("blocks.0.mlp.in", nn.Linear(2, 2)) == "ffn"
    assert classify("anything", nn.Embedding(3, 2)) == "embedding"
    assert classify("x", KroneckerEmbedding(30, 4, rank=1)) == "embedding"
    with pytest.raises(ValueError, match="unknown layer type"):
        LayerTypeClassifier({"mlp": "x"})


def test_hf_bert_is_shapeshifted_by_default_patterns():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=40)
    model = transformers.BertModel(config)
    policy = {"embedding": {"rank": 2}, "attention": {"rank": 1}, "ffn": {"rank": 1}}
    with pytest.raises(ValueError, match="is a transformers model"):  # the core knows no transformers layouts
        shapeshift(model, policy)
    report = shapeshifter.shapeshift(model, policy, init="project")  # routed through shapeshifter.hf
    types_ = {r.name: r.layer_type for r in report.layers if r.status == "factorized"}
    assert types_["encoder.layer.0.attention.self.query"] == "attention"
    assert types_["encoder.layer.1.output.dense"] == "ffn"
    assert types_["embeddings.word_embeddings"] == "embedding"
    assert report.unhandled == []
    out = model(input_ids=torch.randint(0, 100, (2, 6)))
    assert out.last_hidden_state.shape == (2, 6, 32)


def test_exclude_keeps_matching_modules_dense():
    model = nn.ModuleDict({"embed_tokens": nn.Embedding(100, 16), "token_type_embeddings": nn.Embedding(2, 16),
                           "fc1": nn.Linear(16, 32)})
    report = shapeshift(model, {"embedding": {"rank": 2}, "ffn": {"rank": 1},
                                "exclude": [r"token_type_embeddings$"]})
    assert isinstance(model["embed_tokens"], KroneckerEmbedding)
    assert type(model["token_type_embeddings"]) is nn.Embedding
    assert {r.name: r.reason for r in report.layers}["token_type_embeddings"] == "policy: excluded"
    with pytest.raises(ValueError, match="bad regular expression"):
        parse_policy({"exclude": ["("]})


LOW_RANK = {"embedding": {"rank": 16, "kind": "lowrank"}, "attention": {"rank": 8, "kind": "lowrank"},
            "ffn": {"rank": 4, "kind": "lowrank"}}
PHM4 = {t: {"rank": 4, "scheme": "phm4"} for t in ("embedding", "attention", "ffn")}


def small_fairseq():
    return fairseq_iwslt(src_vocab=300, tgt_vocab=200, encoder_layers=1, decoder_layers=1)


def run_fairseq(model):
    """Forward and backward through a shapeshifted fairseq model; returns the logits."""
    for mod in model.modules():  # fairseq's fused attention path reads .weight; the adapter turns it off
        if type(mod).__name__ == "MultiheadAttention":
            mod._set_skip_embed_dim_check()
    src, tgt = torch.randint(4, 300, (2, 9)), torch.randint(4, 200, (2, 7))
    logits, _ = model(src, torch.tensor([9, 9]), tgt)
    logits.logsumexp(-1).mean().backward()
    return logits


def check_accounting_and_tie(model, dense, layer_classes):
    """Counts equal the factors' sizes, the decoder's output projection reads its embedding's factors."""
    after = count_parameters(model)
    factored = [m for m in model.modules() if isinstance(m, layer_classes)]  # the shared embedding once
    assert after["factorized"] == sum(m.matrix.factor_params for m in factored)
    assert after["total"] == dense["total"] - sum(m.matrix.rows * m.matrix.cols for m in factored) + after["factorized"]
    assert after["dense_equivalent"] == dense["total"]
    assert after["by_type"]["output"]["params"] == 0  # the tied projection adds nothing
    out, emb = model.decoder.output_projection, model.decoder.embed_tokens
    assert isinstance(out, TiedOutput) and out.embedding is emb
    assert all(a is b for a, b in zip(out.embedding.factors, emb.factors))
    return after


def test_low_rank_policy_on_fairseq_transformer_counts_ties_and_trains():
    torch.manual_seed(0)
    model = small_fairseq()
    dense = count_parameters(model)
    report = shapeshift(model, LOW_RANK)
    after = check_accounting_and_tie(model, dense, (LowRankLinear, LowRankEmbedding))
    assert report.unhandled == []
    assert after["by_type"]["embedding"]["factorized"] == 16 * (300 + 512) + 16 * (200 + 512)
    q_proj, fc1 = model.encoder.layers[0].self_attn.q_proj, model.decoder.layers[0].fc1
    assert isinstance(q_proj, LowRankLinear) and [tuple(f.shape) for f in q_proj.factors] == [(512, 8), (8, 512)]
    assert isinstance(fc1, LowRankLinear) and [tuple(f.shape) for f in fc1.factors] == [(1024, 4), (4, 512)]
    records = {r.name: r for r in report.layers}
    tied = records["decoder.output_projection"]
    assert (tied.kind, tied.status, tied.factorization) == ("tied_output", "factorized", "lowrank")
    assert tied.factors == "200x16 · 16x512" and tied.order is None and tied.params_after == 0
    fc1_rec = records["decoder.layers.0.fc1"]
    assert fc1_rec.params_after == 4 * (1024 + 512) + 1024 and fc1_rec.factors == "1024x4 · 4x512"
    assert run_fairseq(model).shape == (2, 7, 200)
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in model.decoder.embed_tokens.factors)
    model.eval()  # a checkpoint of the low-rank model loads into a freshly shapeshifted twin
    twin = small_fairseq()
    shapeshift(twin, LOW_RANK)
    run_fairseq(twin)
    twin.load_state_dict(model.state_dict())
    twin.eval()
    src, tgt = torch.randint(4, 300, (2, 9)), torch.randint(4, 200, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(twin(src, torch.tensor([9, 9]), tgt)[0], model(src, torch.tensor([9, 9]), tgt)[0])


def test_phm_scheme_on_fairseq_transformer_counts_ties_and_trains():
    torch.manual_seed(0)
    model = small_fairseq()
    dense = count_parameters(model)
    report = shapeshift(model, PHM4)
    check_accounting_and_tie(model, dense, (KroneckerLinear, KroneckerEmbedding))
    assert report.unhandled == []
    q_proj, fc1 = model.encoder.layers[0].self_attn.q_proj, model.encoder.layers[0].fc1
    assert [tuple(f.shape) for f in q_proj.factors] == [(4, 4, 4), (4, 128, 128)]
    assert [tuple(f.shape) for f in fc1.factors] == [(4, 4, 4), (4, 256, 128)]
    emb = {r.name: r for r in report.layers}["decoder.embed_tokens"]
    assert (emb.factors, emb.factorization, emb.order) == ("4x4 ⊗ 50x128", "kronecker", 2)
    assert emb.params_after == 4 * (16 + 50 * 128)
    assert run_fairseq(model).shape == (2, 7, 200)
    assert all(f.grad is not None for f in fc1.factors)


class TinyTiedModel(nn.Module):
    """An embedding, one hidden layer and an output projection sharing the embedding's weight."""

    def __init__(self):
        super().__init__()
        self.embed_tokens = nn.Embedding(50, 16, padding_idx=0)
        self.fc1 = nn.Linear(16, 16)
        self.output_projection = nn.Linear(16, 50)
        self.output_projection.weight = self.embed_tokens.weight

    def forward(self, x):
        return self.output_projection(torch.relu(self.fc1(self.embed_tokens(x))))


@pytest.mark.parametrize("init", ["random", "project"])
def test_low_rank_embedding_keeps_its_tie_and_bias(init):
    torch.manual_seed(0)
    model = TinyTiedModel()
    bias = model.output_projection.bias.detach().clone()
    report = shapeshift(model, {"embedding": {"rank": 4, "kind": "lowrank"}, "ffn": {"rank": 2, "kind": "lowrank"}},
                        init=init)
    assert isinstance(model.embed_tokens, LowRankEmbedding) and isinstance(model.fc1, LowRankLinear)
    assert isinstance(model.output_projection, TiedOutput) and model.output_projection.embedding is model.embed_tokens
    torch.testing.assert_close(model.output_projection.bias, bias)
    assert count_parameters(model)["total"] == 4 * (50 + 16) + 2 * (16 + 16) + 16 + 50
    errors = [r.reconstruction_error for r in report.factorized if r.kind != "tied_output"]
    assert all(0 < e < 1 for e in errors) if init == "project" else errors == [None, None]
    model(torch.randint(0, 50, (2, 5))).sum().backward()
    assert model.embed_tokens.factors[0].grad[0].abs().max() == 0  # padding row: no gradient through the tie


@pytest.mark.parametrize("init", ["random", "project"])
def test_report_gives_the_mean_projection_error_per_layer_type(init):
    torch.manual_seed(0)
    report = shapeshift(TinyTiedModel(), {"embedding": {"rank": 4, "kind": "lowrank"}, "ffn": {"rank": 2}}, init=init)
    by_type = report.mean_error_by_type()
    if init == "random":
        assert by_type == {}
        return
    expected = {t: [r.reconstruction_error for r in report.factorized if r.layer_type == t and
                    r.reconstruction_error is not None] for t in ("embedding", "ffn")}
    assert by_type == {t: pytest.approx(sum(e) / len(e)) for t, e in expected.items()}
    assert all(0 < e < 1 for e in by_type.values())


def test_low_rank_project_init_is_exact_at_full_rank():
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("fc1", nn.Linear(12, 8))
    x = torch.randn(4, 12)
    before = model(x)
    report = shapeshift(model, {"ffn": {"rank": 8, "kind": "lowrank"}}, init="project")
    assert isinstance(model.fc1, LowRankLinear) and report.layers[0].reconstruction_error < 1e-5
    torch.testing.assert_close(model(x), before, rtol=1e-4, atol=1e-5)


def test_low_rank_random_init_matches_the_replaced_weights_scale():
    torch.manual_seed(0)
    lin = nn.Linear(256, 256)
    with torch.no_grad():
        lin.weight.normal_(0, 0.2)
    holder = nn.Sequential(lin)
    shapeshift(holder, {"other": {"rank": 16, "kind": "lowrank"}})
    assert isinstance(holder[0], LowRankLinear)
    assert abs(holder[0].dense_weight().std().item() / 0.2 - 1) < 0.3


def test_kind_and_phm_validation():
    assert parse_policy({"ffn": {"rank": 8, "kind": "lowrank"}})["ffn"] == LayerSpec(8, kind="lowrank")
    assert parse_policy({"ffn": {"rank": 4, "scheme": "phm4"}})["ffn"].kind == "kronecker"
    with pytest.raises(ValueError, match=r"kind must be one of \['kronecker', 'lowrank'\], got 'svd'"):
        parse_policy({"ffn": {"rank": 2, "kind": "svd"}})
    with pytest.raises(ValueError, match="kind 'lowrank' has no order or reshape scheme"):
        parse_policy({"ffn": {"rank": 2, "kind": "lowrank", "order": 3}})
    with pytest.raises(ValueError, match="kind 'lowrank' has no order or reshape scheme"):
        parse_policy({"ffn": {"rank": 2, "kind": "lowrank", "scheme": "phm2"}})
    with pytest.raises(ValueError, match="'phm4' sums n = 4 Kronecker products, so rank must be 4, got rank 2"):
        parse_policy({"attention": {"rank": 2, "scheme": "phm4"}})
    with pytest.raises(ValueError, match="'phm2' is order 2"):
        parse_policy({"attention": {"rank": 2, "scheme": "phm2", "order": 3}})
    assert parse_assignments(["ffn.rank=8", "ffn.kind=lowrank"]) == {"ffn": {"rank": 8, "kind": "lowrank"}}


def test_policy_from_config_passes_kind_through_only_when_given():
    policy = policy_from_config({"layers": ["attn", "ffn"], "rank": 8, "kind": "lowrank"})
    assert policy == {t: {"rank": 8, "order": 2, "scheme": "balanced", "path": "auto", "kind": "lowrank"}
                      for t in ("attention", "ffn")}
    mixed = policy_from_config({"layers": ["emb", "ffn"], "rank": 4, "scheme": "phm4",
                                "per_type": {"embedding": {"kind": "lowrank", "rank": 32, "scheme": "balanced"}}})
    assert mixed["embedding"]["kind"] == "lowrank" and "kind" not in mixed["ffn"]
    with pytest.raises(ValueError, match="kind must be one of"):
        policy_from_config({"layers": ["ffn"], "kind": "tucker"})
    assert "init_gain" not in policy_from_config({"layers": ["ffn"], "rank": 2})["ffn"]  # same hash as before
    assert policy_from_config({"layers": ["ffn"], "rank": 2, "init_gain": 0.5})["ffn"]["init_gain"] == 0.5


@pytest.mark.parametrize("rank", [2.7, "two", True, None])
def test_a_rank_that_is_not_a_whole_number_is_an_error_not_truncated(rank: object) -> None:
    with pytest.raises(ValueError, match="whole number"):
        parse_policy({"attention": {"rank": rank}})


def test_a_rank_given_as_text_or_float_means_the_same_policy() -> None:
    same = [parse_policy({"ffn": {"rank": rank}}) for rank in ("2", 2.0, 2)]
    assert same[0] == same[1] == same[2] and same[2]["ffn"].rank == 2


@pytest.mark.parametrize("spec,shape,rank", [
    ({"rank": "full"}, (8, 12), 8),  # balanced: A 4x3, B 2x4 -> min(4*3, 2*4)
    ({"rank": "full", "scheme": [[4, 2], [4, 3]]}, (8, 12), 6),  # A 4x4, B 2x3 -> min(16, 6)
    ({"rank": "full", "kind": "lowrank"}, (8, 12), 8),  # min(rows, cols)
    ({"rank": "full"}, (6632, 512), 1584),  # A 99x16 (6633 rows, one cropped), B 67x32 -> min(1584, 2144)
])
def test_rank_full_is_the_smallest_exact_rank_of_each_matrix(spec, shape, rank) -> None:
    assert parse_policy({"ffn": spec})["ffn"].at(*shape).rank == rank


@pytest.mark.parametrize("kind", ["kronecker", "lowrank"])
def test_rank_full_reproduces_every_layer_and_is_recorded_as_given(kind) -> None:
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("embed_tokens", nn.Embedding(30, 12))
    model.add_module("fc1", nn.Linear(12, 20))
    model.add_module("fc2", nn.Linear(20, 12))
    ids = torch.randint(0, 30, (3, 5))
    before = model(ids)
    report = shapeshift(model, {t: {"rank": "full", "kind": kind} for t in ("embedding", "ffn")}, init="project")
    assert len(report.factorized) == 3 and max(r.reconstruction_error for r in report.factorized) < 1e-5
    torch.testing.assert_close(model(ids), before, rtol=1e-4, atol=1e-5)
    assert all(isinstance(r.rank, int) for r in report.factorized)


def test_rank_full_validation() -> None:
    assert parse_policy({"ffn": {"rank": "full"}})["ffn"].rank == "full"
    with pytest.raises(ValueError, match="rank 'full' \\(exact\\) needs order 2"):
        parse_policy({"ffn": {"rank": "full", "order": 3}})
    with pytest.raises(ValueError, match="PHM's rank is its n"):
        parse_policy({"ffn": {"rank": "full", "scheme": "phm4"}})
    with pytest.raises(ValueError, match="whole number.*or 'full'"):
        parse_policy({"ffn": {"rank": "fulll"}})
    with pytest.raises(ValueError, match="depends on the matrix"):
        LayerSpec("full").layer_args  # noqa: B018
    assert policy_from_config({"layers": ["ffn"], "rank": "full"})["ffn"]["rank"] == "full"


class ScaledEmbedding(nn.Embedding):
    """An embedding with a forward of its own (as BART's scaled word embedding)."""

    def forward(self, index):
        return super().forward(index) * 4.0


def test_subclass_with_its_own_forward_stays_dense_and_is_reported():
    model = nn.ModuleDict({"embed_tokens": ScaledEmbedding(40, 8), "embed_positions": nn.Embedding(40, 8)})
    report = shapeshift(model, {"embedding": {"rank": 2}})
    assert isinstance(model.embed_tokens, ScaledEmbedding)
    assert isinstance(model.embed_positions, KroneckerEmbedding)
    (rec,) = report.unhandled
    assert rec.name == "embed_tokens" and "overrides Embedding.forward" in rec.reason


def test_embeddings_sharing_one_weight_share_one_replacement():
    shared = nn.Embedding(40, 8)
    model = nn.ModuleDict({"shared": shared, "enc": nn.Embedding(40, 8), "dec": nn.Embedding(40, 8),
                           "lm_head": nn.Linear(8, 40, bias=False)})
    for name in ("enc", "dec", "lm_head"):
        model[name].weight = shared.weight
    dense_params = count_parameters(model)["total"]
    report = shapeshift(model, {"embedding": {"rank": 2}})
    assert model["shared"] is model["enc"] is model["dec"] is model["lm_head"].embedding
    records = {r.name: r for r in report.layers}
    assert records["enc"].status == "factorized" and records["enc"].reason == "shares the weight of shared"
    assert sum(r.params_before for r in report.layers) == dense_params
    # one group member excluded keeps the whole group (and the tie) dense
    model2 = nn.ModuleDict({"shared": nn.Embedding(40, 8), "enc": nn.Embedding(40, 8)})
    model2["enc"].weight = model2["shared"].weight
    shapeshift(model2, {"embedding": {"rank": 2}, "exclude": "enc"})
    assert model2["enc"].weight is model2["shared"].weight
