"""New text cut the way the model's training text was cut, and model output turned back into plain text.

A model only knows the subwords of its training data: a sentence that is not Moses-tokenized, lowercased
and segmented exactly as the recipe did (`shapeshifter.translation.data.recipe`) reaches it as unknown words. The
steps here call the recipe's own functions with the settings stored beside the model (`TextSettings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from shapeshifter.translation.data.bpe import load_segmenter
from shapeshifter.translation.data.config import BPE_KINDS, TranslationDataConfig
from shapeshifter.translation.data.recipe import tokenize_lines, tokenize_options
from shapeshifter.translation.data.text import lowercase
from shapeshifter.translation.generate import detokenize


@dataclass(frozen=True)
class TextSettings:
    """The recipe's text settings for one language pair (the ``text`` section of an export's config.json)."""

    src_lang: str
    tgt_lang: str
    lowercase: bool
    bpe: str  # subword_nmt | sentencepiece
    tokenizer: str = "moses"
    escape: bool = False
    normalize_punctuation: bool = False
    normalize_romanian: bool = False
    remove_diacritics: bool = True

    def __post_init__(self) -> None:
        if self.tokenizer != "moses":
            raise ValueError(f"tokenizer must be 'moses', got {self.tokenizer!r}")
        if self.bpe not in BPE_KINDS:
            raise ValueError(f"bpe must be one of {BPE_KINDS}, got {self.bpe!r}")

    @classmethod
    def from_data_config(cls, cfg: TranslationDataConfig) -> TextSettings:
        assert cfg.src_lang is not None and cfg.tgt_lang is not None
        return cls(src_lang=cfg.src_lang, tgt_lang=cfg.tgt_lang, lowercase=bool(cfg.lowercase), bpe=cfg.bpe,
                   **tokenize_options(cfg))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TextSettings:
        """Strict: a missing or unknown key is an error, so a newer format cannot be half-read."""
        known = {f.name for f in fields(cls)}
        if set(values) != known:
            raise ValueError(f"text settings keys differ: missing {sorted(known - set(values))}, "
                             f"unknown {sorted(set(values) - known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TextProcessor:
    """Raw source sentences -> subword strings the model reads; tokenized output -> plain text."""

    def __init__(self, settings: TextSettings, subword_model: Path) -> None:
        self.settings = settings
        self.segment = load_segmenter(settings.bpe, subword_model)  # read once: files are translated in batches

    def tokenize(self, lines: Sequence[str]) -> list[str]:
        """Moses-tokenized (and lowercased when the recipe lowercased) pre-BPE text, whitespace collapsed."""
        s = self.settings
        tokens = tokenize_lines(list(lines), s.src_lang, escape=s.escape, normalize_punctuation=s.normalize_punctuation,
                                normalize_romanian=s.normalize_romanian, remove_diacritics=s.remove_diacritics)
        tokens = [" ".join(line.split()) for line in tokens]  # the recipe's clean step does the same
        return lowercase(tokens) if s.lowercase else tokens

    def encode(self, lines: Sequence[str]) -> list[str]:
        """Space-separated subwords, ready for the source dictionary."""
        return self.segment(self.tokenize(lines))

    def detokenize(self, lines: Sequence[str]) -> list[str]:
        """Moses detokenization of de-BPE'd target text (what sacreBLEU is computed on in training)."""
        return detokenize(list(lines), self.settings.tgt_lang)
