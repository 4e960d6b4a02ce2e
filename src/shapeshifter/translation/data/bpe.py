"""Joint subword segmentation: subword-nmt BPE (fairseq's recipes) or SentencePiece (an option).

Both learn one model on the concatenation of the source and target training text (joint vocabulary) and
write segmented text as space-separated units, which is what fairseq's binarizer reads.  ``debpe`` undoes
either, giving back the tokenized (pre-BPE) text that tokenized BLEU is computed on.
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from shapeshifter.experiment.data_identity import DataError
from shapeshifter.translation.data.text import read_lines, write_lines

_BPE_SEP_RE = re.compile(r"(@@ )|(@@ ?$)")
SPM_SPACE = "\u2581"


def learn_subword_nmt(train_files: Sequence[Path], codes: Path, merges: int) -> None:
    """``learn_bpe.py -s merges < cat(train_files) > codes`` (fairseq: train.de then train.en)."""
    from subword_nmt.learn_bpe import learn_bpe

    codes.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        joint = Path(td) / "joint.txt"
        with open(joint, "w", encoding="utf-8") as out:
            for f in train_files:
                for line in read_lines(f):
                    out.write(line + "\n")
        if not joint.read_text(encoding="utf-8").split():  # subword-nmt would fail on max() of nothing
            raise DataError(f"cannot learn BPE: no words in {', '.join(map(str, train_files))}")
        # learn_bpe draws a tqdm progress bar on stderr; keep the pipeline's log readable.
        with (
            open(joint, encoding="utf-8") as inp,
            open(codes, "w", encoding="utf-8") as out,
            contextlib.redirect_stderr(io.StringIO()),
        ):
            learn_bpe(inp, out, merges)


def apply_subword_nmt(codes: Path, lines: Sequence[str]) -> list[str]:
    return load_segmenter("subword_nmt", codes)(lines)


def load_segmenter(kind: str, model: Path) -> Callable[[Sequence[str]], list[str]]:
    """Read a subword model once and return the function that segments lines with it (for repeated calls)."""
    model = Path(model)
    if kind not in ("subword_nmt", "sentencepiece"):
        raise ValueError(f"unknown bpe kind {kind!r}")
    if not model.is_file():
        raise DataError(f"missing {'BPE codes file' if kind == 'subword_nmt' else 'SentencePiece model'}: {model}")
    if kind == "sentencepiece":
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(model))
        return lambda lines: [" ".join(pieces) for pieces in sp.encode(list(lines), out_type=str)]
    from subword_nmt.apply_bpe import BPE

    with open(model, encoding="utf-8") as f:
        bpe = BPE(f)
    return lambda lines: [bpe.process_line(line) for line in lines]


def learn_sentencepiece(train_files: Sequence[Path], model_prefix: Path, vocab_size: int) -> None:
    """Train a joint unigram SentencePiece model on the training text (writes ``<prefix>.model``).

    Training reads every sentence (no input sampling), so the model is deterministic for given text.
    """
    import sentencepiece as spm

    model_prefix.parent.mkdir(parents=True, exist_ok=True)
    if not any(line.strip() for f in train_files for line in read_lines(f)):
        raise DataError(f"cannot learn a SentencePiece model: no text in {', '.join(map(str, train_files))}")
    spm.SentencePieceTrainer.train(
        input=",".join(str(f) for f in train_files),
        model_prefix=str(model_prefix),
        vocab_size=vocab_size,
        character_coverage=1.0,
        model_type="unigram",
        hard_vocab_limit=False,  # tiny corpora may not support the requested size
        minloglevel=2,
    )


def apply_sentencepiece(model: Path, lines: Sequence[str]) -> list[str]:
    return load_segmenter("sentencepiece", model)(lines)


def debpe(line: str, kind: str = "subword_nmt") -> str:
    """Undo segmentation: subword-nmt's ``sed -r 's/(@@ )|(@@ ?$)//g'``, or join SentencePiece pieces."""
    if kind == "subword_nmt":
        return _BPE_SEP_RE.sub("", line)
    if kind == "sentencepiece":
        return line.replace(" ", "").replace(SPM_SPACE, " ").strip()
    raise ValueError(f"unknown bpe kind {kind!r}")


def apply_file(kind: str, model: Path, src: Path, dst: Path) -> int:
    """Segment one file; returns the line count."""
    lines = read_lines(src)
    out = apply_subword_nmt(model, lines) if kind == "subword_nmt" else apply_sentencepiece(model, lines)
    return write_lines(dst, out)
