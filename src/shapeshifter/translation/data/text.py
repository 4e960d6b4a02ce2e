"""Line-level text processing shared by the recipes: file I/O, Moses tokenization, corpus cleaning, lowercasing.

These are Python re-implementations (with sacremoses) of the Moses scripts fairseq's shell recipes call:
``tokenizer.perl -l L``, ``clean-corpus-n.perl -ratio R ... MIN MAX`` and ``lowercase.perl``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from shapeshifter import atomic
from shapeshifter.experiment.data_identity import DataError

# Characters Python or fairseq's readers could treat as line breaks; replaced by a space so files stay aligned.
_BREAKS_RE = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_WS_RE = re.compile(r"\s+")


def read_lines(path: Path) -> list[str]:
    """Read a UTF-8 text file as lines split on ``\\n`` only (so odd Unicode breaks cannot shift alignment)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"missing file: {path}") from None
    return decode_lines(data, str(path))


def decode_lines(data: bytes, name: str, what: str = "file") -> list[str]:
    """UTF-8 bytes as lines split on ``\\n`` only; a byte that is not UTF-8 is a DataError naming ``name`` and the
    byte's line and column, asking to re-save the ``what`` (file, input)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{name}:{utf8_error_position(data, e)}: re-save the {what} as UTF-8") from None
    if text.endswith("\n"):
        text = text[:-1]
    return text.split("\n") if text else []


def utf8_error_position(data: bytes, err: UnicodeDecodeError) -> str:
    """Where a decoding error is, as an editor shows it: ``N: byte 0x.. (column C) is not UTF-8`` (1-based line
    and byte column), to follow ``path:`` in a message."""
    line_start = data.rfind(b"\n", 0, err.start) + 1
    line = data.count(b"\n", 0, err.start) + 1
    return f"{line}: byte 0x{data[err.start]:02x} (column {err.start - line_start + 1}) is not UTF-8"


def write_lines(path: Path, lines: Iterable[str]) -> int:
    """Write lines (one per line, UTF-8), replacing embedded line-break characters; returns the count."""
    n = 0
    with atomic.replacing(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(_BREAKS_RE.sub(" ", line.replace("\n", " ")))
            f.write("\n")
            n += 1
    return n


def moses_tokenize(lines: Sequence[str], lang: str, escape: bool = False) -> list[str]:
    """Moses tokenization (``tokenizer.perl -l lang``; ``escape`` maps ``&<>'"`` to XML entities)."""
    from sacremoses import MosesTokenizer

    tok = MosesTokenizer(lang=lang)
    return [tok.tokenize(line, escape=escape, return_str=True) for line in lines]


def moses_detokenize(lines: Sequence[str], lang: str) -> list[str]:
    """Inverse of :func:`moses_tokenize` (for turning model output back into raw text for sacreBLEU)."""
    from sacremoses import MosesDetokenizer

    detok = MosesDetokenizer(lang=lang)
    return [detok.detokenize(line.split()) for line in lines]


def normalize_spaces(line: str) -> str:
    return _WS_RE.sub(" ", line).strip()


def keep_pair(src: str, tgt: str, min_len: int, max_len: int, ratio: float) -> bool:
    """``clean-corpus-n.perl`` rule: both lengths (in tokens) within [min_len, max_len], ratio <= ``ratio``."""
    ns, nt = len(src.split()), len(tgt.split())
    if not (min_len <= ns <= max_len and min_len <= nt <= max_len):
        return False
    if ns == 0 or nt == 0:
        return False
    return ns / nt <= ratio and nt / ns <= ratio


def clean_corpus(
    src: Sequence[str], tgt: Sequence[str], min_len: int, max_len: int, ratio: float
) -> list[int]:
    """Indices of the pairs kept by :func:`keep_pair` (after Moses-style whitespace normalization)."""
    if len(src) != len(tgt):
        raise DataError(f"parallel sides differ in length: {len(src)} vs {len(tgt)} lines")
    return [
        i
        for i, (s, t) in enumerate(zip(src, tgt, strict=True))
        if keep_pair(normalize_spaces(s), normalize_spaces(t), min_len, max_len, ratio)
    ]


def lowercase(lines: Iterable[str]) -> list[str]:
    """``lowercase.perl`` (Perl ``lc``; Python's ``str.lower`` is its Unicode equivalent)."""
    return [line.lower() for line in lines]
