"""BLEU two ways: sacreBLEU on detokenized text, and tokenized BLEU4 as printed by fairseq-generate.

* `sacrebleu_detok`: the comparable, signature-carrying number. Our IWSLT recipe lowercases the data, so
  the system can only produce lowercase text; scoring it case-sensitively against the cased raw
  references would punish every capital letter. We therefore pass `lowercase=True` whenever the recipe
  lowercased (the signature records `case:lc`).
* `tokenized_bleu`: corpus BLEU4 over whitespace tokens of the de-BPE'd, tokenized, lowercased text,
  no smoothing, standard brevity penalty — the number papers on IWSLT'14 (and fairseq-generate's
  `BLEU4 = ...` line) report. Tests pin it to fairseq's own `fairseq.scoring.bleu.Scorer`.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class BleuScore:
    score: float
    signature: str
    precisions: list[float] = field(default_factory=list)
    brevity_penalty: float = 1.0
    sys_len: int = 0
    ref_len: int = 0


def read_lines(path: str | Path) -> list[str]:
    """Lines of a UTF-8 text file without their newline characters."""
    return Path(path).read_text(encoding="utf-8").splitlines()


def _check_lengths(hypotheses: list[str], references: list[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")


def sacrebleu_detok(hypotheses: list[str], references: list[str], lowercase: bool = False) -> BleuScore:
    """sacreBLEU (13a tokenization, default smoothing) of detokenized hypotheses against raw references."""
    from sacrebleu.metrics import BLEU

    _check_lengths(hypotheses, references)
    metric = BLEU(lowercase=lowercase)
    result = metric.corpus_score(hypotheses, [references])
    return BleuScore(
        score=float(result.score),
        signature=str(metric.get_signature()),
        precisions=[float(p) for p in result.precisions],
        brevity_penalty=float(result.bp),
        sys_len=int(result.sys_len),
        ref_len=int(result.ref_len),
    )


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def tokenized_bleu(hypotheses: list[str], references: list[str], max_order: int = 4) -> BleuScore:
    """Corpus BLEU on whitespace tokens, no smoothing (a zero n-gram precision gives 0)."""
    _check_lengths(hypotheses, references)
    matches, totals = [0] * max_order, [0] * max_order
    sys_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references, strict=True):
        h, r = hyp.split(), ref.split()
        sys_len, ref_len = sys_len + len(h), ref_len + len(r)
        for n in range(1, max_order + 1):
            hyp_counts, ref_counts = _ngrams(h, n), _ngrams(r, n)
            matches[n - 1] += sum(min(c, ref_counts[g]) for g, c in hyp_counts.items())
            totals[n - 1] += max(len(h) - n + 1, 0)
    precisions = [m / t if t > 0 else 0.0 for m, t in zip(matches, totals, strict=True)]
    bp = min(1.0, math.exp(1.0 - ref_len / sys_len)) if sys_len > 0 else 0.0
    if min(precisions) > 0:
        score = 100.0 * bp * math.exp(sum(math.log(p) for p in precisions) / max_order)
    else:
        score = 0.0
    return BleuScore(
        score=score,
        signature=f"tokenized-bleu{max_order}|whitespace|no-smoothing",
        precisions=[100.0 * p for p in precisions],
        brevity_penalty=bp,
        sys_len=sys_len,
        ref_len=ref_len,
    )
