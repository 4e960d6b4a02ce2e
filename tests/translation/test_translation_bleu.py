"""BLEU: tokenized BLEU pinned to fairseq's C scorer, sacreBLEU signatures, BPE removal, detokenization."""

from __future__ import annotations

import pytest
import torch

from shapeshifter.translation.bleu import sacrebleu_detok, tokenized_bleu
from shapeshifter.translation.generate import decode, detokenize

HYPS = [
    "the cat sat on the mat .",
    "a dog runs in the big park today .",
    "it is a small house , is it not ?",
    "we went home early because it rained",
    "the quick brown fox jumps over the lazy dog",
]
REFS = [
    "the cat is sitting on the mat .",
    "a dog runs in the park .",
    "it is a small house , is n't it ?",
    "we went home early because it was raining .",
    "the quick brown fox jumped over the lazy dog .",
]


def test_tokenized_bleu_equals_fairseq_scorer():
    from fairseq.data import Dictionary
    from fairseq.scoring.bleu import BleuConfig, Scorer

    d = Dictionary()
    scorer = Scorer(
        BleuConfig(pad=d.pad(), eos=d.eos(), unk=d.unk())
    )  # needs the fairseq.libbleu C extension
    for hyp, ref in zip(HYPS, REFS, strict=True):
        ref_ids = d.encode_line(ref, add_if_not_exist=True).int()
        hyp_ids = d.encode_line(hyp, add_if_not_exist=True).int()
        scorer.add(ref_ids, hyp_ids)
    ours = tokenized_bleu(HYPS, REFS)
    assert 0 < ours.score < 100
    assert ours.score == pytest.approx(scorer.score(), abs=1e-9)
    assert ours.brevity_penalty == pytest.approx(scorer.brevity())


def test_tokenized_bleu_equals_sacrebleu_without_tokenization():
    import sacrebleu

    ref = sacrebleu.corpus_bleu(HYPS, [REFS], tokenize="none", smooth_method="none", force=True)
    assert tokenized_bleu(HYPS, REFS).score == pytest.approx(ref.score, abs=1e-9)
    assert tokenized_bleu(REFS, REFS).score == pytest.approx(100.0)
    assert tokenized_bleu(["x y z"], ["a b c"]).score == 0.0


def test_sacrebleu_detok_signature_and_case():
    hyps = ["the cat sat on the mat."]
    refs = ["The cat sat on the mat."]
    cased = sacrebleu_detok(hyps, refs)
    lower = sacrebleu_detok(hyps, refs, lowercase=True)
    assert lower.score == pytest.approx(100.0) and cased.score < 100.0
    assert "case:lc" in lower.signature and "tok:13a" in lower.signature
    with pytest.raises(ValueError, match="1 hypotheses but 2 references"):
        sacrebleu_detok(hyps, refs * 2)


def test_decode_removes_bpe():
    from fairseq.data import Dictionary

    d = Dictionary()
    ids = d.encode_line("the hou@@ se is small", add_if_not_exist=True)
    padded = torch.cat([ids, torch.full((3,), d.pad())])
    assert decode(padded, d, "subword_nmt") == "the house is small"
    assert decode(padded, d, None) == "the hou@@ se is small"
    spm = d.encode_line("▁the ▁hou se ▁is", add_if_not_exist=True)
    assert decode(spm, d, "sentencepiece") == "the house is"
    with pytest.raises(ValueError, match="unknown bpe"):
        decode(ids, d, "bytes")


def test_moses_detokenize():
    assert detokenize(["the dog , the cat and the house ."], "en") == ["the dog, the cat and the house."]
