"""WMT English-Romanian raw data: locating the files, reading SGM, Romanian normalization.

Sources (the user downloads them; nothing here fetches WMT data).  English-Romanian was a news translation
task of WMT 2016 (https://www.statmt.org/wmt16/translation-task.html); the widely used "wmt_en_ro" setup
(e.g. Sennrich et al.'s WMT16 systems, later fairseq/mBART and Hugging Face ``wmt16`` ``ro-en``) uses:

* training: Europarl v8 (``europarl-v8.ro-en.{en,ro}``) and SETIMES2 (``SETIMES.en-ro.{en,ro}`` from OPUS);
  add News Commentary or back-translations if your setup includes them: every ``NAME.{src}``/``NAME.{tgt}``
  pair of plain-text files (one sentence per line) found under ``raw_dir`` is concatenated in name order;
* valid: ``newsdev2016`` (``newsdev2016-enro-src.en.sgm`` / ``newsdev2016-enro-ref.ro.sgm``, from the WMT16
  dev tarball);
* test: ``newstest2016`` (``newstest2016-enro-src.en.sgm`` / ``newstest2016-enro-ref.ro.sgm``).

Dev/test may also be plain text (``newsdev2016.en``).  The Shapeshifter paper calls the task WMT'18 En-Ro;
the recipe name ``wmt18`` keeps that name, and ``valid_set``/``test_set`` in the config choose the files.

Preprocessing follows the common recipe (Sennrich's WMT16 scripts): Moses ``normalize-punctuation.perl``
(sacremoses ``MosesPunctNormalizer``) on both sides; on the Romanian side, cedilla ş/ţ are normalized to the
comma-below letters ș/ț and, optionally (``remove_diacritics``, on by default as in that recipe), ș ț ă â î are
mapped to s t a a i; then Moses tokenization.  The raw reference files keep the original text.
"""

from __future__ import annotations

import re
from pathlib import Path

from shapeshifter.experiment.data_identity import DataError
from shapeshifter.translation.data.text import read_lines

_SEG_RE = re.compile(r"<seg[^>]*>(.*?)</seg>", re.IGNORECASE)
_CEDILLA = str.maketrans({"\u015e": "\u0218", "\u015f": "\u0219", "\u0162": "\u021a", "\u0163": "\u021b"})
_NO_DIACRITICS = str.maketrans(
    {"\u0218": "S", "\u0219": "s", "\u021a": "T", "\u021b": "t", "\u0102": "A", "\u0103": "a",
     "\u00c2": "A", "\u00e2": "a", "\u00ce": "I", "\u00ee": "i"}
)


def extract_sgm(lines: list[str]) -> list[str]:
    """Text of every ``<seg id=…>…</seg>`` (several per line allowed), stripped, entities left as they are."""
    out = []
    for ln in lines:
        out += [m.strip() for m in _SEG_RE.findall(ln)]
    return out


def read_sgm(path: Path) -> list[str]:
    segs = extract_sgm(read_lines(path))
    if not segs:
        raise DataError(f"no <seg ...> elements in {path} (corrupt or not an SGM file?)")
    return segs


def normalize_romanian(line: str, remove_diacritics: bool) -> str:
    """Cedilla -> comma-below (ş->ș, ţ->ț); then optionally strip the Romanian diacritics."""
    line = line.translate(_CEDILLA)
    return line.translate(_NO_DIACRITICS) if remove_diacritics else line


def normalize_punctuation(lines: list[str], lang: str) -> list[str]:
    from sacremoses import MosesPunctNormalizer

    mpn = MosesPunctNormalizer(lang=lang)
    return [mpn.normalize(line) for line in lines]


def _is_eval_name(name: str, eval_sets: tuple[str, ...]) -> bool:
    return any(name.startswith(s) for s in eval_sets)


def find_train_pairs(raw_dir: Path, src: str, tgt: str, eval_sets: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """All ``X.{src}``/``X.{tgt}`` plain-text pairs under ``raw_dir`` that are not dev/test files."""
    if not raw_dir.is_dir():
        raise DataError(f"WMT raw directory does not exist: {raw_dir}")
    pairs = []
    for f in sorted(raw_dir.rglob(f"*.{src}")):
        other = f.with_name(f.name[: -len(src)] + tgt)
        if f.is_file() and other.is_file() and not _is_eval_name(f.name, eval_sets):
            pairs.append((f, other))
    if not pairs:
        raise DataError(
            f"no training pairs NAME.{src}/NAME.{tgt} under {raw_dir} (expected e.g. europarl-v8.ro-en.{src} "
            f"and SETIMES.en-ro.{src}; see shapeshifter.translation.data.wmt18)"
        )
    return pairs


def find_eval_file(raw_dir: Path, set_name: str, src: str, tgt: str, lang: str) -> Path:
    """The ``lang`` side of a dev/test set: SGM preferred (``-{src}{tgt}-`` direction first), else plain text."""
    sgm = sorted(raw_dir.rglob(f"{set_name}*.{lang}.sgm"))
    preferred = [p for p in sgm if f"-{src}{tgt}-" in p.name]
    if preferred or sgm:
        return (preferred or sgm)[0]
    plain = raw_dir / f"{set_name}.{lang}"
    if plain.is_file():
        return plain
    raise DataError(
        f"missing {set_name} {lang} file under {raw_dir}: expected e.g. {set_name}-{src}{tgt}-"
        f"{'src' if lang == src else 'ref'}.{lang}.sgm or {set_name}.{lang}"
    )


def read_eval(path: Path) -> list[str]:
    return read_sgm(path) if path.suffix == ".sgm" else read_lines(path)
