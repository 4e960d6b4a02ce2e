"""Tiny models built from configs with random init (no downloads), with an input and a tensor to compare.

Each builder returns ``(model, run)``: ``run(model)`` gives the output tensor for a fixed input.
"""

from __future__ import annotations

import argparse
import types
from collections.abc import Callable

import pytest
import torch
from torch import nn

VOCAB, D, FF, HEADS, POSITIONS = 64, 16, 32, 2, 32
Run = Callable[[nn.Module], torch.Tensor]


def _ids(*shape: int, low: int = 3) -> torch.Tensor:
    return torch.randint(low, VOCAB, shape, generator=torch.Generator().manual_seed(0))


def bert_mlm() -> tuple[nn.Module, Run]:
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(vocab_size=VOCAB, hidden_size=D, num_hidden_layers=2, num_attention_heads=HEADS,
                        intermediate_size=FF, max_position_embeddings=POSITIONS)
    ids = _ids(2, 7)
    return BertForMaskedLM(config), lambda m: m(input_ids=ids).logits


def bert_cls() -> tuple[nn.Module, Run]:
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=VOCAB, hidden_size=D, num_hidden_layers=2, num_attention_heads=HEADS,
                        intermediate_size=FF, max_position_embeddings=POSITIONS, num_labels=3)
    ids = _ids(2, 7)
    return BertForSequenceClassification(config), lambda m: m(input_ids=ids).logits


def gpt2() -> tuple[nn.Module, Run]:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=VOCAB, n_embd=D, n_layer=2, n_head=HEADS, n_positions=POSITIONS,
                        bos_token_id=1, eos_token_id=2)
    ids = _ids(2, 7)
    return GPT2LMHeadModel(config), lambda m: m(input_ids=ids).logits


def llama() -> tuple[nn.Module, Run]:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=VOCAB, hidden_size=D, intermediate_size=FF, num_hidden_layers=2,
                         num_attention_heads=HEADS, num_key_value_heads=1, max_position_embeddings=POSITIONS,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)
    ids = _ids(2, 7)
    return LlamaForCausalLM(config), lambda m: m(input_ids=ids).logits


def t5() -> tuple[nn.Module, Run]:
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=VOCAB, d_model=D, d_kv=8, d_ff=FF, num_layers=2, num_heads=HEADS,
                      feed_forward_proj="gated-gelu", decoder_start_token_id=0)
    ids, dec = _ids(2, 7), _ids(2, 5)
    return T5ForConditionalGeneration(config), lambda m: m(input_ids=ids, decoder_input_ids=dec).logits


def bart() -> tuple[nn.Module, Run]:
    from transformers import BartConfig, BartForConditionalGeneration

    config = BartConfig(vocab_size=VOCAB, d_model=D, encoder_layers=1, decoder_layers=1, encoder_attention_heads=HEADS,
                        decoder_attention_heads=HEADS, encoder_ffn_dim=FF, decoder_ffn_dim=FF,
                        max_position_embeddings=POSITIONS, scale_embedding=True)
    ids, dec = _ids(2, 7), _ids(2, 5)
    return BartForConditionalGeneration(config), lambda m: m(input_ids=ids, decoder_input_ids=dec).logits


def distilbert() -> tuple[nn.Module, Run]:
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    config = DistilBertConfig(vocab_size=VOCAB, dim=D, n_layers=2, n_heads=HEADS, hidden_dim=FF,
                              max_position_embeddings=POSITIONS)
    ids = _ids(2, 7)
    return DistilBertForMaskedLM(config), lambda m: m(input_ids=ids).logits


def vit() -> tuple[nn.Module, Run]:
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=8, patch_size=4, hidden_size=D, num_hidden_layers=2, num_attention_heads=HEADS,
                       intermediate_size=FF, num_labels=3)
    pixels = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return ViTForImageClassification(config), lambda m: m(pixel_values=pixels).logits


def gpt_neox() -> tuple[nn.Module, Run]:
    """GPT-NeoX/Pythia: fused, head-interleaved ``attention.query_key_value``, ``mlp.dense_h_to_4h``."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(vocab_size=VOCAB, hidden_size=D, num_hidden_layers=2, num_attention_heads=HEADS,
                           intermediate_size=FF, max_position_embeddings=POSITIONS, bos_token_id=1, eos_token_id=2)
    ids = _ids(2, 7)
    return GPTNeoXForCausalLM(config), lambda m: m(input_ids=ids).logits


def phi3() -> tuple[nn.Module, Run]:
    """Phi-3: fused ``qkv_proj`` (grouped-query: q, k, v of different sizes) and ``gate_up_proj``."""
    from transformers import Phi3Config, Phi3ForCausalLM

    config = Phi3Config(vocab_size=VOCAB, hidden_size=D, intermediate_size=FF, num_hidden_layers=2,
                        num_attention_heads=HEADS, num_key_value_heads=1, max_position_embeddings=POSITIONS,
                        original_max_position_embeddings=POSITIONS, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    ids = _ids(2, 7)
    return Phi3ForCausalLM(config), lambda m: m(input_ids=ids).logits


def albert() -> tuple[nn.Module, Run]:
    """ALBERT: one layer shared by every depth, 8-wide embeddings mapped to the 16-wide hidden size."""
    from transformers import AlbertConfig, AlbertForMaskedLM

    config = AlbertConfig(vocab_size=VOCAB, embedding_size=8, hidden_size=D, num_hidden_layers=2,
                          num_attention_heads=HEADS, intermediate_size=FF, max_position_embeddings=POSITIONS)
    ids = _ids(2, 7)
    return AlbertForMaskedLM(config), lambda m: m(input_ids=ids).logits


class TorchEncoder(nn.Module):
    """`nn.TransformerEncoder` with a tied token embedding and output projection."""

    def __init__(self) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB, D, padding_idx=0)
        layer = nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.output_projection = nn.Linear(D, VOCAB, bias=False)
        self.output_projection.weight = self.embed_tokens.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.output_projection(self.encoder(self.embed_tokens(ids)))


def torch_encoder() -> tuple[nn.Module, Run]:
    ids = _ids(2, 7)
    return TorchEncoder(), lambda m: m(ids)


def fairseq_learned_pos() -> tuple[nn.Module, Run]:
    """fairseq's transformer with learned positions (``LearnedPositionalEmbedding``) and a tied decoder."""
    pytest.importorskip("fairseq")
    from fairseq.data import Dictionary
    from fairseq.models import ARCH_CONFIG_REGISTRY
    from fairseq.models.transformer import TransformerModel

    def dictionary() -> Dictionary:
        d = Dictionary()
        for i in range(VOCAB - len(d)):
            d.add_symbol(f"w{i}")
        return d

    args = argparse.Namespace(share_decoder_input_output_embed=True, encoder_learned_pos=True,
                              decoder_learned_pos=True, encoder_layers=1, decoder_layers=1, encoder_embed_dim=D,
                              decoder_embed_dim=D, encoder_ffn_embed_dim=FF, decoder_ffn_embed_dim=FF,
                              encoder_attention_heads=HEADS, decoder_attention_heads=HEADS,
                              max_source_positions=POSITIONS, max_target_positions=POSITIONS)
    ARCH_CONFIG_REGISTRY["transformer_iwslt_de_en"](args)
    task = types.SimpleNamespace(source_dictionary=dictionary(), target_dictionary=dictionary())
    src, tgt = _ids(2, 7, low=4), _ids(2, 5, low=4)
    lengths = torch.tensor([7, 7])
    return TransformerModel.build_model(args, task), lambda m: m(src, lengths, tgt)[0]


BUILDERS: dict[str, Callable[[], tuple[nn.Module, Run]]] = {
    "BertForMaskedLM": bert_mlm,
    "BertForSequenceClassification": bert_cls,
    "GPT2LMHeadModel": gpt2,
    "LlamaForCausalLM": llama,
    "T5ForConditionalGeneration": t5,
    "BartForConditionalGeneration": bart,
    "DistilBertForMaskedLM": distilbert,
    "ViTForImageClassification": vit,
    "GPTNeoXForCausalLM": gpt_neox,
    "Phi3ForCausalLM": phi3,
    "AlbertForMaskedLM": albert,
    "nn.TransformerEncoder": torch_encoder,
    "fairseq transformer (learned positions)": fairseq_learned_pos,
}
HF_MODELS = [k for k in BUILDERS if not k.startswith(("nn.", "fairseq"))]

# Kronecker order 2 at the rank that makes each matrix exact (min(m1 n1, m2 n2), `LayerSpec.at`), fitted by
# projection: every factorized layer reproduces its dense weight (up to float error).
EXACT_POLICY = {t: {"rank": "full"} for t in ("embedding", "attention", "ffn", "output", "other")}
