"""The committed German-English sample: its files are in the IWSLT raw format and the recipe runs on a slice."""

from __future__ import annotations

from pathlib import Path

from shapeshifter.translation.data import TranslationDataConfig, prepare_translation_data
from shapeshifter.translation.data.iwslt14 import SAMPLE_TEST_SETS, extract_segs, strip_train_meta
from shapeshifter.translation.data.smoke import slice_iwslt_raw
from shapeshifter.translation.data.text import read_lines

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample" / "de-en"
N_TRAIN_LINES, N_SEGS = 300, 30


def _slice(dst: Path) -> None:
    """First 300 train.tags lines and the first 30 segments of each dev/test file, same formats."""
    slice_iwslt_raw(dst, SAMPLE, N_TRAIN_LINES, N_SEGS)


def test_committed_sample_is_aligned_and_disjoint() -> None:
    total = sum(f.stat().st_size for f in SAMPLE.iterdir())
    assert total < 5_000_000
    train = {lang: strip_train_meta(read_lines(SAMPLE / f"train.tags.de-en.{lang}")) for lang in ("de", "en")}
    assert len(train["de"]) == len(train["en"]) > 25_000
    raw_en = read_lines(SAMPLE / "train.tags.de-en.en")
    assert sum("<url>" in x for x in raw_en) == sum("<talkid>" in x for x in raw_en) > 100
    evals = {
        lang: [s for n in SAMPLE_TEST_SETS for s in extract_segs(read_lines(SAMPLE / f"IWSLT14.{n}.de-en.{lang}.xml"))]
        for lang in ("de", "en")
    }
    assert len(evals["de"]) == len(evals["en"]) > 1500
    # No German or English side of a dev/test pair occurs in train (same ’ -> ' mapping as the recipe).
    for lang in ("de", "en"):
        train_set = {x.replace("\u2019", "'") for x in train[lang]}
        assert not train_set & set(evals[lang])


def test_recipe_runs_on_a_slice_of_the_sample(tmp_path: Path) -> None:
    _slice(tmp_path / "raw")
    data = prepare_translation_data(
        TranslationDataConfig(recipe="sample", raw_dir=str(tmp_path / "raw"), work_dir=str(tmp_path / "w"),
                              bpe_merges=300), log=lambda s: None)
    expected_pairs = strip_train_meta(read_lines(tmp_path / "raw" / "train.tags.de-en.en"))
    n_train, n_valid = data.splits["train"].lines, data.splits["valid"].lines
    assert 0.9 * len(expected_pairs) < n_train + n_valid <= len(expected_pairs)  # a few dropped by cleaning
    assert n_valid == (n_train + n_valid) // 23
    assert data.splits["test"].lines == N_SEGS * len(SAMPLE_TEST_SETS)
    train_raw = read_lines(data.splits["train"].raw["en"])
    assert not any("<url>" in x or "<talkid>" in x or "<title>" in x for x in train_raw)
    tok = read_lines(data.splits["test"].tok["de"])
    assert tok == [x.lower() for x in tok] and any(" ." in x for x in tok)
    from shapeshifter.translation.data.binarize import validate_data_bin

    info = validate_data_bin(data.data_bin, "de", "en")
    assert info["train.de"] == n_train and info["test.en"] == N_SEGS * 4
    assert 100 < info["dict.en"] < 2000
