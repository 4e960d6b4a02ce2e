"""Test-set evaluation: beam search, both BLEU variants, and the hypothesis files, in one call."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch import nn

from shapeshifter.translation.bleu import read_lines, sacrebleu_detok, tokenized_bleu
from shapeshifter.translation.generate import detokenize, translate, write_translations


def evaluate_translation(
    model: nn.Module,
    batches: Iterable[dict],
    src_dict: Any,
    tgt_dict: Any,
    out_dir: str | Path,
    target_lang: str,
    raw_references: str | Path | None = None,
    tok_references: str | Path | None = None,
    lowercase: bool = True,
    name: str = "test",
    beam: int = 5,
    max_len_a: float = 1.2,
    max_len_b: int = 10,
    lenpen: float = 1.0,
    bpe: str | None = "subword_nmt",
    detok: str | None = "moses",
) -> dict[str, Any]:
    """Translate `batches`, write hypotheses, and return a JSON-able dict of BLEU scores.

    * tokenized BLEU: de-BPE'd hypotheses vs `tok_references` (the recipe's tokenized lowercased
      pre-BPE text), or vs the decoded binarized references when that file is not given.
    * sacreBLEU: hypotheses detokenized with Moses (`detok="moses"`; None for sentencepiece data,
      whose de-BPE'd output is already plain text) vs `raw_references`; skipped without that file.
    `lowercase` should be True whenever the recipe lowercased the training data (see `bleu.py`).
    """
    results = translate(model, batches, src_dict, tgt_dict, beam, max_len_a, max_len_b, lenpen, bpe)
    hyps_tok = [t.hypothesis for t in results]
    refs_tok = read_lines(tok_references) if tok_references is not None else [t.reference for t in results]
    if lowercase:
        hyps_tok, refs_tok = [h.lower() for h in hyps_tok], [r.lower() for r in refs_tok]
    tok = tokenized_bleu(hyps_tok, refs_tok)
    detok_hyps = detokenize(hyps_tok, target_lang) if detok == "moses" else list(hyps_tok)
    raw_refs = read_lines(raw_references) if raw_references is not None else None
    files = write_translations(out_dir, results, detok_hyps, raw_refs, name=name)
    report: dict[str, Any] = {
        "num_sentences": len(results),
        "tokenized_bleu": tok.score,
        "tokenized_bleu_detail": {"precisions": tok.precisions, "bp": tok.brevity_penalty,
                                  "sys_len": tok.sys_len, "ref_len": tok.ref_len},
        "files": {k: str(v) for k, v in files.items()},
    }  # fmt: skip
    if raw_refs is not None:
        sacre = sacrebleu_detok(detok_hyps, raw_refs, lowercase=lowercase)
        report["sacrebleu"] = sacre.score
        report["sacrebleu_signature"] = sacre.signature
    return report
