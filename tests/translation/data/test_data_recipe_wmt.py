"""WMT En-Ro: SGM parsing, Romanian/punctuation normalization, file discovery and the recipe end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from shapeshifter_data_fixtures import RO_TRAIN, write_wmt

from shapeshifter.translation.data import DataError, TranslationDataConfig, prepare_translation_data, wmt18
from shapeshifter.translation.data.text import read_lines


def test_extract_sgm() -> None:
    lines = ['<srcset setid="newstest2016" srclang="any">', '<doc docid="a" genre="news">', "<p>",
             '<seg id="1"> Casa este mare. </seg>', '<seg id="2">A &amp; B</seg><seg id="3">x</seg>', "</p>"]
    assert wmt18.extract_sgm(lines) == ["Casa este mare.", "A &amp; B", "x"]


def test_read_sgm_without_segs_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "newstest2016-enro-ref.ro.sgm"
    f.write_text("<srcset>\n</srcset>\n")
    with pytest.raises(DataError, match="newstest2016-enro-ref.ro.sgm"):
        wmt18.read_sgm(f)


def test_romanian_normalization() -> None:
    cedilla = "\u015ecoal\u0103 \u0163ar\u0103 \u015f"  # Şcoală ţară ş (cedilla forms)
    assert wmt18.normalize_romanian(cedilla, remove_diacritics=False) == "\u0218coal\u0103 \u021bar\u0103 \u0219"
    assert wmt18.normalize_romanian(cedilla, remove_diacritics=True) == "Scoala tara s"
    assert wmt18.normalize_romanian("\u00cen \u00een\u00e2l\u021bime", remove_diacritics=True) == "In inaltime"


def test_punctuation_normalization() -> None:
    assert wmt18.normalize_punctuation(["El a spus \u201ebun\u0103\u201d."], "ro") == ['El a spus "bun\u0103".']
    assert wmt18.normalize_punctuation(["a  \u2013  b"], "en") == ["a - b"]


def test_file_discovery(tmp_path: Path) -> None:
    write_wmt(tmp_path)
    (tmp_path / "newsdev2016.en").write_text("plain dev\n")  # plain dev files are not training data
    (tmp_path / "newsdev2016.ro").write_text("plain dev\n")
    pairs = wmt18.find_train_pairs(tmp_path, "en", "ro", ("newsdev2016", "newstest2016"))
    assert [p[0].name for p in pairs] == ["SETIMES.en-ro.en", "europarl-v8.ro-en.en"]
    assert wmt18.find_eval_file(tmp_path, "newstest2016", "en", "ro", "ro").name == "newstest2016-enro-ref.ro.sgm"
    with pytest.raises(DataError, match="newstest2017"):
        wmt18.find_eval_file(tmp_path, "newstest2017", "en", "ro", "ro")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no training pairs"):
        wmt18.find_train_pairs(tmp_path / "empty", "en", "ro", ())
    with pytest.raises(DataError, match="does not exist"):
        wmt18.find_train_pairs(tmp_path / "missing", "en", "ro", ())


def test_wmt_recipe_end_to_end(tmp_path: Path) -> None:
    write_wmt(tmp_path / "raw")
    cfg = TranslationDataConfig(recipe="wmt18", raw_dir=str(tmp_path / "raw"), work_dir=str(tmp_path / "w"),
                                bpe_merges=30)
    assert (cfg.src_lang, cfg.tgt_lang, cfg.lowercase) == ("en", "ro", False)
    data = prepare_translation_data(cfg, log=lambda s: None)
    # Training = SETIMES then europarl (name order); all pairs pass cleaning.
    half = len(RO_TRAIN) // 2
    expected = RO_TRAIN[half:] + RO_TRAIN[:half]
    assert read_lines(data.splits["train"].raw["ro"]) == [r for _, r in expected]
    assert read_lines(data.splits["valid"].raw["ro"]) == ["Ora\u015ful este mare.", "Fata este aici."]
    # Cased, diacritics removed on the Romanian side only, punctuation normalized, Moses-tokenized.
    assert read_lines(data.splits["valid"].tok["ro"]) == ["Orasul este mare .", "Fata este aici ."]
    assert read_lines(data.splits["test"].tok["ro"]) == ["Casa canta .", "Suntem inalti ."]
    assert 'El a spus " buna " .' in read_lines(data.splits["train"].tok["ro"])
    assert read_lines(data.splits["test"].raw["ro"]) == ["Casa c\u00e2nt\u0103.", "Suntem \u00eenal\u0163i."]
    assert (data.data_bin / "train.en-ro.ro.bin").is_file() and (data.data_bin / "dict.en.txt").is_file()
    assert data.splits["test"].lines == 2

    kept = prepare_translation_data(
        TranslationDataConfig(recipe="wmt18", raw_dir=str(tmp_path / "raw"), work_dir=str(tmp_path / "w2"),
                              bpe_merges=30, remove_diacritics=False), log=lambda s: None)
    assert read_lines(kept.splits["test"].tok["ro"]) == ["Casa c\u00e2nt\u0103 .", "Suntem \u00eenal\u021bi ."]


def test_wmt_missing_reference_is_named(tmp_path: Path) -> None:
    write_wmt(tmp_path / "raw")
    (tmp_path / "raw" / "newstest2016-enro-ref.ro.sgm").unlink()
    with pytest.raises(DataError, match="newstest2016"):
        prepare_translation_data({"recipe": "wmt18", "raw_dir": str(tmp_path / "raw"),
                                  "work_dir": str(tmp_path / "w")}, log=lambda s: None)
