"""The translation data recipes (IWSLT'14 De-En, WMT En-Ro, the committed sample, your own parallel files) as
cached stages.

``prepare_translation_data(cfg)`` runs, each stage skipped when up to date (see :mod:`.cache`):

1. ``extract``: raw corpus -> ``tmp/train_all.raw.L`` (+ ``tmp/valid.raw.L`` for WMT) and ``tmp/test.raw.L``
   (IWSLT: meta lines stripped, ``<seg>`` text, test sets concatenated; optional seeded subsample of train;
   ``files``: ``PREFIX.L`` as they are, checked line by line, with ``tmp/valid.raw.L``/``tmp/test.raw.L`` when
   their prefixes are given).
2. ``tokenize``: Moses tokenization (WMT: punctuation normalization + Romanian normalization first).
3. ``clean_split``: clean-corpus (train only: lengths in [min_len, max_len], ratio <= ratio), lowercase, and
   for IWSLT every ``valid_every``-th cleaned training pair goes to valid (``files``: `files_split_rule`).
4. ``bpe_learn`` / ``bpe_apply``: joint subword-nmt BPE (or SentencePiece) learned on train.src + train.tgt.
5. ``binarize``: fairseq data-bin with separate dictionaries.

Layout of ``work_dir`` (L is each language)::

    {split}.raw.L    untokenized text of each pair kept (the reference for sacreBLEU on L = tgt)
    {split}.L        Moses-tokenized (lowercased if configured) pre-BPE text (tokenized-BLEU reference)
    {split}.bpe.L    segmented text fed to fairseq
    bpe.codes | spm.model      subword model
    data-bin/        dict.L.txt, {split}.{src}-{tgt}.L.{bin,idx}
    tmp/, raw/       intermediate files, archive extraction
    .stamps/         one JSON stamp per stage (input hash, parameters, output hashes)
    manifest.json    written last: the inputs' identity (what names a run's data), the data-bin's digest

``{split}`` is ``train``, ``valid``, ``test``; all files of a split have the same number of lines.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from functools import partial
from pathlib import Path

import shapeshifter.experiment.data_identity as identity
import shapeshifter.translation.data.binarize as fb
import shapeshifter.translation.data.iwslt14 as iwslt14
import shapeshifter.translation.data.wmt18 as wmt18
from shapeshifter import atomic
from shapeshifter.experiment.data_identity import DataError
from shapeshifter.translation.data.binarize import validate_data_bin
from shapeshifter.translation.data.bpe import apply_file, learn_sentencepiece, learn_subword_nmt
from shapeshifter.translation.data.cache import run_stage, work_dir_lock
from shapeshifter.translation.data.config import SPLITS, PreparedData, SplitFiles, TranslationDataConfig
from shapeshifter.translation.data.text import clean_corpus, lowercase, moses_tokenize, read_lines, write_lines

Log = Callable[[str], None]


def _subsample(n: int, k: int | None, seed: int) -> list[int]:
    """Sorted seeded sample of ``k`` indices out of ``n`` (all when ``k`` is None or >= n)."""
    if k is None or k >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), k))


def _check_parallel(a: list[str], b: list[str], fa: Path | str, fb: Path | str) -> None:
    if len(a) != len(b):
        raise DataError(f"parallel files differ in length: {fa} has {len(a)} lines, {fb} has {len(b)}")


def _check_not_empty(train: list[str], where: str) -> None:
    """No training sentence would otherwise surface as ``max() arg is an empty sequence`` in BPE learning."""
    if not train:
        raise DataError(f"{where}: no training sentences (the files are empty or hold only meta lines)")


def _langs(cfg: TranslationDataConfig) -> tuple[str, str]:
    assert cfg.src_lang is not None and cfg.tgt_lang is not None
    return cfg.src_lang, cfg.tgt_lang


# ----------------------------------------------------------------------------------------------- extract
def _iwslt_inputs(cfg: TranslationDataConfig, work: Path, log: Log) -> tuple[Path, str, list[Path]]:
    src, tgt = _langs(cfg)
    local = cfg.recipe == "sample"  # the committed sample (or a slice of it): local files, never a download
    try:
        raw = iwslt14.locate_raw_dir(Path(str(cfg.raw_dir)), work / "raw", cfg.download and not local, log)
    except DataError as err:
        if not local:
            raise
        raise DataError(f"data.raw_dir={cfg.raw_dir} holds no sample corpus (train.tags.{src}-{tgt}.{src} and the "
                        "IWSLT-format dev/test files): the sample recipe reads local files only and never downloads; "
                        "the committed sample is data/sample/de-en") from err
    pair = iwslt14.pair_name(src, tgt, raw)
    files = [iwslt14.train_file(raw, pair, lang) for lang in (src, tgt)]
    for s in cfg.test_sets or []:
        files += [iwslt14.xml_file(raw, s, pair, lang) for lang in (src, tgt)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DataError(f"IWSLT raw files missing in {raw}: {', '.join(missing)}")
    return raw, pair, files


def _extract_iwslt(cfg: TranslationDataConfig, raw: Path, pair: str, tmp: Path) -> None:
    src, tgt = _langs(cfg)
    fs, ft = iwslt14.train_file(raw, pair, src), iwslt14.train_file(raw, pair, tgt)
    s, t = iwslt14.read_train(fs, cfg.meta_rule), iwslt14.read_train(ft, cfg.meta_rule)
    _check_parallel(s, t, fs, ft)
    _check_not_empty(s, f"{fs} and {ft}")
    keep = _subsample(len(s), cfg.max_train_pairs, cfg.seed)
    write_lines(tmp / f"train_all.raw.{src}", (s[i] for i in keep))
    write_lines(tmp / f"train_all.raw.{tgt}", (t[i] for i in keep))
    test: dict[str, list[str]] = {src: [], tgt: []}
    for name in cfg.test_sets or []:
        xs, xt = iwslt14.xml_file(raw, name, pair, src), iwslt14.xml_file(raw, name, pair, tgt)
        a, b = iwslt14.read_xml(xs), iwslt14.read_xml(xt)
        _check_parallel(a, b, xs, xt)
        test[src] += a
        test[tgt] += b
    for lang in (src, tgt):
        write_lines(tmp / f"test.raw.{lang}", test[lang])


def _wmt_inputs(cfg: TranslationDataConfig) -> list[Path]:
    src, tgt = _langs(cfg)
    raw = Path(str(cfg.raw_dir))
    files = [f for p in wmt18.find_train_pairs(raw, src, tgt, (cfg.valid_set, cfg.test_set)) for f in p]
    for s in (cfg.valid_set, cfg.test_set):
        files += [wmt18.find_eval_file(raw, s, src, tgt, lang) for lang in (src, tgt)]
    return files


def _extract_wmt(cfg: TranslationDataConfig, tmp: Path) -> None:
    src, tgt = _langs(cfg)
    raw = Path(str(cfg.raw_dir))
    s: list[str] = []
    t: list[str] = []
    for fs, ft in wmt18.find_train_pairs(raw, src, tgt, (cfg.valid_set, cfg.test_set)):
        a, b = read_lines(fs), read_lines(ft)
        _check_parallel(a, b, fs, ft)
        s += a
        t += b
    _check_not_empty(s, f"the training files of {raw}")
    keep = _subsample(len(s), cfg.max_train_pairs, cfg.seed)
    write_lines(tmp / f"train_all.raw.{src}", (s[i] for i in keep))
    write_lines(tmp / f"train_all.raw.{tgt}", (t[i] for i in keep))
    for split, name in (("valid", cfg.valid_set), ("test", cfg.test_set)):
        fs, ft = (wmt18.find_eval_file(raw, name, src, tgt, lang) for lang in (src, tgt))
        a, b = wmt18.read_eval(fs), wmt18.read_eval(ft)
        _check_parallel(a, b, fs, ft)
        write_lines(tmp / f"{split}.raw.{src}", a)
        write_lines(tmp / f"{split}.raw.{tgt}", b)


FILE_ROLES = (("train_all", "trainpref"), ("valid", "validpref"), ("test", "testpref"))


def _files_prefixes(cfg: TranslationDataConfig) -> dict[str, str]:
    """The parts of a ``files`` recipe that come from the user's files: ``{part: PREFIX}``."""
    return {part: str(getattr(cfg, key)) for part, key in FILE_ROLES if getattr(cfg, key)}


def _files_inputs(cfg: TranslationDataConfig) -> dict[str, Path]:
    """The files a ``files`` recipe reads, named by role (``train.de``, ``valid.en``...), not by their own names:
    two folders' ``text.de`` cannot collide, and renaming a file does not change what the data is. A missing one
    is an error naming its key."""
    keys = dict(FILE_ROLES)
    files = {}
    for part, prefix in _files_prefixes(cfg).items():
        for lang in _langs(cfg):
            path = Path(f"{prefix}.{lang}")
            if not path.is_file():
                raise DataError(f"data.{keys[part]}={prefix}: no file {path} (PREFIX.{cfg.src_lang} and "
                                f"PREFIX.{cfg.tgt_lang} are read, one sentence per line)")
            files[f"{part.removesuffix('_all')}.{lang}"] = path
    return files


def check_parallel_lines(a: list[str], b: list[str], fa: Path | str, fb: Path | str) -> None:
    """Two sides of a plain parallel corpus: neither empty, the same number of lines. A missing or extra line shifts
    every pair after it, so the message names the first line without a partner."""
    for lines, f in ((a, fa), (b, fb)):
        if not any(line.strip() for line in lines):
            raise DataError(f"{f} is empty: expected one sentence per line, parallel to "
                            f"{fb if f == fa else fa}")
    if len(a) != len(b):
        (longer, n_long), (shorter, n_short) = sorted(((fa, len(a)), (fb, len(b))), key=lambda x: -x[1])
        extra = f"line {n_short + 1}" if n_long == n_short + 1 else f"lines {n_short + 1}-{n_long}"
        raise DataError(f"parallel files differ in length: {fa} has {len(a)} lines, {fb} has {len(b)}: {extra} of "
                        f"{longer} {'has' if n_long == n_short + 1 else 'have'} no partner in {shorter} (a line "
                        "missing or added earlier shifts every pair after it)")


def _extract_files(cfg: TranslationDataConfig, tmp: Path) -> None:
    src, tgt = _langs(cfg)
    for part, prefix in _files_prefixes(cfg).items():
        fs, ft = Path(f"{prefix}.{src}"), Path(f"{prefix}.{tgt}")
        s, t = read_lines(fs), read_lines(ft)
        check_parallel_lines(s, t, fs, ft)
        keep = _subsample(len(s), cfg.max_train_pairs, cfg.seed) if part == "train_all" else range(len(s))
        write_lines(tmp / f"{part}.raw.{src}", (s[i] for i in keep))
        write_lines(tmp / f"{part}.raw.{tgt}", (t[i] for i in keep))


def files_split_rule(n_kept: int, valid_every: int, carve: tuple[str, ...]) -> dict[str, list[int]]:
    """Which of ``n_kept`` cleaned training pairs go to train, and to the splits in ``carve`` that have no file of
    their own: valid takes every ``valid_every``-th pair (1-based: the 23rd, 46th, ...; fairseq's IWSLT'14 rule),
    test the pairs halfway between (the 11th, 34th, ... for 23), train the rest. Deterministic, so the same files
    always give the same splits."""
    offset = {"valid": 0, "test": valid_every // 2}
    split_of = {offset[s]: s for s in carve}
    out: dict[str, list[int]] = {"train": [], **{s: [] for s in carve}}
    for n in range(1, n_kept + 1):
        out[split_of.get(n % valid_every, "train")].append(n - 1)
    return out


# ---------------------------------------------------------------------------------------------- tokenize
def tokenize_options(cfg: TranslationDataConfig) -> dict[str, bool]:
    """The keyword arguments of `tokenize_lines` that this recipe uses (what an exported model stores)."""
    wmt = cfg.recipe == "wmt18"
    return {"escape": bool(cfg.moses_escape), "normalize_punctuation": wmt and bool(cfg.normalize_punctuation),
            "normalize_romanian": wmt, "remove_diacritics": bool(cfg.remove_diacritics)}


def tokenize_lines(lines: list[str], lang: str, escape: bool = False, normalize_punctuation: bool = False,
                   normalize_romanian: bool = False, remove_diacritics: bool = True) -> list[str]:
    """The recipe's tokenization of one side; the translator calls it too, so new text is cut like training text."""
    if normalize_punctuation:
        lines = wmt18.normalize_punctuation(lines, lang)
    if normalize_romanian and lang == "ro":
        lines = [wmt18.normalize_romanian(x, remove_diacritics) for x in lines]
    return moses_tokenize(lines, lang, escape=escape)


def subword_model_file(cfg: TranslationDataConfig) -> Path:
    """Where the recipe writes its subword model: ``bpe.codes`` (subword-nmt) or ``spm.model``."""
    return Path(cfg.work_dir) / ("bpe.codes" if cfg.bpe == "subword_nmt" else "spm.model")


def data_bin_dir(cfg: TranslationDataConfig) -> Path:
    """The fairseq data-bin (with ``dict.<lang>.txt``): the configured existing one, else the recipe's own."""
    return Path(cfg.data_bin) if cfg.data_bin else Path(cfg.work_dir) / "data-bin"


def _tokenize_lines(cfg: TranslationDataConfig, lines: list[str], lang: str) -> list[str]:
    return tokenize_lines(lines, lang, **tokenize_options(cfg))


# ------------------------------------------------------------------------------------------------ stages
# Each stage function hands `run_stage` its inputs, parameters and outputs. The parameter dicts enter the stage
# keys (`cache.stage_key`), so changing what one holds reruns that stage in every existing work_dir.
def _parts(cfg: TranslationDataConfig) -> list[str]:
    """The extracted parts: WMT has its own valid set, IWSLT's valid is taken out of train in ``clean_split``,
    ``files`` has those whose prefix is given."""
    if cfg.recipe == "files":
        return list(_files_prefixes(cfg))
    return ["train_all", "test"] if cfg.recipe != "wmt18" else ["train_all", "valid", "test"]


def _extract_stage(cfg: TranslationDataConfig, work: Path, parts: list[str], log: Log) -> list[Path]:
    """Stage 1: raw corpus -> ``tmp/{part}.raw.L``; returns those files."""
    tmp = work / "tmp"
    langs = _langs(cfg)
    raw_parts = [tmp / f"{p}.raw.{lang}" for p in parts for lang in langs]
    if cfg.recipe == "wmt18":
        inputs = _wmt_inputs(cfg)
        extract_fn = partial(_extract_wmt, cfg, tmp)
    elif cfg.recipe == "files":
        inputs = list(_files_inputs(cfg).values())
        extract_fn = partial(_extract_files, cfg, tmp)
    else:
        raw, pair, inputs = _iwslt_inputs(cfg, work, log)
        extract_fn = partial(_extract_iwslt, cfg, raw, pair, tmp)
    p_extract = {"recipe": cfg.recipe, "langs": langs, "meta_rule": cfg.meta_rule, "test_sets": cfg.test_sets,
                 "max_train_pairs": cfg.max_train_pairs, "seed": cfg.seed}
    if cfg.recipe == "files":
        p_extract["parts"] = parts
    run_stage(work, "extract", inputs, p_extract, raw_parts, extract_fn, log)
    return raw_parts


def _tokenize(cfg: TranslationDataConfig, tmp: Path, parts: list[str]) -> None:
    for p in parts:
        for lang in _langs(cfg):
            lines = read_lines(tmp / f"{p}.raw.{lang}")
            write_lines(tmp / f"{p}.tok.{lang}", _tokenize_lines(cfg, lines, lang))


def _tokenize_stage(cfg: TranslationDataConfig, work: Path, parts: list[str], raw_parts: list[Path],
                    log: Log) -> list[Path]:
    """Stage 2: ``tmp/{part}.raw.L`` -> ``tmp/{part}.tok.L``; returns those files."""
    tmp = work / "tmp"
    tok_parts = [tmp / f"{p}.tok.{lang}" for p in parts for lang in _langs(cfg)]
    p_tok = {"escape": cfg.moses_escape, "recipe": cfg.recipe, "norm_punct": cfg.normalize_punctuation,
             "no_diacritics": cfg.remove_diacritics}
    run_stage(work, "tokenize", raw_parts, p_tok, tok_parts, partial(_tokenize, cfg, tmp, parts), log)
    return tok_parts


def _split_files(work: Path, langs: tuple[str, str]) -> dict[str, SplitFiles]:
    """The final text files of each split; ``lines`` is counted once the BPE'd files exist."""
    return {s: SplitFiles(raw={lang: work / f"{s}.raw.{lang}" for lang in langs},
                          tok={lang: work / f"{s}.{lang}" for lang in langs},
                          bpe={lang: work / f"{s}.bpe.{lang}" for lang in langs}, lines=0) for s in SPLITS}


def _train_valid_indices(cfg: TranslationDataConfig, keep: list[int]) -> dict[str, list[int]]:
    """Which cleaned training pairs go to train and which to valid (WMT has its own valid set)."""
    if cfg.recipe == "wmt18":
        return {"train": keep}
    if cfg.recipe == "files":
        carve = tuple(s for s in ("valid", "test") if s not in _files_prefixes(cfg))
        return {s: [keep[j] for j in ii] for s, ii in files_split_rule(len(keep), cfg.valid_every, carve).items()}
    # fairseq: awk 'NR%23==0' -> valid (NR counts from 1 over the cleaned corpus)
    return {"train": [i for n, i in enumerate(keep, 1) if n % cfg.valid_every != 0],
            "valid": [i for n, i in enumerate(keep, 1) if n % cfg.valid_every == 0]}


def _clean_split(cfg: TranslationDataConfig, tmp: Path, parts: list[str], split_files: dict[str, SplitFiles]) -> None:
    """Only training pairs are cleaned (eval sets stay whole, as in fairseq's scripts); lowercasing applies to all."""
    src, tgt = langs = _langs(cfg)
    raw_tr = {lang: read_lines(tmp / f"train_all.raw.{lang}") for lang in langs}
    tok_tr = {lang: read_lines(tmp / f"train_all.tok.{lang}") for lang in langs}
    keep = clean_corpus(tok_tr[src], tok_tr[tgt], cfg.min_len, cfg.max_len, cfg.ratio)
    idx = _train_valid_indices(cfg, keep)
    empty = [s for s, ii in idx.items() if not ii]
    if empty:  # an empty split would fail much later, in fairseq's binarizer or data loader
        raise DataError(f"no {' or '.join(empty)} pair of {tmp}/train_all.tok.{{{src},{tgt}}} ({len(keep)} of "
                        f"{len(tok_tr[src])} pairs kept) is left after cleaning (data.min_len={cfg.min_len}, "
                        f"data.max_len={cfg.max_len}, data.ratio={cfg.ratio}, data.valid_every={cfg.valid_every})")
    for lang in langs:
        tok = [" ".join(x.split()) for x in tok_tr[lang]]  # clean-corpus collapses whitespace
        if cfg.lowercase:
            tok = lowercase(tok)
        for s, ii in idx.items():
            write_lines(split_files[s].raw[lang], (raw_tr[lang][i] for i in ii))
            write_lines(split_files[s].tok[lang], (tok[i] for i in ii))
        for s in [p for p in parts if p != "train_all"]:
            lines = read_lines(tmp / f"{s}.tok.{lang}")
            write_lines(split_files[s].tok[lang], lowercase(lines) if cfg.lowercase else lines)
            write_lines(split_files[s].raw[lang], read_lines(tmp / f"{s}.raw.{lang}"))


def _clean_split_stage(cfg: TranslationDataConfig, work: Path, parts: list[str], tok_parts: list[Path],
                       split_files: dict[str, SplitFiles], log: Log) -> None:
    """Stage 3: clean, lowercase and split into the ``{split}.raw.L`` and ``{split}.L`` files."""
    split_outputs = [f for s in SPLITS for d in (split_files[s].raw, split_files[s].tok) for f in d.values()]
    p_clean = {"min_len": cfg.min_len, "max_len": cfg.max_len, "ratio": cfg.ratio, "lowercase": cfg.lowercase,
               "valid_every": cfg.valid_every, "recipe": cfg.recipe}
    clean_split = partial(_clean_split, cfg, work / "tmp", parts, split_files)
    run_stage(work, "clean_split", tok_parts, p_clean, split_outputs, clean_split, log)


def _bpe_learn_stage(cfg: TranslationDataConfig, work: Path, split_files: dict[str, SplitFiles], log: Log) -> Path:
    """Stage 4a: the joint subword model, learned on the tokenized train.src + train.tgt; returns its file."""
    train_tok = [split_files["train"].tok[lang] for lang in _langs(cfg)]
    model = subword_model_file(cfg)
    learn: Callable[[], object]
    if cfg.bpe == "subword_nmt":
        learn = partial(learn_subword_nmt, train_tok, model, int(cfg.bpe_merges or 0))
        p_learn = {"bpe": cfg.bpe, "merges": cfg.bpe_merges}
    else:
        learn = partial(learn_sentencepiece, train_tok, work / "spm", cfg.spm_vocab_size)
        p_learn = {"bpe": cfg.bpe, "vocab_size": cfg.spm_vocab_size}
    run_stage(work, "bpe_learn", train_tok, p_learn, [model], learn, log)
    return model


def _bpe_apply(cfg: TranslationDataConfig, model: Path, split_files: dict[str, SplitFiles]) -> None:
    for s in SPLITS:
        for lang in _langs(cfg):
            apply_file(cfg.bpe, model, split_files[s].tok[lang], split_files[s].bpe[lang])


def _bpe_apply_stage(cfg: TranslationDataConfig, work: Path, model: Path, split_files: dict[str, SplitFiles],
                     log: Log) -> list[Path]:
    """Stage 4b: ``{split}.L`` -> ``{split}.bpe.L``; returns those files."""
    langs = _langs(cfg)
    tok_files = [split_files[s].tok[lang] for s in SPLITS for lang in langs]
    bpe_files = [split_files[s].bpe[lang] for s in SPLITS for lang in langs]
    apply = partial(_bpe_apply, cfg, model, split_files)
    run_stage(work, "bpe_apply", [model, *tok_files], {"bpe": cfg.bpe}, bpe_files, apply, log)
    return bpe_files


def _binarize_stage(cfg: TranslationDataConfig, work: Path, bpe_files: list[Path],
                    log: Log) -> tuple[Path, dict[str, int]]:
    """Stage 5: the fairseq data-bin; returns it and the dictionary sizes (read back when the stage is skipped)."""
    src, tgt = langs = _langs(cfg)
    dest = data_bin_dir(cfg)
    bin_files = fb.expected_files(dest, src, tgt, SPLITS)
    dict_sizes: dict[str, int] = {}

    def do_binarize() -> None:
        dict_sizes.update(fb.binarize({s: work / f"{s}.bpe" for s in SPLITS}, dest, src, tgt, cfg.threshold,
                                      cfg.padding_factor, cfg.workers))

    p_bin = {"threshold": cfg.threshold, "padding_factor": cfg.padding_factor, "langs": langs}
    run_stage(work, "binarize", bpe_files, p_bin, bin_files, do_binarize, log)
    for lang in langs:
        if lang not in dict_sizes:
            dict_sizes[lang] = _dict_size(dest / f"dict.{lang}.txt")
    return dest, dict_sizes


def prepare_translation_data(cfg: TranslationDataConfig | dict, log: Log = print) -> PreparedData:
    """Run (or reuse) the configured recipe; returns where the data-bin and text files are.

    With ``cfg.data_bin`` set, that existing fairseq dir is validated and returned instead (text files from
    ``work_dir`` are included when a previous run left them there).
    """
    if isinstance(cfg, dict):
        cfg = TranslationDataConfig(**cfg)
    src, tgt = _langs(cfg)
    work = Path(cfg.work_dir)
    if cfg.data_bin:
        prepared = use_existing_data_bin(cfg.data_bin, src, tgt, work_dir=work, log=log)
        prepared.data_content = data_content(cfg, log)
        return prepared
    work.mkdir(parents=True, exist_ok=True)
    with work_dir_lock(work, log):  # parallel jobs on one work_dir: one prepares, the others then reuse
        prepared = _run_stages(cfg, work, (src, tgt), log)
        prepared.data_content = data_content(cfg, log)  # the files the stages read (digests remembered: no reread)
        write_manifest(work, prepared, cfg.recipe)
    return prepared


MANIFEST = "manifest.json"


def write_manifest(work: Path, prepared: PreparedData, recipe: str) -> None:
    """``<work_dir>/manifest.json``: which inputs (their identity) made which data-bin (its digest), written last.
    A run compares the first with the identity it was named by (`TranslationTask.setup`)."""
    manifest = {"recipe": recipe, "data_content": prepared.data_content, "data_bin": prepared.data_bin.name,
                "data_bin_digest": identity.data_bin_digest(prepared.data_bin), "dict_sizes": prepared.dict_sizes}
    atomic.write_text(work / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _run_stages(cfg: TranslationDataConfig, work: Path, langs: tuple[str, str], log: Log) -> PreparedData:
    src, tgt = langs
    parts = _parts(cfg)
    raw_parts = _extract_stage(cfg, work, parts, log)
    tok_parts = _tokenize_stage(cfg, work, parts, raw_parts, log)
    split_files = _split_files(work, (src, tgt))
    _clean_split_stage(cfg, work, parts, tok_parts, split_files, log)
    model = _bpe_learn_stage(cfg, work, split_files, log)
    bpe_files = _bpe_apply_stage(cfg, work, model, split_files, log)
    dest, dict_sizes = _binarize_stage(cfg, work, bpe_files, log)
    for s in SPLITS:
        split_files[s].lines = _count_lines(split_files[s].bpe[src])
    return PreparedData(data_bin=dest, src_lang=src, tgt_lang=tgt, work_dir=work, bpe_codes=model, bpe=cfg.bpe,
                        splits=split_files, dict_sizes=dict_sizes)


def data_content(cfg: TranslationDataConfig | dict, log: Log = print) -> str:
    """The identity of the corpus ``cfg`` reads (`experiment.data_identity`): the raw files the recipe extracts
    from (an IWSLT'14 archive is fetched and unpacked first, as preparation would), or an existing data-bin."""
    if isinstance(cfg, dict):
        cfg = TranslationDataConfig(**cfg)
    if cfg.data_bin:
        return identity.data_bin_digest(Path(cfg.data_bin))
    if cfg.recipe == "files":
        return identity.named_digest(_files_inputs(cfg))
    inputs = _wmt_inputs(cfg) if cfg.recipe == "wmt18" else _iwslt_inputs(cfg, Path(cfg.work_dir), log)[2]
    return identity.content_digest(inputs)


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def _dict_size(path: Path) -> int:
    """Entries of a fairseq dict file + the 4 special symbols (what ``len(Dictionary.load(path))`` gives)."""
    return _count_lines(path) + 4


def use_existing_data_bin(
    data_bin: str | Path, src: str, tgt: str, work_dir: str | Path | None = None, log: Log = print
) -> PreparedData:
    """Validate a user's existing fairseq data-bin (e.g. ``data-bin/iwslt14.tokenized.de-en``) and wrap it.

    Raises a :class:`DataError` listing the missing files.  Text files are attached when ``work_dir`` has
    them from an earlier run of the recipe.
    """
    info = validate_data_bin(data_bin, src, tgt)
    log(f"[data_bin] using existing {data_bin}: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    splits: dict[str, SplitFiles] = {}
    codes = None
    if work_dir is not None:
        w = Path(work_dir)
        for s in SPLITS:
            files = SplitFiles(raw={lang: w / f"{s}.raw.{lang}" for lang in (src, tgt)},
                               tok={lang: w / f"{s}.{lang}" for lang in (src, tgt)},
                               bpe={lang: w / f"{s}.bpe.{lang}" for lang in (src, tgt)},
                               lines=info[f"{s}.{src}"])
            if all(p.is_file() for d in (files.raw, files.tok) for p in d.values()):
                splits[s] = files
        codes = next((p for p in (w / "bpe.codes", w / "spm.model") if p.is_file()), None)
    return PreparedData(data_bin=Path(data_bin), src_lang=src, tgt_lang=tgt,
                        work_dir=Path(work_dir) if work_dir else None, bpe_codes=codes,
                        bpe="sentencepiece" if codes is not None and codes.suffix == ".model" else "subword_nmt",
                        splits=splits, dict_sizes={lang: info[f"dict.{lang}"] for lang in (src, tgt)})
