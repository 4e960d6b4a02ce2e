"""Sentence(-pair) classifiers built only from ``nn.Linear`` / ``nn.Embedding`` so surgery can find them.

* :class:`TransformerEncoderClassifier` — a from-scratch pre-LN Transformer encoder (fairseq-style
  module names ``embed_tokens``, ``embed_positions``, ``self_attn.{q,k,v,out}_proj``, ``fc1``, ``fc2``,
  ``classifier``), shapeshifted with ``init="random"``.
* :class:`PretrainedEncoderClassifier` — a Hugging Face encoder (BERT-like) plus a ``classifier`` head,
  shapeshifted with ``init="project"`` so the factors start as the best approximation of the weights.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from shapeshifter import shapeshift

__all__ = [
    "MultiHeadSelfAttention",
    "PretrainedEncoderClassifier",
    "TransformerEncoderClassifier",
    "TransformerEncoderLayer",
    "apply_shapeshift",
    "build_pretrained_classifier",
    "build_scratch_classifier",
]


class MultiHeadSelfAttention(nn.Module):
    """Self-attention with separate q/k/v/out projections (no fused ``in_proj``) for per-matrix surgery."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads, self.head_dim, self.dropout = n_heads, d_model // n_heads, dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``key_padding_mask``: ``(B, T)`` bool, True at padding positions."""
        b, t, d = x.shape

        def heads(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


class TransformerEncoderLayer(nn.Module):
    """Pre-LN block: ``x + Attn(LN(x))`` then ``x + FFN(LN(x))`` (trains stably without long warmup)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, activation: str) -> None:
        super().__init__()
        self.self_attn = MultiHeadSelfAttention(d_model, n_heads, dropout)
        self.self_attn_layer_norm = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.final_layer_norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.activation = {"gelu": F.gelu, "relu": F.relu}[activation]

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.dropout(self.self_attn(self.self_attn_layer_norm(x), key_padding_mask))
        h = self.dropout(self.activation(self.fc1(self.final_layer_norm(x))))
        return x + self.dropout(self.fc2(h))


class TransformerEncoderClassifier(nn.Module):
    """From-scratch pre-LN Transformer encoder with learned positions, segment embeddings and [CLS] pooling.

    The representation of position 0 (``[CLS]``) after the final LayerNorm feeds a dropout + linear
    ``classifier``; ``num_labels=1`` gives a regression head.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 128,
        n_layers: int = 2,
        n_heads: int = 4,
        d_ff: int = 512,
        max_len: int = 128,
        num_labels: int = 2,
        dropout: float = 0.1,
        pad_id: int = 0,
        n_segments: int = 2,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        if activation not in ("gelu", "relu"):
            raise ValueError(f"activation must be 'gelu' or 'relu', got {activation!r}")
        self.max_len, self.pad_id, self.d_model = max_len, pad_id, d_model
        self.embed_tokens = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.embed_positions = nn.Embedding(max_len, d_model)
        self.embed_segments = nn.Embedding(n_segments, d_model) if n_segments > 0 else None
        self.embed_scale = math.sqrt(d_model)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(d_model, n_heads, d_ff, dropout, activation) for _ in range(n_layers)
        )
        self.layer_norm = nn.LayerNorm(d_model)
        self.classifier = nn.Linear(d_model, num_labels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """BERT-like N(0, 0.02) init; token embeddings are scaled by sqrt(d) in forward, so init at d^-1/2."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.embed_tokens.weight, std=self.d_model**-0.5)
        nn.init.normal_(self.embed_positions.weight, std=0.02)
        if self.embed_segments is not None:
            nn.init.normal_(self.embed_segments.weight, std=0.02)
        with torch.no_grad():
            self.embed_tokens.weight[self.pad_id].zero_()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``(B, num_labels)``; sequences longer than ``max_len`` are an error, not silently cut."""
        b, t = input_ids.shape
        if t > self.max_len:
            raise ValueError(f"sequence length {t} exceeds max_len={self.max_len}")
        if attention_mask is None:
            attention_mask = input_ids.ne(self.pad_id)
        pos = torch.arange(t, device=input_ids.device)
        x = self.embed_tokens(input_ids) * self.embed_scale + self.embed_positions(pos)[None]
        if self.embed_segments is not None and token_type_ids is not None:
            x = x + self.embed_segments(token_type_ids)
        x = self.dropout(x)
        padding = ~attention_mask.bool()
        for layer in self.layers:
            x = layer(x, padding)
        return self.classifier(self.dropout(self.layer_norm(x[:, 0])))


class PretrainedEncoderClassifier(nn.Module):
    """A Hugging Face encoder (``encoder``) and a linear ``classifier`` on its pooled [CLS] output.

    Uses the encoder's pretrained pooler (dense + tanh, as ``BertForSequenceClassification``) when it
    has one, otherwise the raw [CLS] hidden state.
    """

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        config = getattr(encoder, "config", None)
        if config is None or not hasattr(config, "hidden_size"):
            raise ValueError("encoder must be a Hugging Face model whose config has hidden_size")
        hidden = int(config.hidden_size)
        if dropout is None:
            dropout = float(getattr(config, "hidden_dropout_prob", 0.1))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_labels)
        nn.init.normal_(self.classifier.weight, std=float(getattr(config, "initializer_range", 0.02)))
        nn.init.zeros_(self.classifier.bias)

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, num_labels: int, **kwargs: Any
    ) -> PretrainedEncoderClassifier:
        """Load weights with ``transformers.AutoModel.from_pretrained`` (a local path works offline)."""
        from transformers import AutoModel

        dropout = kwargs.pop("dropout", None)
        return cls(AutoModel.from_pretrained(name_or_path, **kwargs), num_labels, dropout)

    @classmethod
    def from_config(
        cls, config: Any, num_labels: int, dropout: float | None = None
    ) -> PretrainedEncoderClassifier:
        """Randomly initialised encoder from a ``BertConfig`` (or a dict of its fields) — used by tests."""
        from transformers import BertConfig, BertModel

        if isinstance(config, dict):
            config = BertConfig(**config)
        return cls(BertModel(config), num_labels, dropout)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``(B, num_labels)``."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            pooled = out.last_hidden_state[:, 0]
        return self.classifier(self.dropout(pooled))


def apply_shapeshift(model: nn.Module, policy: dict | None, init: str) -> Any:
    """Replace weight matrices per ``policy`` via `shapeshifter.shapeshift` (transformers models through `hf`);
    keep its report.

    ``policy=None`` leaves the model dense and returns ``None``. The report is returned so that the
    Lightning module can log per-layer reconstruction errors (``init="project"``).
    """
    if policy is None:
        return None
    if init not in ("random", "project"):
        raise ValueError(f"init must be 'random' or 'project', got {init!r}")
    return shapeshift(model, policy, init=init)


def build_scratch_classifier(
    vocab_size: int, num_labels: int, policy: dict | None = None, **kwargs: Any
) -> tuple[TransformerEncoderClassifier, Any]:
    """From-scratch classifier, shapeshifted with random factor init (nothing to project)."""
    model = TransformerEncoderClassifier(vocab_size=vocab_size, num_labels=num_labels, **kwargs)
    return model, apply_shapeshift(model, policy, init="random")


def build_pretrained_classifier(
    num_labels: int,
    name_or_path: str | None = None,
    config: Any = None,
    policy: dict | None = None,
    dropout: float | None = None,
) -> tuple[PretrainedEncoderClassifier, Any]:
    """Pretrained-encoder classifier, shapeshifted by projecting the trained weights onto the factors."""
    if (name_or_path is None) == (config is None):
        raise ValueError("pass exactly one of name_or_path or config")
    if name_or_path is not None:
        model = PretrainedEncoderClassifier.from_pretrained(name_or_path, num_labels, dropout=dropout)
    else:
        model = PretrainedEncoderClassifier.from_config(config, num_labels, dropout)
    return model, apply_shapeshift(model, policy, init="project")
