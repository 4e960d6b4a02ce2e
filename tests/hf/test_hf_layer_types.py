"""Layer-type name patterns for T5, DistilBERT, Llama, GPT-2, BART, GPT-NeoX, Phi-3, ALBERT and ViT, on models built
from tiny configs."""

import pytest
from tiny_hf_models import BUILDERS
from torch import nn

from shapeshifter.layer_types import LayerTypeClassifier

pytest.importorskip("transformers")

EXPECTED = {
    "T5ForConditionalGeneration": {
        "encoder.block.0.layer.0.SelfAttention.q": "attention", "encoder.block.0.layer.0.SelfAttention.o": "attention",
        "decoder.block.0.layer.1.EncDecAttention.k": "attention", "encoder.block.0.layer.1.DenseReluDense.wi_0": "ffn",
        "encoder.block.0.layer.1.DenseReluDense.wi_1": "ffn", "decoder.block.1.layer.2.DenseReluDense.wo": "ffn",
        "lm_head": "output", "shared": "embedding",
    },
    "DistilBertForMaskedLM": {
        "distilbert.transformer.layer.0.attention.q_lin": "attention",
        "distilbert.transformer.layer.0.attention.out_lin": "attention",
        "distilbert.transformer.layer.1.ffn.lin1": "ffn", "distilbert.transformer.layer.1.ffn.lin2": "ffn",
        "vocab_projector": "output", "distilbert.embeddings.word_embeddings": "embedding",
    },
    "LlamaForCausalLM": {
        "model.layers.0.self_attn.q_proj": "attention", "model.layers.0.self_attn.o_proj": "attention",
        "model.layers.1.mlp.gate_proj": "ffn", "model.layers.1.mlp.up_proj": "ffn",
        "model.layers.1.mlp.down_proj": "ffn",
        "model.embed_tokens": "embedding", "lm_head": "output",
    },
    "GPT2LMHeadModel": {
        "transformer.h.0.attn.c_attn": "attention", "transformer.h.0.attn.c_proj": "attention",
        "transformer.h.1.mlp.c_fc": "ffn", "transformer.h.1.mlp.c_proj": "ffn",
        "transformer.wte": "embedding", "transformer.wpe": "embedding", "lm_head": "output",
    },
    "BartForConditionalGeneration": {
        "model.encoder.layers.0.self_attn.q_proj": "attention",
        "model.decoder.layers.0.encoder_attn.out_proj": "attention",
        "model.encoder.layers.0.fc1": "ffn", "model.decoder.layers.0.fc2": "ffn",
        "model.shared": "embedding", "model.encoder.embed_positions": "embedding", "lm_head": "output",
    },
    "GPTNeoXForCausalLM": {
        "gpt_neox.layers.0.attention.query_key_value": "attention", "gpt_neox.layers.0.attention.dense": "attention",
        "gpt_neox.layers.1.mlp.dense_h_to_4h": "ffn", "gpt_neox.layers.1.mlp.dense_4h_to_h": "ffn",
        "gpt_neox.embed_in": "embedding",
    },
    "Phi3ForCausalLM": {
        "model.layers.0.self_attn.qkv_proj": "attention", "model.layers.0.self_attn.o_proj": "attention",
        "model.layers.1.mlp.gate_up_proj": "ffn", "model.layers.1.mlp.down_proj": "ffn", "lm_head": "output",
    },
    "AlbertForMaskedLM": {  # one layer shared by every depth
        "albert.encoder.albert_layer_groups.0.albert_layers.0.attention.query": "attention",
        "albert.encoder.albert_layer_groups.0.albert_layers.0.attention.dense": "attention",
        "albert.encoder.albert_layer_groups.0.albert_layers.0.ffn": "ffn",
        "albert.encoder.albert_layer_groups.0.albert_layers.0.ffn_output": "ffn",
        "albert.encoder.embedding_hidden_mapping_in": "other", "predictions.decoder": "output",
    },
    "ViTForImageClassification": {  # transformers 5 names; the older ones are checked below
        "vit.layers.0.attention.q_proj": "attention", "vit.layers.0.attention.o_proj": "attention",
        "vit.layers.1.mlp.fc1": "ffn", "vit.layers.1.mlp.fc2": "ffn", "classifier": "output",
    },
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_projection_of_the_model_gets_its_type(name):
    model, _ = BUILDERS[name]()
    modules = dict(model.named_modules())
    classify = LayerTypeClassifier()
    for module_name, expected in EXPECTED[name].items():
        if module_name not in modules and name == "ViTForImageClassification":
            pytest.skip("this transformers version names ViT's layers differently")
        assert classify(module_name, modules[module_name]) == expected, module_name
    # no projection inside a block is left as "other"
    blocks = [n for n, m in modules.items() if n.count(".") >= 3 and _is_projection(m)]
    assert blocks and all(classify(n, modules[n]) != "other" for n in blocks)


def _is_projection(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


@pytest.mark.parametrize("module_name,expected", [
    ("vit.encoder.layer.0.attention.attention.query", "attention"),  # ViT before transformers 5
    ("vit.encoder.layer.0.attention.output.dense", "attention"),
    ("vit.encoder.layer.0.intermediate.dense", "ffn"),
    ("vit.encoder.layer.0.output.dense", "ffn"),
    ("encoder.block.0.layer.1.DenseReluDense.wi", "ffn"),  # T5 v1.0 (not gated)
    ("transformer.h.0.crossattention.q_attn", "attention"),
    ("embed_out", "output"),  # GPT-NeoX before transformers 5
])
def test_names_of_other_versions(module_name, expected):
    assert LayerTypeClassifier()(module_name, nn.Linear(2, 2)) == expected
