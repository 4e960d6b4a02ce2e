"""Tokenizers that turn one or two texts into ``[CLS] a [SEP] (b [SEP])`` ids plus segment ids.

``WordTokenizer`` is a dependency-free word-level tokenizer for from-scratch models (its vocabulary is
built from the training split); ``HFTokenizer`` adapts any Hugging Face tokenizer for pretrained models.
Both expose the same ``encode_batch`` / ``pad_id`` / ``vocab_size`` surface the data module relies on.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

__all__ = ["Encoded", "HFTokenizer", "PairTokenizer", "WordTokenizer", "truncate_pair"]

#: (input_ids, token_type_ids) of one example.
Encoded = tuple[list[int], list[int]]

_WORD_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class PairTokenizer(Protocol):
    """What :class:`shapeshifter.glue.data.GlueDataModule` needs from a tokenizer."""

    pad_id: int
    vocab_size: int

    def encode_batch(
        self, texts_a: Sequence[str], texts_b: Sequence[str] | None, max_length: int
    ) -> list[Encoded]: ...


def truncate_pair(a: list[int], b: list[int] | None, budget: int) -> tuple[list[int], list[int] | None]:
    """Longest-first truncation (as BERT does) so that ``len(a) + len(b) <= budget``."""
    a = list(a)
    if b is None:
        return a[: max(budget, 0)], None
    b = list(b)
    while len(a) + len(b) > budget and (a or b):
        if len(a) >= len(b):
            a.pop()
        else:
            b.pop()
    return a, b


class WordTokenizer:
    """Lower-cased regex word/punctuation splitter with a frequency-cut vocabulary.

    Ids 0-3 are ``[PAD] [UNK] [CLS] [SEP]``; the rest are words sorted by descending count, then
    alphabetically, so the vocabulary is deterministic for a given training set.
    """

    PAD, UNK, CLS, SEP = "[PAD]", "[UNK]", "[CLS]", "[SEP]"
    SPECIALS = (PAD, UNK, CLS, SEP)

    def __init__(self, vocab: Sequence[str], lowercase: bool = True) -> None:
        if tuple(vocab[: len(self.SPECIALS)]) != self.SPECIALS:
            raise ValueError(f"vocabulary must start with {self.SPECIALS}")
        self.itos = list(vocab)
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary contains duplicate tokens")
        self.lowercase = lowercase
        self.pad_id, self.unk_id, self.cls_id, self.sep_id = range(4)

    @property
    def vocab_size(self) -> int:
        """Number of ids, specials included."""
        return len(self.itos)

    def tokenize(self, text: str) -> list[str]:
        """Split into words and single punctuation marks."""
        return _WORD_RE.findall(text.lower() if self.lowercase else text)

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        min_count: int = 1,
        max_vocab: int | None = None,
        lowercase: bool = True,
    ) -> WordTokenizer:
        """Vocabulary from (training) texts: words seen ``>= min_count`` times, at most ``max_vocab`` ids."""
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        probe = cls(list(cls.SPECIALS), lowercase=lowercase)
        counts: Counter[str] = Counter()
        for t in texts:
            counts.update(probe.tokenize(t))
        words = sorted((w for w, c in counts.items() if c >= min_count and w not in cls.SPECIALS),
                       key=lambda w: (-counts[w], w))
        if max_vocab is not None:
            if max_vocab <= len(cls.SPECIALS):
                raise ValueError(f"max_vocab must exceed {len(cls.SPECIALS)} (the special tokens)")
            words = words[: max_vocab - len(cls.SPECIALS)]
        return cls(list(cls.SPECIALS) + words, lowercase=lowercase)

    def ids(self, text: str) -> list[int]:
        """Token ids of one text, without specials."""
        return [self.stoi.get(w, self.unk_id) for w in self.tokenize(text)]

    def encode(self, text_a: str, text_b: str | None = None, max_length: int = 128) -> Encoded:
        """``[CLS] a [SEP]`` or ``[CLS] a [SEP] b [SEP]`` with segment ids 0 for a, 1 for b."""
        n_special = 3 if text_b is not None else 2
        if max_length < n_special + 1:
            raise ValueError(f"max_length={max_length} leaves no room for text")
        a, b = truncate_pair(self.ids(text_a), self.ids(text_b) if text_b is not None else None,
                             max_length - n_special)
        ids = [self.cls_id, *a, self.sep_id]
        types = [0] * len(ids)
        if b is not None:
            ids += [*b, self.sep_id]
            types += [1] * (len(b) + 1)
        return ids, types

    def encode_batch(
        self, texts_a: Sequence[str], texts_b: Sequence[str] | None, max_length: int
    ) -> list[Encoded]:
        """Encode parallel lists of first (and optionally second) texts."""
        if texts_b is None:
            return [self.encode(a, None, max_length) for a in texts_a]
        return [self.encode(a, b, max_length) for a, b in zip(texts_a, texts_b, strict=True)]

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as JSON so a run can be re-scored with identical ids."""
        Path(path).write_text(json.dumps({"lowercase": self.lowercase, "vocab": self.itos}))

    @classmethod
    def load(cls, path: str | Path) -> WordTokenizer:
        """Inverse of :meth:`save`."""
        data = json.loads(Path(path).read_text())
        return cls(data["vocab"], lowercase=data["lowercase"])


class HFTokenizer:
    """Adapter around a Hugging Face tokenizer (fast or slow) passed in by the caller.

    The HF tokenizer already emits ``[CLS] a [SEP] b [SEP]`` and ``token_type_ids`` for BERT-style
    vocabularies; models without segment ids get all-zero type ids.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            raise ValueError("the Hugging Face tokenizer has no pad token; set tokenizer.pad_token first")
        self.pad_id = int(pad)

    @property
    def vocab_size(self) -> int:
        """Size including added tokens."""
        return len(self.tokenizer)

    def encode_batch(
        self, texts_a: Sequence[str], texts_b: Sequence[str] | None, max_length: int
    ) -> list[Encoded]:
        """Batch-encode with truncation (longest first), no padding (the collator pads)."""
        enc = self.tokenizer(
            list(texts_a),
            list(texts_b) if texts_b is not None else None,
            truncation=True,
            max_length=max_length,
            padding=False,
            return_token_type_ids=True,
        )
        types = enc.get("token_type_ids") or [[0] * len(x) for x in enc["input_ids"]]
        return [(list(i), list(t)) for i, t in zip(enc["input_ids"], types, strict=True)]
