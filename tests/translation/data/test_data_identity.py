"""A corpus's identity is its files' names and bytes: the same files elsewhere are the same data, one changed
byte is other data, and missing inputs are an error naming them."""

from __future__ import annotations

from pathlib import Path

import pytest

from shapeshifter.experiment.data_identity import data_bin_digest, named_digest
from shapeshifter.translation.data import DataError, TranslationDataConfig
from shapeshifter.translation.data.recipe import data_content
from shapeshifter.translation.data.smoke import slice_iwslt_raw


def _sample_config(raw: Path, work: Path) -> TranslationDataConfig:
    return TranslationDataConfig(name="s", recipe="sample", raw_dir=str(raw), work_dir=str(work))


def test_the_same_files_in_another_folder_are_the_same_data_one_byte_more_is_not(tmp_path: Path) -> None:
    a = slice_iwslt_raw(tmp_path / "a", n_train_lines=40, n_segs=3)
    b = slice_iwslt_raw(tmp_path / "b" / "deeper", n_train_lines=40, n_segs=3)
    (b / "README").write_text("not an input of the recipe")  # files the recipe does not read do not count
    first = data_content(_sample_config(a, tmp_path / "wa"))
    assert first.startswith("sha256:") and first == data_content(_sample_config(b, tmp_path / "wb"))
    test_file = b / "IWSLT14.TED.tst2010.de-en.en.xml"
    test_file.write_text(test_file.read_text().replace("</seg>", " </seg>", 1))
    assert data_content(_sample_config(b, tmp_path / "wb")) != first
    fewer = TranslationDataConfig(name="s", recipe="sample", raw_dir=str(a), work_dir=str(tmp_path / "wa"),
                                  test_sets=["TED.tst2010"])
    assert data_content(fewer) != first  # the test sets read are part of what the data is


def test_missing_inputs_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=str(tmp_path / "nowhere")):
        data_content(_sample_config(tmp_path / "nowhere", tmp_path / "w"))


def test_a_data_bin_is_its_dictionaries_and_splits_not_its_log(tmp_path: Path) -> None:
    for name in ("dict.de.txt", "train.de-en.de.bin", "train.de-en.de.idx"):
        (tmp_path / name).write_bytes(name.encode())
    before = data_bin_digest(tmp_path)
    (tmp_path / "preprocess.log").write_text("Namespace(destdir='/home/someone/data-bin')")
    assert data_bin_digest(tmp_path) == before
    (tmp_path / "dict.de.txt").write_text("other")
    assert data_bin_digest(tmp_path) != before
    with pytest.raises(DataError, match="no data files"):
        named_digest({})
