"""Label-smoothed cross-entropy with fairseq's definition of the smoothed target distribution: the translation
loss, and the label term of word-level distillation (`distill.losses`)."""

from __future__ import annotations

import math

from torch import Tensor


def label_smoothed_nll_loss(
    lprobs: Tensor, target: Tensor, epsilon: float, ignore_index: int
) -> tuple[Tensor, Tensor]:
    """Summed (smoothed loss, plain NLL) over non-padding positions, in nats.

    fairseq spreads `epsilon` over the V-1 wrong classes but also gives the true class a share, i.e.
    the target distribution is `(1 - epsilon - eps_i)` on the gold token plus `eps_i = epsilon / (V-1)`
    on every token (gold included). We keep that exact definition so losses match fairseq logs.
    `lprobs`: (N, V) log-probabilities; `target`: (N,) token ids.
    """
    target = target.view(-1)
    keep = target.ne(ignore_index)
    lprobs, target = lprobs[keep], target[keep]
    nll = -lprobs.gather(dim=-1, index=target.unsqueeze(-1)).sum()
    smooth = -lprobs.sum()
    eps_i = epsilon / (lprobs.size(-1) - 1)
    loss = (1.0 - epsilon - eps_i) * nll + eps_i * smooth
    return loss, nll


def to_base2(nats: float) -> float:
    """fairseq reports losses in bits (and perplexity as 2**nll); convert nats to bits."""
    return nats / math.log(2.0)
