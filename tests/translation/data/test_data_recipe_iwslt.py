"""End-to-end IWSLT'14 recipe on a tiny corpus in the real archive format: splits, BPE, data-bin, caching."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from shapeshifter_data_fixtures import sentence_pair, write_iwslt

from shapeshifter.translation.data import (
    DataError,
    PreparedData,
    TranslationDataConfig,
    prepare_translation_data,
    use_existing_data_bin,
)
from shapeshifter.translation.data.bpe import debpe
from shapeshifter.translation.data.text import lowercase, moses_tokenize, read_lines

TEST_SIZES = {"TED.dev2010": 3, "TEDX.dev2012": 2, "TED.tst2010": 2, "TED.tst2011": 2, "TED.tst2012": 3}


def _cfg(raw: Path, work: Path, **kw: object) -> TranslationDataConfig:
    args: dict[str, object] = {"bpe_merges": 40, **kw}
    return TranslationDataConfig(recipe="iwslt14", raw_dir=str(raw), work_dir=str(work), download=False, **args)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[PreparedData, dict[str, list[tuple[str, str]]]]:
    root = tmp_path_factory.mktemp("iwslt")
    written = write_iwslt(root / "raw", n_train=60, test_sizes=TEST_SIZES)
    return prepare_translation_data(_cfg(root / "raw", root / "work"), log=lambda s: None), written


def _expected_clean_train() -> list[tuple[str, str]]:
    """What survives meta stripping (titles are kept, fairseq-style) and cleaning (the 2 bad pairs go)."""
    pairs = [sentence_pair(i) for i in range(60)]
    return [("Titel0", "Title0"), *pairs[:30], ("Titel1", "Title1"), *pairs[30:]]


def test_valid_is_every_23rd_cleaned_training_pair(prepared) -> None:
    data, _ = prepared
    cleaned = _expected_clean_train()
    assert len(cleaned) == 62
    valid = [p for n, p in enumerate(cleaned, 1) if n % 23 == 0]
    train = [p for n, p in enumerate(cleaned, 1) if n % 23 != 0]
    assert valid == [sentence_pair(21), sentence_pair(43)]
    for lang, k in (("de", 0), ("en", 1)):
        assert read_lines(data.splits["valid"].raw[lang]) == [p[k] for p in valid]
        assert read_lines(data.splits["train"].raw[lang]) == [p[k] for p in train]
    assert data.splits["train"].lines == 60 and data.splits["valid"].lines == 2


def test_tokenized_text_is_moses_tokenized_and_lowercased(prepared) -> None:
    data, _ = prepared
    tok = read_lines(data.splits["train"].tok["en"])
    assert tok[1] == "the sentence0 : house cat , isn 't it ?"
    raw = read_lines(data.splits["train"].raw["de"])
    assert read_lines(data.splits["train"].tok["de"]) == lowercase(moses_tokenize(raw, "de"))
    assert data.reference("test", "tok") == data.splits["test"].tok["en"]
    assert data.reference("test", "raw") == data.splits["test"].raw["en"]


def test_test_is_concatenation_in_fairseq_order(prepared) -> None:
    data, written = prepared
    order = ["TED.dev2010", "TEDX.dev2012", "TED.tst2010", "TED.tst2011", "TED.tst2012"]
    expected = [p for name in order for p in written[name]]
    assert read_lines(data.splits["test"].raw["de"]) == [p[0] for p in expected]
    assert read_lines(data.splits["test"].raw["en"]) == [p[1] for p in expected]
    assert data.splits["test"].lines == sum(TEST_SIZES.values())


def test_bpe_round_trip_gives_back_tokenized_text(prepared) -> None:
    data, _ = prepared
    codes = read_lines(data.bpe_codes)
    assert len(codes) > 10  # header + merges actually learned
    some_split = False
    for split in ("train", "valid", "test"):
        for lang in ("de", "en"):
            bpe = read_lines(data.splits[split].bpe[lang])
            some_split |= any("@@" in line for line in bpe)
            assert [debpe(line) for line in bpe] == read_lines(data.splits[split].tok[lang])
    assert some_split


def test_data_bin_reads_back_with_fairseq(prepared) -> None:
    from fairseq.data import Dictionary, LanguagePairDataset, data_utils

    data, _ = prepared
    dicts = {lang: Dictionary.load(str(data.data_bin / f"dict.{lang}.txt")) for lang in ("de", "en")}
    assert {lang: len(d) for lang, d in dicts.items()} == data.dict_sizes
    assert len(dicts["de"]) % 8 == 0
    for split in ("train", "valid", "test"):
        ds = {lang: data_utils.load_indexed_dataset(str(data.data_bin / f"{split}.de-en.{lang}"), dicts[lang])
              for lang in ("de", "en")}
        bpe = {lang: read_lines(data.splits[split].bpe[lang]) for lang in ("de", "en")}
        for lang in ("de", "en"):
            assert len(ds[lang]) == len(bpe[lang])
            assert [len(x) for x in ds[lang]] == [len(line.split()) + 1 for line in bpe[lang]]  # + eos
        pair = LanguagePairDataset(ds["de"], ds["de"].sizes, dicts["de"], ds["en"], ds["en"].sizes, dicts["en"])
        assert len(pair) == len(bpe["de"])
        if split == "train":  # every train token is in the dictionary, so decoding is exact
            assert dicts["en"].string(pair[0]["target"]) == bpe["en"][0]
            assert dicts["de"].string(pair[5]["source"]) == bpe["de"][5]


def test_existing_data_bin_is_validated(prepared, tmp_path: Path) -> None:
    data, _ = prepared
    reused = prepare_translation_data({"recipe": "iwslt14", "data_bin": str(data.data_bin),
                                       "work_dir": str(data.work_dir)}, log=lambda s: None)
    assert reused.data_bin == data.data_bin and reused.dict_sizes == data.dict_sizes
    assert reused.reference("test", "raw") == data.splits["test"].raw["en"]

    broken = tmp_path / "iwslt14.tokenized.de-en"
    shutil.copytree(data.data_bin, broken)
    (broken / "valid.de-en.en.idx").unlink()
    (broken / "dict.de.txt").unlink()
    with pytest.raises(DataError) as e:
        prepare_translation_data({"recipe": "iwslt14", "data_bin": str(broken)}, log=lambda s: None)
    assert "valid.de-en.en.idx" in str(e.value) and "dict.de.txt" in str(e.value)
    with pytest.raises(DataError, match="does not exist"):
        prepare_translation_data({"recipe": "iwslt14", "data_bin": str(tmp_path / "nope")}, log=lambda s: None)

    truncated = tmp_path / "truncated"
    shutil.copytree(data.data_bin, truncated)
    with open(truncated / "train.de-en.de.bin", "r+b") as f:
        f.truncate(8)
    with pytest.raises(DataError, match=r"train\.de-en\.de\.bin"):
        use_existing_data_bin(truncated, "de", "en")


def test_stages_are_cached_and_rerun_on_changes(tmp_path: Path) -> None:
    write_iwslt(tmp_path / "raw", n_train=30, test_sizes={"TED.dev2010": 2, "TEDX.dev2012": 1, "TED.tst2010": 1,
                                                           "TED.tst2011": 1, "TED.tst2012": 1})
    logs: list[str] = []

    def run(**kw: object) -> list[str]:
        logs.clear()
        prepare_translation_data(_cfg(tmp_path / "raw", tmp_path / "work", **kw), log=logs.append)
        return [s.split("]")[0][1:] for s in logs if s.endswith("running")]

    all_stages = ["extract", "tokenize", "clean_split", "bpe_learn", "bpe_apply", "binarize"]
    assert run() == all_stages
    first = prepare_translation_data(_cfg(tmp_path / "raw", tmp_path / "work"), log=lambda s: None)
    assert run() == []
    skipped = prepare_translation_data(_cfg(tmp_path / "raw", tmp_path / "work"), log=lambda s: None)
    assert skipped.dict_sizes == first.dict_sizes and skipped.splits == first.splits
    assert run(bpe_merges=20) == ["bpe_learn", "bpe_apply", "binarize"]
    # ratio 2.0 changes no decision here: clean_split reruns but its outputs are unchanged, so nothing else does.
    assert run(bpe_merges=20, ratio=2.0) == ["clean_split"]
    # ratio 6.0 lets the 2:11-token pair in, which changes train and everything after it.
    assert run(bpe_merges=20, ratio=6.0) == ["clean_split", "bpe_learn", "bpe_apply", "binarize"]
    # A changed raw file reruns extraction (and everything downstream, since the text changed).
    f = tmp_path / "raw" / "train.tags.de-en.en"
    f.write_text(f.read_text().replace("sentence3:", "phrase3:"))
    assert run(bpe_merges=20, ratio=6.0) == all_stages
    # A truncated output reruns its stage only (its rewritten output equals the stamped one downstream).
    out = tmp_path / "work" / "test.bpe.de"
    out.write_text("")
    assert run(bpe_merges=20, ratio=6.0) == ["bpe_apply"]
    # So does an output corrupted in place at the same size (stamps hold content hashes, not sizes).
    (binary,) = (tmp_path / "work" / "data-bin").glob("train.de-en.de.bin")
    blob = bytearray(binary.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    binary.write_bytes(bytes(blob))
    assert run(bpe_merges=20, ratio=6.0) == ["binarize"]


def test_missing_or_corrupt_inputs_name_the_file(tmp_path: Path) -> None:
    write_iwslt(tmp_path / "raw")
    (tmp_path / "raw" / "IWSLT14.TEDX.dev2012.de-en.en.xml").unlink(missing_ok=True)
    with pytest.raises(DataError, match=r"IWSLT14\.TEDX\.dev2012\.de-en\.de\.xml"):
        prepare_translation_data(_cfg(tmp_path / "raw", tmp_path / "w"), log=lambda s: None)
    write_iwslt(tmp_path / "raw2", test_sizes=TEST_SIZES)
    (tmp_path / "raw2" / "train.tags.de-en.en").write_bytes(b"<url>x</url>\n\xff\xfe\n")
    with pytest.raises(DataError, match=r"train\.tags\.de-en\.en"):
        prepare_translation_data(_cfg(tmp_path / "raw2", tmp_path / "w2"), log=lambda s: None)
    write_iwslt(tmp_path / "raw3", test_sizes=TEST_SIZES)
    f = tmp_path / "raw3" / "train.tags.de-en.en"
    f.write_text(f.read_text() + "one extra line\n")
    with pytest.raises(DataError, match=r"train\.tags\.de-en\.de has 64 lines.*train\.tags\.de-en\.en has 65"):
        prepare_translation_data(_cfg(tmp_path / "raw3", tmp_path / "w3"), log=lambda s: None)


def test_sentencepiece_option_and_subsampling(tmp_path: Path) -> None:
    write_iwslt(tmp_path / "raw", n_train=60, test_sizes=TEST_SIZES, bad_pairs=False)
    data = prepare_translation_data(_cfg(tmp_path / "raw", tmp_path / "work", bpe="sentencepiece",
                                         spm_vocab_size=80, max_train_pairs=40), log=lambda s: None)
    assert data.bpe_codes is not None and data.bpe_codes.name == "spm.model"
    assert data.splits["train"].lines + data.splits["valid"].lines == 40  # subsample of 62, all clean
    for split in ("train", "test"):
        bpe = read_lines(data.splits[split].bpe["en"])
        assert [debpe(x, "sentencepiece") for x in bpe] == read_lines(data.splits[split].tok["en"])
        assert any("\u2581" in x for x in bpe)


def _prepare_logging_to(raw: Path, work: Path, log_file: Path) -> None:
    with open(log_file, "w") as out:
        prepare_translation_data(_cfg(raw, work), log=lambda line: print(line, file=out, flush=True))


def test_parallel_jobs_prepare_the_same_data_once(tmp_path: Path) -> None:
    import multiprocessing

    write_iwslt(tmp_path / "raw", n_train=30, test_sizes=TEST_SIZES)
    ctx = multiprocessing.get_context("fork")
    logs = [tmp_path / f"job{i}.log" for i in range(2)]
    jobs = [ctx.Process(target=_prepare_logging_to, args=(tmp_path / "raw", tmp_path / "work", log)) for log in logs]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=300)
    assert [job.exitcode for job in jobs] == [0, 0]
    lines = [line for log in logs for line in log.read_text().splitlines()]
    ran = [line for line in lines if line.endswith("running")]
    assert len(ran) == 6 and len(set(ran)) == 6  # every stage ran once, by one of the two jobs
    assert sum(line.endswith("skipped (up to date)") for line in lines) == 6  # the other reused them
