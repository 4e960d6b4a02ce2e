"""Beam-search translation with fairseq's `SequenceGenerator`, plus the text post-processing for BLEU.

Post-processing chain: token ids -> subword string -> remove BPE (`@@ ` for subword-nmt, `▁` for
sentencepiece) -> tokenized text (used for tokenized BLEU) -> Moses detokenization (used for sacreBLEU).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

BPE_SYMBOLS = {"subword_nmt": "subword_nmt", "sentencepiece": "sentencepiece", "none": None, None: None}


@dataclass
class Translation:
    """One beam-search result; text fields are de-BPE'd but still tokenized."""

    id: int
    source: str
    reference: str
    hypothesis: str
    score: float


def make_generator(
    model: nn.Module,
    tgt_dict: Any,
    beam: int = 5,
    max_len_a: float = 1.2,
    max_len_b: int = 10,
    lenpen: float = 1.0,
) -> Any:
    """fairseq `SequenceGenerator` for one model; max target length is `max_len_a * src_len + max_len_b`."""
    from fairseq.sequence_generator import SequenceGenerator

    return SequenceGenerator(
        [model], tgt_dict, beam_size=beam, max_len_a=max_len_a, max_len_b=max_len_b, len_penalty=lenpen
    )


def decode(
    tokens: torch.Tensor, dictionary: Any, bpe: str | None = "subword_nmt", escape_unk: bool = False
) -> str:
    """Token ids (padding/eos allowed) -> de-BPE'd whitespace-tokenized string."""
    from fairseq import utils

    if bpe not in BPE_SYMBOLS:
        raise ValueError(f"unknown bpe {bpe!r}; expected one of subword_nmt, sentencepiece, none")
    tokens = utils.strip_pad(tokens.cpu(), dictionary.pad())
    return dictionary.string(tokens, bpe_symbol=BPE_SYMBOLS[bpe], escape_unk=escape_unk)


def to_device(sample: Any, device: torch.device) -> Any:
    """Move every tensor of a (nested) collated fairseq sample to `device`."""
    if torch.is_tensor(sample):
        return sample.to(device)
    if isinstance(sample, dict):
        return {k: to_device(v, device) for k, v in sample.items()}
    if isinstance(sample, list | tuple):
        return type(sample)(to_device(v, device) for v in sample)
    return sample


def translate_batch(
    generator: Any, sample: dict, src_dict: Any, tgt_dict: Any, bpe: str | None = "subword_nmt"
) -> list[Translation]:
    """Best beam hypothesis for every sentence of one collated `LanguagePairDataset` batch."""
    hypos = generator.generate(generator.model.models, sample)
    out = []
    for i, sentence_id in enumerate(sample["id"].tolist()):
        best = hypos[i][0]
        target = sample["target"][i] if sample.get("target") is not None else None
        out.append(
            Translation(
                id=sentence_id,
                source=decode(sample["net_input"]["src_tokens"][i], src_dict, bpe),
                # Reference unknowns are escaped so that a generated <unk> never counts as a match.
                reference=decode(target, tgt_dict, bpe, escape_unk=True) if target is not None else "",
                hypothesis=decode(best["tokens"], tgt_dict, bpe),
                score=float(best["score"]),
            )
        )
    return out


def translate(
    model: nn.Module,
    batches: Iterable[dict],
    src_dict: Any,
    tgt_dict: Any,
    beam: int = 5,
    max_len_a: float = 1.2,
    max_len_b: int = 10,
    lenpen: float = 1.0,
    bpe: str | None = "subword_nmt",
) -> list[Translation]:
    """Translate collated batches (e.g. `datamodule.test_dataloader()`); results sorted by sentence id."""
    generator = make_generator(model, tgt_dict, beam, max_len_a, max_len_b, lenpen)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        results = []
        for sample in batches:
            results.extend(translate_batch(generator, to_device(sample, device), src_dict, tgt_dict, bpe))
    finally:
        model.train(was_training)
    return sorted(results, key=lambda t: t.id)


@lru_cache(maxsize=8)
def _moses_detokenizer(lang: str) -> Any:
    from sacremoses import MosesDetokenizer

    return MosesDetokenizer(lang=lang)


def detokenize(lines: list[str], lang: str) -> list[str]:
    """Moses-detokenize tokenized sentences (the inverse of the recipe's Moses tokenizer) for sacreBLEU."""
    detok = _moses_detokenizer(lang)
    return [detok.detokenize(line.split()) for line in lines]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def write_translations(
    out_dir: str | Path,
    translations: list[Translation],
    detok_hypotheses: list[str] | None = None,
    references: list[str] | None = None,
    name: str = "test",
) -> dict[str, Path]:
    """Write `{name}.hyp.tok.txt`, `{name}.hyp.detok.txt` (one line per sentence, dataset order) and
    `{name}.tsv` (id, source, reference, hypothesis); `references` (raw text) replaces the decoded
    tokenized references in the TSV when given. Returns the written paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ordered = sorted(translations, key=lambda t: t.id)
    paths = {"tok": out_dir / f"{name}.hyp.tok.txt", "tsv": out_dir / f"{name}.tsv"}
    paths["tok"].write_text("".join(_one_line(t.hypothesis) + "\n" for t in ordered), encoding="utf-8")
    if detok_hypotheses is not None:
        paths["detok"] = out_dir / f"{name}.hyp.detok.txt"
        paths["detok"].write_text("".join(_one_line(h) + "\n" for h in detok_hypotheses), encoding="utf-8")
    refs = references if references is not None else [t.reference for t in ordered]
    hyps = detok_hypotheses if detok_hypotheses is not None else [t.hypothesis for t in ordered]
    rows = ["id\tsource\treference\thypothesis"]
    for t, ref, hyp in zip(ordered, refs, hyps, strict=True):
        rows.append("\t".join([str(t.id), _one_line(t.source), _one_line(ref), _one_line(hyp)]))
    paths["tsv"].write_text("\n".join(rows) + "\n", encoding="utf-8")
    return paths
