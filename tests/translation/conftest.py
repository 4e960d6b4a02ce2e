"""A tiny de-en fairseq data-bin (a few dozen synthetic sentence pairs) shared by the translation tests."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

LEXICON = {
    "der": "the", "hund": "dog", "katze": "cat", "sieht": "sees", "das": "the", "haus": "house",
    "ist": "is", "klein": "small", "groß": "big", "und": "and", "ein": "a", "baum": "tree",
}  # fmt: skip
BPE_SPLITS = {"house": "hou@@ se", "katze": "kat@@ ze"}  # a few subword splits to exercise BPE removal
SPLIT_SIZES = {"train": 40, "valid": 12, "test": 12}


def _pairs(n: int, rng: random.Random) -> list[tuple[list[str], list[str]]]:
    words = sorted(LEXICON)
    pairs = []
    for _ in range(n):
        src = [rng.choice(words) for _ in range(rng.randint(3, 8))]
        pairs.append((src, [LEXICON[w] for w in src]))
    return pairs


def _bpe(tokens: list[str]) -> str:
    return " ".join(BPE_SPLITS.get(t, t) for t in tokens)


def build_data_bin(root: Path, seed: int = 0) -> Path:
    """Write dict.{de,en}.txt, {split}.de-en.{de,en}.bin/.idx (mmap) and per-split reference texts."""
    from fairseq.data import Dictionary, indexed_dataset

    rng = random.Random(seed)
    splits = {name: _pairs(n, rng) for name, n in SPLIT_SIZES.items()}
    data_bin = root / "data-bin"
    data_bin.mkdir(parents=True)
    dicts = {}
    for side, lang in ((0, "de"), (1, "en")):
        d = Dictionary()
        for src, tgt in splits["train"]:
            for tok in _bpe((src, tgt)[side]).split():
                d.add_symbol(tok)
        d.finalize(padding_factor=8)
        d.save(str(data_bin / f"dict.{lang}.txt"))
        dicts[lang] = d
    for name, pairs in splits.items():
        for side, lang in ((0, "de"), (1, "en")):
            prefix = data_bin / f"{name}.de-en.{lang}"
            builder = indexed_dataset.make_builder(f"{prefix}.bin", impl="mmap", vocab_size=len(dicts[lang]))
            for pair in pairs:
                builder.add_item(dicts[lang].encode_line(_bpe(pair[side]), add_if_not_exist=False))
            builder.finalize(f"{prefix}.idx")
        tok = [" ".join(tgt) for _, tgt in pairs]
        raw = [t[0].upper() + t[1:] + "." for t in tok]  # "cased, detokenized" reference text
        (data_bin / f"{name}.tok.en").write_text("\n".join(tok) + "\n", encoding="utf-8")
        (data_bin / f"{name}.raw.en").write_text("\n".join(raw) + "\n", encoding="utf-8")
    return data_bin


@pytest.fixture(scope="session")
def data_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_data_bin(tmp_path_factory.mktemp("translation"))


TINY = {
    "encoder_layers": 1, "decoder_layers": 1, "encoder_embed_dim": 16, "decoder_embed_dim": 16,
    "encoder_ffn_embed_dim": 32, "decoder_ffn_embed_dim": 32, "encoder_attention_heads": 2,
    "decoder_attention_heads": 2, "share_decoder_input_output_embed": True, "dropout": 0.1,
    "max_source_positions": 64, "max_target_positions": 64,
}  # fmt: skip


@pytest.fixture
def tiny_overrides() -> dict:
    return dict(TINY)
