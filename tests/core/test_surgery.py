import argparse
import types

import pytest
import torch
from torch import nn

from shapeshifter.layer_types import LayerTypeClassifier
from shapeshifter.nn import KroneckerEmbedding, KroneckerLinear, TiedKroneckerOutput
from shapeshifter.params import count_parameters, parse_assignments
from shapeshifter.surgery import parse_policy, shapeshift

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


def test_fused_attention_is_reported_not_skipped():
    model = TinyTorchTransformer()
    report = shapeshift(model, {"embedding": {"rank": 2}, "attention": {"rank": 1}, "ffn": {"rank": 1}})
    unhandled = {r.name for r in report.unhandled}
    assert "layer.self_attn.in_proj_weight" in unhandled
    assert "layer.self_attn.out_proj" in unhandled
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
    report = shapeshift(model, {"embedding": {"rank": 2}, "attention": {"rank": 1}, "ffn": {"rank": 1}},
                        init="project")
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
