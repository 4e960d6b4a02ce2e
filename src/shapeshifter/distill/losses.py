"""Distillation losses (plain PyTorch): what the student learns from a frozen teacher besides the labels.

- `word_kd_loss`: per target token, ``(1 - alpha) * label-smoothed CE + alpha * T^2 * KL(p_teacher^T || p_student^T)``
  (Hinton et al. 2015; Kim & Rush 2016's word-level KD). The ``T^2`` keeps the KL term's gradient on the scale of
  the CE term's as T changes.
- `hidden_mse`: mean squared error between student and teacher hidden states after each layer, over the
  non-padding positions (TinyBERT / KroneckerBERT's intermediate-layer term). A narrower student is mapped to the
  teacher's width by a learned projection that the caller owns (it is trained, never exported).
- `attention_kl`: KL(teacher || student) between the attention distributions of paired attention modules,
  averaged over heads (so a student with other heads or width still pairs), per real query position (TinyBERT's
  and MiniLM's attention term, on probabilities).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from shapeshifter.criterion import label_smoothed_nll_loss


def kl_teacher_student(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Summed KL(softmax(teacher / T) || softmax(student / T)) over the rows of ``(N, V)`` logits, in nats."""
    s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    return (t.exp() * (t - s)).sum()


def word_kd_loss(student_logits: Tensor, teacher_logits: Tensor, target: Tensor, *, alpha: float,
                 temperature: float, epsilon: float, padding_idx: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(loss, nll, kl)`` summed over the non-padding target tokens, in nats.

    ``loss = (1 - alpha) * label-smoothed CE + alpha * T^2 * KL``; ``nll`` is the plain NLL (what the logs and
    perplexity report) and ``kl`` the unscaled KL term. Logits are ``(..., V)``, ``target`` is ``(...)``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"distill.alpha must be in [0, 1], got {alpha!r}")
    if not temperature > 0:
        raise ValueError(f"distill.temperature must be > 0, got {temperature!r}")
    vocab = student_logits.size(-1)
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(f"teacher logits {tuple(teacher_logits.shape)} vs student {tuple(student_logits.shape)}: "
                         "the teacher must share the student's target dictionary")
    keep = target.reshape(-1).ne(padding_idx)
    s = student_logits.reshape(-1, vocab)[keep]  # (N, V) non-padding tokens only
    t = teacher_logits.reshape(-1, vocab)[keep].detach()
    lprobs = F.log_softmax(s.float(), dim=-1)
    ce, nll = label_smoothed_nll_loss(lprobs, target.reshape(-1)[keep], epsilon, padding_idx)
    kl = kl_teacher_student(s, t, temperature)
    return (1.0 - alpha) * ce + alpha * temperature**2 * kl, nll, kl


def hidden_mse(student: Sequence[Tensor], teacher: Sequence[Tensor], keep: Tensor,
               projection: nn.Module | None = None) -> Tensor:
    """Sum over layers of the mean squared error per element between paired hidden states.

    ``student[i]`` and ``teacher[i]`` are ``(T, B, C)`` (fairseq's layout) for the same layer; ``keep`` is a
    ``(B, T)`` mask of the real (non-padding) positions. ``projection`` maps the student's width to the
    teacher's when they differ.
    """
    if len(student) != len(teacher):
        raise ValueError(f"{len(student)} student layers vs {len(teacher)} teacher layers: hidden-state "
                         "distillation pairs layer i with layer i")
    mask = keep.transpose(0, 1).unsqueeze(-1).to(student[0].dtype)  # (T, B, 1)
    count = mask.sum().clamp_min(1.0)
    total = student[0].new_zeros(())
    for s, t in zip(student, teacher, strict=True):
        if projection is not None:
            s = projection(s)
        if s.shape != t.shape:
            raise ValueError(f"student hidden state {tuple(s.shape)} vs teacher {tuple(t.shape)}: a narrower student "
                             "needs a projection to the teacher's width")
        total = total + ((s - t.detach()) ** 2 * mask).sum() / (count * s.size(-1))
    return total


def hidden_projection(student_dim: int, teacher_dim: int) -> nn.Module | None:
    """A learned ``student_dim -> teacher_dim`` map for a narrower (or wider) student; None when they match."""
    if student_dim == teacher_dim:
        return None
    projection = nn.Linear(student_dim, teacher_dim, bias=False)
    with torch.no_grad():
        nn.init.xavier_uniform_(projection.weight)
    return projection


def attention_kl(student: Sequence[Tensor], teacher: Sequence[Tensor], keep: Sequence[Tensor]) -> Tensor:
    """Sum over attention modules of the mean KL(teacher || student) per real query position, in nats.

    ``student[i]``, ``teacher[i]``: head-averaged attention probabilities ``(B, T_query, T_key)`` of the same
    module (fairseq's ``need_weights`` output); ``keep[i]``: ``(B, T_query)`` mask of its real query positions.
    Keys the mask hides have probability 0 in both and add nothing.
    """
    if len(student) != len(teacher):
        raise ValueError(f"{len(student)} student attention modules vs {len(teacher)} teacher modules: attention "
                         "distillation pairs module i with module i")
    total = student[0].new_zeros((), dtype=torch.float32) if student else torch.zeros(())
    for s, t, mask in zip(student, teacher, keep, strict=True):
        if s.shape != t.shape:
            raise ValueError(f"student attention {tuple(s.shape)} vs teacher {tuple(t.shape)}: the same batch must "
                             "reach both")
        per_query = F.kl_div(s.float().clamp_min(1e-9).log(), t.detach().float(), reduction="none").sum(-1)
        weights = mask.to(per_query.dtype)
        total = total + (per_query * weights).sum() / weights.sum().clamp_min(1.0)
    return total
