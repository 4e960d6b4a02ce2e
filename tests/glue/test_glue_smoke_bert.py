"""The tiny local BERT of the GLUE smoke table: loads with the Auto classes, splits unseen words, is cached."""

from __future__ import annotations

from pathlib import Path

from shapeshifter.glue.smoke import DONE, SPECIALS, wordpiece_vocab, write_tiny_bert

TEXTS = ["A man is playing a guitar.", "Two dogs run on the beach!", "a man sleeps"]


def test_vocabulary_has_specials_characters_and_frequent_words() -> None:
    vocab = wordpiece_vocab(TEXTS, max_words=3)
    assert vocab[: len(SPECIALS)] == SPECIALS and len(vocab) == len(set(vocab))
    assert {"g", "##g", "."} <= set(vocab) and vocab[-3:] == ["man", "beach", "dogs"]  # by count, then alphabet


def test_written_checkpoint_loads_and_is_reused(tmp_path: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    dest = write_tiny_bert(tmp_path / "bert", TEXTS, source="texts-v1")
    tok = AutoTokenizer.from_pretrained(str(dest))
    # an unseen word made of seen characters is split into pieces; only unseen characters are [UNK]
    assert tok.tokenize("A man plays zzz") == ["a", "man", "p", "##l", "##a", "##y", "##s", "[UNK]"]
    model = AutoModel.from_pretrained(str(dest))
    assert model.config.hidden_size == 32 and model.config.vocab_size == len(tok)
    stamp = (dest / DONE).stat().st_mtime_ns
    write_tiny_bert(dest, TEXTS, source="texts-v1")
    assert (dest / DONE).stat().st_mtime_ns == stamp  # same settings and source: not rewritten
    write_tiny_bert(dest, TEXTS + ["zebra"], source="texts-v2")
    assert "zebra" in AutoTokenizer.from_pretrained(str(dest)).get_vocab()
