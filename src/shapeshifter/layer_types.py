"""Which layer type a module is: ``embedding``, ``attention``, ``ffn``, ``output`` or ``other``.

The policy of `shapeshift` and the parameter accounting are keyed by layer type, decided from the module's
qualified name by regular expressions (first match wins, in the order attention, ffn, output). The
defaults cover fairseq's Transformer (``self_attn.q_proj``, ``fc1``, ``output_projection``), Hugging Face
BERT-family encoders (``attention.self.query``, ``intermediate.dense``, ``output.dense``, ``classifier``),
T5 (``SelfAttention.q``, ``DenseReluDense.wi_0``), DistilBERT (``q_lin``, ``ffn.lin1``), GPT-2 (``attn.c_attn``,
``mlp.c_proj``), BART and ViT (``q_proj``, ``fc1``; older ViT: ``attention.attention.query``), PyTorch's
`nn.TransformerEncoderLayer` (``linear1``), LLaMA-style blocks (``o_proj``, ``up_proj``), Phi-3's fused
``qkv_proj`` and ``gate_up_proj``, GPT-NeoX/Pythia (``attention.query_key_value``, ``attention.dense``,
``mlp.dense_h_to_4h``, ``embed_out``), ALBERT's shared layer (``attention.dense``, ``ffn``, ``ffn_output``)
and this project's own models (tests/hf/test_hf_layer_types.py builds each from a tiny config). Every
`nn.Embedding` is an ``embedding`` and every `nn.MultiheadAttention` (its fused ``in_proj_weight``)
``attention``, whatever their names; a linear layer no pattern matches is ``other``. Pass ``patterns`` to add or replace
expressions for a type.

An ``other`` layer whose name still looks like a Transformer block's projection (`looks_like_block_layer`:
inside a numbered stack such as ``layers.3.`` or named like attention/MLP) is probably an architecture these
patterns do not know yet; `shapeshifter.surgery.shapeshift` warns about each one it leaves dense.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from torch import nn

from .nn.embedding import FactoredEmbedding

LAYER_TYPES: tuple[str, ...] = ("embedding", "attention", "ffn", "output", "other")

DEFAULT_PATTERNS: dict[str, tuple[str, ...]] = {
    "attention": (
        r"(^|\.)(q_proj|k_proj|v_proj|out_proj|o_proj|qkv_proj|query|key|value)$",
        r"(^|\.)attention\.output\.dense$",  # BERT, old ViT
        r"(^|\.)attention\.(query_key_value|dense)$",  # GPT-NeoX/Pythia; ALBERT's attention.dense
        r"(^|\.)(SelfAttention|EncDecAttention)\.(q|k|v|o)$",  # T5
        r"(^|\.)(q_lin|k_lin|v_lin|out_lin)$",  # DistilBERT
        r"(^|\.)(attn|crossattention)\.(c_attn|q_attn|c_proj)$",  # GPT-2 (Conv1D)
    ),
    "ffn": (
        r"(^|\.)(fc1|fc2|linear1|linear2|up_proj|down_proj|gate_proj|gate_up_proj|c_fc|w1|w2|w3)$",  # + Phi-3
        r"(^|\.)mlp\.(dense_h_to_4h|dense_4h_to_h)$",  # GPT-NeoX/Pythia
        r"(^|\.)(ffn|ffn_output)$",  # ALBERT
        r"(^|\.)intermediate\.dense$",
        r"(^|\.)output\.dense$",
        r"(^|\.)DenseReluDense\.(wi|wo|wi_0|wi_1)$",  # T5, T5 v1.1 (gated)
        r"(^|\.)ffn\.(lin1|lin2)$",  # DistilBERT
        r"(^|\.)mlp\.c_proj$",  # GPT-2
    ),
    "output": (
        r"(^|\.)(output_projection|lm_head|classifier|generator|vocab_projector|embed_out)$",
        r"(^|\.)predictions\.decoder$",
    ),
    "embedding": (r"(^|\.)(embed_tokens|embed_positions|word_embeddings|position_embeddings|wte|wpe)$",),
}


# Names of an attention or feed-forward projection that no pattern above typed: a numbered block of a stack
# ("layers.3.", "h.0.", "block.11.") or a word that such projections use.
BLOCK_LAYER = re.compile(r"\.\d+\.|(^|[._])(attn|attention|self_attn|mlp|ffn|feed_?forward|query|key|value|qkv|"
                         r"intermediate)([._]|$)", re.IGNORECASE)


def looks_like_block_layer(name: str) -> bool:
    """Whether a linear layer's qualified name looks like an attention or FFN projection of a Transformer block
    (``gpt_neox.layers.0.attention.query_key_value``), not a head, pooler or embedding projection."""
    return BLOCK_LAYER.search(name) is not None


class LayerTypeClassifier:
    """Maps qualified module names to layer types with per-type regular expressions."""

    def __init__(self, patterns: Mapping[str, str | Sequence[str]] | None = None) -> None:
        merged = {k: list(v) for k, v in DEFAULT_PATTERNS.items()}
        for layer_type, pats in (patterns or {}).items():
            if layer_type not in LAYER_TYPES:
                raise ValueError(f"unknown layer type {layer_type!r} in patterns; expected one of {LAYER_TYPES}")
            merged[layer_type] = [pats] if isinstance(pats, str) else list(pats)
        self.patterns = {k: [re.compile(p) for p in v] for k, v in merged.items()}

    def __call__(self, name: str, module: nn.Module | None = None) -> str:
        if isinstance(module, nn.Embedding) or _is_factored_embedding(module):
            return "embedding"
        if isinstance(module, nn.MultiheadAttention):
            return "attention"
        for layer_type in ("attention", "ffn", "output", "embedding"):
            if any(p.search(name) for p in self.patterns.get(layer_type, ())):
                return layer_type
        return "other"


def _is_factored_embedding(module: nn.Module | None) -> bool:
    return isinstance(module, FactoredEmbedding)
