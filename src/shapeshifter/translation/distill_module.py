"""`TranslationModule` with a frozen teacher beside the student: word-level KD, hidden-state MSE and attention KL
in training.

Validation is the plain module's (label-smoothed CE of the student alone), so a distilled run's ``valid_loss`` is
comparable with every other run's. The teacher is held outside the module's registered children: it is not in
``state_dict`` (so not in any checkpoint or export), not in the optimizer, and ``.train()`` never switches it out of
eval mode. Its forward runs inside the timed training step, so ``train_step_s`` includes what it costs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from shapeshifter.criterion import label_smoothed_nll_loss, to_base2
from shapeshifter.distill.losses import attention_kl, hidden_mse, hidden_projection, word_kd_loss
from shapeshifter.translation.module import TranslationModule


def forward_with_states(model: nn.Module, net_input: dict, hidden: bool) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """Logits ``(B, T, V)`` of a fairseq encoder-decoder, and (``hidden``) the states after each encoder and each
    decoder layer, ``(T, B, C)`` each (the embeddings' output, fairseq's entry 0, left out)."""
    encoder_out = model.encoder(net_input["src_tokens"], src_lengths=net_input["src_lengths"],
                                return_all_hiddens=hidden)
    logits, extra = model.decoder(net_input["prev_output_tokens"], encoder_out=encoder_out,
                                  src_lengths=net_input["src_lengths"], return_all_hiddens=hidden)
    if not hidden:
        return logits, [], []
    return logits, list(encoder_out["encoder_states"][1:]), list(extra["inner_states"][1:])


def attention_modules(model: nn.Module) -> tuple[list[nn.Module], list[nn.Module]]:
    """A fairseq encoder-decoder's attention modules: the encoder's self-attention, and the decoder's self- and
    cross-attention, layer by layer."""
    decoder = [m for layer in model.decoder.layers for m in (layer.self_attn, layer.encoder_attn) if m is not None]
    return [layer.self_attn for layer in model.encoder.layers], decoder


def _ask_for_weights(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    return args, {**kwargs, "need_weights": True, "need_head_weights": False}


@contextmanager
def attention_probs(modules: list[nn.Module]) -> Iterator[list[Tensor]]:
    """Collect, during a forward, the head-averaged attention probabilities ``(B, T_query, T_key)`` of each of
    these fairseq `MultiheadAttention` modules, in call order: each is asked for its weights, which the layers
    otherwise do not request."""
    into: list[Tensor] = []
    handles = [h for m in modules for h in (
        m.register_forward_pre_hook(_ask_for_weights, with_kwargs=True),
        m.register_forward_hook(lambda mod, args, out: into.append(out[1])))]
    try:
        yield into
    finally:
        for handle in handles:
            handle.remove()


def forward_with_attention(model: nn.Module, net_input: dict, hidden: bool
                           ) -> tuple[Tensor, list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
    """`forward_with_states` plus the attention probabilities of the encoder's and the decoder's modules."""
    encoder, decoder = attention_modules(model)
    with attention_probs(encoder) as enc_attn, attention_probs(decoder) as dec_attn:
        logits, enc, dec = forward_with_states(model, net_input, hidden)
    return logits, enc, dec, enc_attn, dec_attn


class DistillTranslationModule(TranslationModule):
    """Training loss: ``(1 - alpha) * CE + alpha * T^2 * KL`` (word) plus ``hidden_weight * MSE`` (hidden) plus
    ``attention_weight * KL`` of the attention distributions (attention), per target token like the plain loss;
    ``kinds`` names which terms are on."""

    def __init__(self, model: nn.Module, tgt_dict: Any, src_dict: Any = None, *, teacher: nn.Module,
                 kinds: tuple[str, ...],
                 alpha: float = 0.5, temperature: float = 2.0, hidden_weight: float = 1.0,
                 attention_weight: float = 1.0, teacher_dim: int | None = None, student_dim: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(model, tgt_dict, src_dict, **kwargs)
        object.__setattr__(self, "teacher", teacher)  # not a registered child: never saved, never trained
        self.kinds = tuple(kinds)
        self.alpha, self.temperature, self.hidden_weight = float(alpha), float(temperature), float(hidden_weight)
        self.word = "word" in self.kinds
        self.hidden = "hidden" in self.kinds
        self.attention, self.attention_weight = "attention" in self.kinds, float(attention_weight)
        # a narrow student reaches the teacher's width through this (in the Lightning checkpoint, so a resumed
        # run continues with it; not in `self.model`, so never exported)
        self.hidden_projection = (hidden_projection(student_dim, teacher_dim)
                                  if self.hidden and student_dim and teacher_dim else None)

    def on_fit_start(self) -> None:
        self.teacher.to(self.device)
        self.teacher.eval()

    def _forward(self, model: nn.Module, net_input: dict) -> tuple:
        """Logits, hidden states (``hidden``) and attention probabilities (``attention``) of one model."""
        if self.attention:
            return forward_with_attention(model, net_input, self.hidden)
        return (*forward_with_states(model, net_input, self.hidden), [], [])

    def distill_loss(self, sample: dict) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """``(loss sum, nll sum, terms)`` of one batch; the loss sum is what is divided by the tokens. ``terms``:
        the unscaled KL sum (``kl``, word), the hidden-state MSE (``hidden``) and the attention KL
        (``attention``), each when its kind is on."""
        net_input, target = sample["net_input"], sample["target"]
        logits, enc, dec, enc_attn, dec_attn = self._forward(self.model, net_input)
        with torch.no_grad():
            t_logits, t_enc, t_dec, t_enc_attn, t_dec_attn = self._forward(self.teacher, net_input)
        pad, terms = self.padding_idx, {}
        if self.word:
            loss, nll, terms["kl"] = word_kd_loss(logits, t_logits, target, alpha=self.alpha,
                                                  temperature=self.temperature,
                                                  epsilon=self.hparams.label_smoothing, padding_idx=pad)
        else:
            lprobs = self.model.get_normalized_probs((logits, None), log_probs=True)
            loss, nll = label_smoothed_nll_loss(lprobs.view(-1, lprobs.size(-1)), target.view(-1),
                                                self.hparams.label_smoothing, pad)
        src_keep, tgt_keep = net_input["src_tokens"].ne(self.src_dict.pad()), target.ne(pad)
        if self.hidden:
            terms["hidden"] = (hidden_mse(enc, t_enc, src_keep, self.hidden_projection)
                               + hidden_mse(dec, t_dec, tgt_keep, self.hidden_projection))
        if self.attention:
            keep = [src_keep] * len(enc_attn) + [tgt_keep] * len(dec_attn)
            terms["attention"] = attention_kl(enc_attn + dec_attn, t_enc_attn + t_dec_attn, keep)
        return loss, nll, terms

    def training_loss(self, batch: dict) -> tuple[Tensor, Tensor, int, dict[str, Tensor]]:
        loss, nll, terms = self.distill_loss(batch)
        ntokens = int(batch["ntokens"])
        extra = {}
        if "kl" in terms:
            extra["train_kl"] = to_base2(terms["kl"] / ntokens)
        # per-token (hidden) or per-query (attention) quantities already: scaled so that the per-token
        # normalisation of the loss sum keeps them
        for name, weight in (("hidden", self.hidden_weight), ("attention", self.attention_weight)):
            if name in terms:
                loss = loss + weight * terms[name] * ntokens
                extra[f"train_{name}_{'mse' if name == 'hidden' else 'kl'}"] = terms[name]
        return loss, nll, ntokens, extra

    def extra_parameters(self) -> list[nn.Parameter]:
        return list(self.hidden_projection.parameters()) if self.hidden_projection is not None else []
