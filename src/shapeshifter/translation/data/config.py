"""Configuration and result types of the translation data recipes.

Kept free of heavy imports so the Hydra pipeline can build a config from a plain dict
(``TranslationDataConfig(**d)``) without importing fairseq, sacremoses or subword-nmt.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shapeshifter.translation.data.iwslt14 import IWSLT14_TEST_SETS, SAMPLE_TEST_SETS

RECIPES = ("iwslt14", "wmt18", "sample", "files")
BPE_KINDS = ("subword_nmt", "sentencepiece")
META_RULES = ("fairseq", "strict")
SPLITS = ("train", "valid", "test")

# Per-recipe defaults for the fields left as None (10k joint merges is fairseq's prepare-iwslt14.sh; the sample
# corpus is ~27k pairs so fewer merges; 40k is fairseq's WMT recipe default).
_DEFAULT_MERGES = {"iwslt14": 10000, "sample": 5000, "wmt18": 40000, "files": 5000}
_DEFAULT_LANGS = {"iwslt14": ("de", "en"), "sample": ("de", "en"), "wmt18": ("en", "ro"), "files": (None, None)}
# data/cache is git-ignored, so downloaded/extracted raw corpora never end up in a commit.
_DEFAULT_RAW_DIRS = {
    "iwslt14": "data/cache/raw/iwslt14",
    "sample": "data/sample/de-en",
    "wmt18": "data/cache/raw/wmt18_en_ro",
    "files": None,  # the prefixes name the files
}


@dataclass
class TranslationDataConfig:
    """What to prepare and how.  Fields left as ``None`` get the recipe's default in ``__post_init__``.

    ``raw_dir``: where the raw corpus is (IWSLT: the extracted ``de-en/`` dir or a dir holding ``de-en.tgz``;
    WMT: the dir with the parallel text and SGM files).  ``work_dir``: all intermediate and final outputs.
    ``data_bin``: an existing fairseq data-bin dir to use instead of preparing one (validated only).
    ``trainpref``/``validpref``/``testpref`` (recipe ``files``, ``data=parallel_files``): your own parallel text
    as fairseq names it, ``PREFIX.{src_lang}`` and ``PREFIX.{tgt_lang}``, one sentence per line; valid and test
    are optional (`shapeshifter.translation.data.recipe.files_split_rule`).
    """

    name: str = "iwslt14_de_en"
    recipe: str = "iwslt14"
    src_lang: str | None = None
    tgt_lang: str | None = None
    raw_dir: str | None = None
    work_dir: str | None = "data/cache/iwslt14_de_en"  # None (files): `files_work_dir`
    data_bin: str | None = None
    download: bool = True
    bpe: str = "subword_nmt"
    bpe_merges: int | None = None  # subword-nmt merge operations
    spm_vocab_size: int = 8000  # sentencepiece vocabulary size
    lowercase: bool | None = None  # default: True for iwslt14/sample, False (cased) for wmt18/files
    moses_escape: bool = False  # False: & ' " < > stay plain; True: escaped as tokenizer.perl does by default
    min_len: int = 1
    max_len: int = 175
    ratio: float = 1.5
    valid_every: int = 23
    max_train_pairs: int | None = None
    seed: int = 1
    meta_rule: str = "fairseq"
    test_sets: list[str] | None = None  # IWSLT sets concatenated into test; None: recipe default
    # recipe "files" only: PREFIX of PREFIX.{src_lang} / PREFIX.{tgt_lang}
    trainpref: str | None = None
    validpref: str | None = None
    testpref: str | None = None
    # WMT-only options.
    normalize_punctuation: bool = True
    remove_diacritics: bool = True
    valid_set: str = "newsdev2016"
    test_set: str = "newstest2016"
    # Binarization.
    threshold: int = 0
    padding_factor: int = 8
    workers: int = 1

    def __post_init__(self) -> None:
        """Choices first: a bad ``recipe`` is named before its defaults are looked up."""
        self._check_choices()
        self._fill_langs()
        self._fill_recipe_defaults()
        self._check_ranges()

    def _check_choices(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {RECIPES}, got {self.recipe!r}")
        if self.bpe not in BPE_KINDS:
            raise ValueError(f"bpe must be one of {BPE_KINDS}, got {self.bpe!r}")
        if self.meta_rule not in META_RULES:
            raise ValueError(f"meta_rule must be one of {META_RULES}, got {self.meta_rule!r}")

    def _fill_langs(self) -> None:
        src, tgt = _DEFAULT_LANGS[self.recipe]
        self.src_lang = self.src_lang or src
        self.tgt_lang = self.tgt_lang or tgt
        if self.recipe == "files" and not (self.src_lang and self.tgt_lang and self.trainpref):
            raise ValueError("data=parallel_files needs data.trainpref, data.source_lang and data.target_lang (it "
                             "reads TRAINPREF.SOURCE_LANG and TRAINPREF.TARGET_LANG)")
        if self.src_lang == self.tgt_lang:
            raise ValueError(f"src_lang and tgt_lang must differ, both are {self.src_lang!r}")

    def _fill_recipe_defaults(self) -> None:
        if self.work_dir is None and self.recipe == "files":
            self.work_dir = files_work_dir(self.trainpref, self.validpref, self.testpref)
        if self.raw_dir is None:
            self.raw_dir = _DEFAULT_RAW_DIRS[self.recipe]
        if self.lowercase is None:
            self.lowercase = self.recipe in ("iwslt14", "sample")  # your own files and WMT stay cased
        if self.test_sets is None and self.recipe in ("iwslt14", "sample"):
            self.test_sets = list(IWSLT14_TEST_SETS if self.recipe == "iwslt14" else SAMPLE_TEST_SETS)
        if self.test_sets is not None:
            self.test_sets = [str(s) for s in self.test_sets]  # OmegaConf ListConfig -> plain list (hashable)
        if self.bpe_merges is None:
            self.bpe_merges = _DEFAULT_MERGES[self.recipe]

    def _check_ranges(self) -> None:
        for name in ("bpe_merges", "spm_vocab_size", "min_len", "max_len", "valid_every", "workers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.max_len < self.min_len:
            raise ValueError(f"max_len ({self.max_len}) must be >= min_len ({self.min_len})")
        if not self.ratio > 0:
            raise ValueError(f"ratio must be > 0, got {self.ratio!r}")
        if self.max_train_pairs is not None and self.max_train_pairs < 1:
            raise ValueError(f"max_train_pairs must be None or >= 1, got {self.max_train_pairs!r}")
        if self.threshold < 0 or self.padding_factor < 1:
            raise ValueError("threshold must be >= 0 and padding_factor >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def files_work_dir(*prefixes: str | None) -> str:
    """The default work folder of a ``files`` corpus: one per set of prefixes (absolute), so two corpora of the same
    language pair are prepared side by side instead of replacing each other's cache."""
    import hashlib
    import os

    key = "\n".join(os.path.abspath(p) if p else "" for p in prefixes)
    return f"data/cache/parallel_files/{hashlib.sha256(key.encode()).hexdigest()[:12]}"


@dataclass
class SplitFiles:
    """Text files of one split: raw (untokenized) text, tokenized pre-BPE text, BPE'd text, per language."""

    raw: dict[str, Path]
    tok: dict[str, Path]
    bpe: dict[str, Path]
    lines: int


@dataclass
class PreparedData:
    """Where everything ended up.  ``splits`` is empty when an existing data-bin was given without texts."""

    data_bin: Path
    src_lang: str
    tgt_lang: str
    work_dir: Path | None = None
    bpe_codes: Path | None = None
    bpe: str = "subword_nmt"
    splits: dict[str, SplitFiles] = field(default_factory=dict)
    dict_sizes: dict[str, int] = field(default_factory=dict)
    data_content: str | None = None  # the identity of the inputs this preparation read (`recipe.data_content`)

    def reference(self, split: str, kind: str = "raw") -> Path:
        """Target-side reference: ``raw`` (detokenized, for sacreBLEU) or ``tok`` (tokenized BLEU)."""
        if split not in self.splits:
            raise KeyError(f"no text files for split {split!r} (have {sorted(self.splits)})")
        files = self.splits[split]
        if kind == "raw":
            return files.raw[self.tgt_lang]
        if kind == "tok":
            return files.tok[self.tgt_lang]
        raise ValueError(f"kind must be 'raw' or 'tok', got {kind!r}")
