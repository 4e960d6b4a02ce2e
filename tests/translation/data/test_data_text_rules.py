"""Tokenization, clean-corpus limits, lowercasing and line I/O of shapeshifter.translation.data.text."""

from __future__ import annotations

from pathlib import Path

import pytest

from shapeshifter.experiment.data_identity import DataError
from shapeshifter.translation.data.text import (
    clean_corpus,
    keep_pair,
    lowercase,
    moses_tokenize,
    read_lines,
    write_lines,
)


def test_moses_tokenize_per_language_without_escape() -> None:
    assert moses_tokenize(["The sentence0: house cat, isn't it?"], "en") == ["The sentence0 : house cat , isn 't it ?"]
    # German keeps "z.B." and the decimal comma together.
    assert moses_tokenize(["Das ist gut, z.B. 3,5 Äpfel."], "de") == ["Das ist gut , z.B. 3,5 Äpfel ."]


def test_moses_tokenize_escape_option() -> None:
    assert moses_tokenize(["A & B"], "en", escape=True) == ["A &amp; B"]
    assert moses_tokenize(["A & B"], "en", escape=False) == ["A & B"]


@pytest.mark.parametrize(
    ("ns", "nt", "kept"),
    [(1, 1, True), (175, 175, True), (176, 176, False), (0, 1, False), (2, 3, True), (2, 4, False), (10, 15, True),
     (10, 16, False), (16, 10, False)],
)
def test_keep_pair_length_and_ratio_limits(ns: int, nt: int, kept: bool) -> None:
    assert keep_pair(" ".join(["a"] * ns), " ".join(["b"] * nt), 1, 175, 1.5) is kept


def test_clean_corpus_returns_kept_indices_and_checks_alignment() -> None:
    src = ["a b", "a", "  a   b  c ", "x " * 200]
    tgt = ["c d", "c d e f", "c d", "y " * 200]
    assert clean_corpus(src, tgt, 1, 175, 1.5) == [0, 2]
    with pytest.raises(DataError, match="differ in length"):
        clean_corpus(src, tgt[:2], 1, 175, 1.5)


def test_lowercase_unicode() -> None:
    assert lowercase(["Äpfel UND Öl", "ÇA"]) == ["äpfel und öl", "ça"]


def test_read_lines_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.de"
    with pytest.raises(DataError, match="nope.de"):
        read_lines(missing)
    bad = tmp_path / "bad.en"
    bad.write_bytes(b"ok\n\xff\xfe broken\n")
    with pytest.raises(DataError, match="bad.en"):
        read_lines(bad)


def test_write_lines_keeps_alignment_with_unicode_line_breaks(tmp_path: Path) -> None:
    f = tmp_path / "x.txt"
    assert write_lines(f, ["a\u2028b", "c\rd", "e"]) == 3
    assert read_lines(f) == ["a b", "c d", "e"]
    assert f.read_text(encoding="utf-8").count("\n") == 3
