"""The fixed batch every model of a benchmark runs on."""

from __future__ import annotations

import torch


def make_batch(tokens: int, sentence_len: int, src_vocab: int, tgt_vocab: int, nspecial: int, eos: int,
               seed: int) -> dict[str, torch.Tensor]:
    """A fixed batch of ``tokens // sentence_len`` sentence pairs of equal length (no padding to skew timings)."""
    g = torch.Generator().manual_seed(seed)
    n = max(1, tokens // sentence_len)
    src = torch.randint(nspecial, src_vocab, (n, sentence_len), generator=g)
    tgt = torch.randint(nspecial, tgt_vocab, (n, sentence_len), generator=g)
    src[:, -1] = eos
    tgt[:, -1] = eos
    prev = torch.cat([torch.full((n, 1), eos), tgt[:, :-1]], dim=1)
    return {"src_tokens": src, "src_lengths": torch.full((n,), sentence_len), "prev_output_tokens": prev,
            "target": tgt}
