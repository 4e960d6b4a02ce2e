"""`TranslationModule` with a frozen teacher beside the student: word-level KD and hidden-state MSE in training.

Validation is the plain module's (label-smoothed CE of the student alone), so a distilled run's ``valid_loss`` is
comparable with every other run's. The teacher is held outside the module's registered children: it is not in
``state_dict`` (so not in any checkpoint or export), not in the optimizer, and ``.train()`` never switches it out of
eval mode. Its forward runs inside the timed training step, so ``train_step_s`` includes what it costs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from shapeshifter.distill.losses import hidden_mse, hidden_projection, word_kd_loss
from shapeshifter.translation.criterion import label_smoothed_nll_loss, to_base2
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


class DistillTranslationModule(TranslationModule):
    """Training loss: ``(1 - alpha) * CE + alpha * T^2 * KL`` (word) plus ``hidden_weight * MSE`` (hidden),
    per target token like the plain loss; ``kinds`` names which terms are on."""

    def __init__(self, model: nn.Module, tgt_dict: Any, src_dict: Any = None, *, teacher: nn.Module,
                 kinds: tuple[str, ...],
                 alpha: float = 0.5, temperature: float = 2.0, hidden_weight: float = 1.0,
                 teacher_dim: int | None = None, student_dim: int | None = None, **kwargs: Any) -> None:
        super().__init__(model, tgt_dict, src_dict, **kwargs)
        object.__setattr__(self, "teacher", teacher)  # not a registered child: never saved, never trained
        self.kinds = tuple(kinds)
        self.alpha, self.temperature, self.hidden_weight = float(alpha), float(temperature), float(hidden_weight)
        self.word = "word" in self.kinds
        self.hidden = "hidden" in self.kinds
        # a narrow student reaches the teacher's width through this (in the Lightning checkpoint, so a resumed
        # run continues with it; not in `self.model`, so never exported)
        self.hidden_projection = (hidden_projection(student_dim, teacher_dim)
                                  if self.hidden and student_dim and teacher_dim else None)

    def on_fit_start(self) -> None:
        self.teacher.to(self.device)
        self.teacher.eval()

    def distill_loss(self, sample: dict) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(loss sum, nll sum, kl sum, hidden MSE) of one batch; the loss sum is what is divided by the tokens."""
        net_input, target = sample["net_input"], sample["target"]
        logits, enc, dec = forward_with_states(self.model, net_input, self.hidden)
        with torch.no_grad():
            t_logits, t_enc, t_dec = forward_with_states(self.teacher, net_input, self.hidden)
        pad = self.padding_idx
        if self.word:
            loss, nll, kl = word_kd_loss(logits, t_logits, target, alpha=self.alpha, temperature=self.temperature,
                                         epsilon=self.hparams.label_smoothing, padding_idx=pad)
        else:
            lprobs = self.model.get_normalized_probs((logits, None), log_probs=True)
            loss, nll = label_smoothed_nll_loss(lprobs.view(-1, lprobs.size(-1)), target.view(-1),
                                                self.hparams.label_smoothing, pad)
            kl = loss.new_zeros(())
        mse = loss.new_zeros(())
        if self.hidden:
            src_keep = ~net_input["src_tokens"].eq(self.src_dict.pad())
            mse = (hidden_mse(enc, t_enc, src_keep, self.hidden_projection)
                   + hidden_mse(dec, t_dec, target.ne(pad), self.hidden_projection))
        return loss, nll, kl, mse

    def training_loss(self, batch: dict) -> tuple[Tensor, Tensor, int, dict[str, Tensor]]:
        loss, nll, kl, mse = self.distill_loss(batch)
        ntokens = int(batch["ntokens"])
        extra = {}
        if self.word:
            extra["train_kl"] = to_base2(kl / ntokens)
        if self.hidden:  # a per-token quantity already: scaled so that the per-token normalisation keeps it
            loss = loss + self.hidden_weight * mse * ntokens
            extra["train_hidden_mse"] = mse
        return loss, nll, ntokens, extra

    def extra_parameters(self) -> list[nn.Parameter]:
        return list(self.hidden_projection.parameters()) if self.hidden_projection is not None else []
