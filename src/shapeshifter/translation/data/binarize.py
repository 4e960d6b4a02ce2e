"""fairseq binarization and data-bin validation; the only module of the package that imports fairseq.

Equivalent of ``fairseq-preprocess --source-lang S --target-lang T --trainpref P/train --validpref P/valid
--testpref P/test --destdir D`` (separate dictionaries built from the training text, threshold 0, padding
factor 8, ``mmap`` datasets).  fairseq is imported inside the functions so that importing
:mod:`shapeshifter.translation.data` stays cheap and the core package never needs fairseq.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from shapeshifter.experiment.data_identity import DataError


def dataset_prefix(dest: Path, split: str, src: str, tgt: str, lang: str) -> Path:
    """fairseq's naming: ``{split}.{src}-{tgt}.{lang}`` (+ ``.bin``/``.idx``)."""
    return dest / f"{split}.{src}-{tgt}.{lang}"


def expected_files(dest: Path, src: str, tgt: str, splits: Sequence[str]) -> list[Path]:
    out = [dest / f"dict.{src}.txt", dest / f"dict.{tgt}.txt"]
    for split in splits:
        for lang in (src, tgt):
            p = dataset_prefix(dest, split, src, tgt, lang)
            out += [p.with_name(p.name + ".bin"), p.with_name(p.name + ".idx")]
    return out


def build_dictionary(files: Sequence[Path], threshold: int = 0, padding_factor: int = 8):
    """A fairseq ``Dictionary`` over the whitespace tokens of ``files`` (``TranslationTask.build_dictionary``)."""
    from fairseq.data import Dictionary
    from fairseq.tokenizer import tokenize_line

    d = Dictionary()
    for f in files:
        if not Path(f).is_file():
            raise DataError(f"missing file for dictionary: {f}")
        Dictionary.add_file_to_dictionary(str(f), d, tokenize_line, 1)
    d.finalize(threshold=threshold, nwords=-1, padding_factor=padding_factor)
    return d


def binarize_file(vocab, text: Path, out_prefix: Path, workers: int = 1) -> dict[str, int]:
    """Write ``out_prefix.{bin,idx}`` (mmap) for one text file; returns sentence/token/unk counts."""
    from fairseq.binarizer import FileBinarizer, VocabularyDatasetBinarizer

    if not text.is_file():
        raise DataError(f"missing file to binarize: {text}")
    binarizer = VocabularyDatasetBinarizer(vocab, append_eos=True)
    summary = FileBinarizer.multiprocess_dataset(
        str(text), "mmap", binarizer, str(out_prefix), vocab_size=len(vocab), num_workers=workers
    )
    return {"sentences": summary.num_seq, "tokens": summary.num_tok, "unk": summary.num_replaced}


def binarize(
    text_prefix: dict[str, Path],
    dest: Path,
    src: str,
    tgt: str,
    threshold: int = 0,
    padding_factor: int = 8,
    workers: int = 1,
) -> dict[str, int]:
    """Build ``dest`` from ``{split: prefix}`` where ``prefix.{src,tgt}`` are segmented text files.

    Dictionaries come from the ``train`` split.  Returns the dictionary sizes per language.
    """
    if "train" not in text_prefix:
        raise ValueError("binarize needs a 'train' split to build the dictionaries")
    dest.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for lang in (src, tgt):
        train_text = Path(f"{text_prefix['train']}.{lang}")
        d = build_dictionary([train_text], threshold=threshold, padding_factor=padding_factor)
        d.save(str(dest / f"dict.{lang}.txt"))
        sizes[lang] = len(d)
        for split, prefix in text_prefix.items():
            binarize_file(d, Path(f"{prefix}.{lang}"), dataset_prefix(dest, split, src, tgt, lang), workers)
    return sizes


def validate_data_bin(
    path: str | Path, src: str, tgt: str, splits: Sequence[str] = ("train", "valid", "test")
) -> dict[str, int]:
    """Check an existing fairseq data-bin dir; returns ``{"dict.<lang>": size, "<split>.<lang>": lines}``.

    Raises a :class:`DataError` listing every missing file, or naming the unreadable one.
    """
    from fairseq.data import Dictionary, data_utils

    dest = Path(path)
    if not dest.is_dir():
        raise DataError(f"data-bin directory does not exist: {dest}")
    missing = [str(p) for p in expected_files(dest, src, tgt, splits) if not p.is_file()]
    if missing:
        raise DataError(f"data-bin {dest} is incomplete; missing: {', '.join(missing)}")
    info: dict[str, int] = {}
    dicts = {}
    for lang in (src, tgt):
        f = dest / f"dict.{lang}.txt"
        try:
            dicts[lang] = Dictionary.load(str(f))
        except Exception as e:  # fairseq raises ValueError/RuntimeError on malformed lines
            raise DataError(f"cannot read dictionary {f}: {e}") from None
        info[f"dict.{lang}"] = len(dicts[lang])
    for split in splits:
        counts = []
        for lang in (src, tgt):
            prefix = dataset_prefix(dest, split, src, tgt, lang)
            try:
                ds = data_utils.load_indexed_dataset(str(prefix), dicts[lang], "mmap")
                n = len(ds) if ds is not None else None
                if n:
                    _ = ds[n - 1]  # touch the data file: a truncated .bin fails here
            except Exception as e:
                raise DataError(f"cannot read dataset {prefix}.bin/.idx: {e}") from None
            if ds is None:
                raise DataError(f"cannot read dataset {prefix}.bin/.idx")
            info[f"{split}.{lang}"] = len(ds)
            counts.append(len(ds))
        if counts[0] != counts[1]:
            raise DataError(f"{split}: {src} has {counts[0]} sentences but {tgt} has {counts[1]} in {dest}")
    return info
