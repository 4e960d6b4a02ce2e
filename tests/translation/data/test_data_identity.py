"""A corpus's identity is its files' names and bytes: the same files elsewhere are the same data, one changed
byte is other data, and missing inputs are an error naming them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shapeshifter.experiment.data_identity import data_bin_digest, named_digest
from shapeshifter.experiment.sweep import compose_cfg
from shapeshifter.experiment.task import build_task
from shapeshifter.translation.data import DataError, TranslationDataConfig, prepare_translation_data
from shapeshifter.translation.data.recipe import MANIFEST, data_content
from shapeshifter.translation.data.smoke import slice_iwslt_raw

ROOT = Path(__file__).resolve().parents[3]


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


def test_the_prepared_data_names_the_inputs_it_read_in_its_manifest(tmp_path: Path) -> None:
    raw = slice_iwslt_raw(tmp_path / "raw", n_train_lines=40, n_segs=3)
    cfg = _sample_config(raw, tmp_path / "w")
    prepared = prepare_translation_data(cfg, log=lambda s: None)
    manifest = json.loads((tmp_path / "w" / MANIFEST).read_text())
    assert prepared.data_content == manifest["data_content"] == data_content(cfg)
    assert manifest["data_bin_digest"] == data_bin_digest(prepared.data_bin)
    assert manifest["dict_sizes"] == prepared.dict_sizes
    given = prepare_translation_data(TranslationDataConfig(name="s", recipe="sample", data_bin=str(prepared.data_bin),
                                                           work_dir=str(tmp_path / "w")), log=lambda s: None)
    assert given.data_content == data_bin_digest(prepared.data_bin)  # a data-bin given as it is: its own digest


def test_a_run_refuses_data_whose_files_changed_after_it_was_named(tmp_path: Path) -> None:
    raw = slice_iwslt_raw(tmp_path / "raw", n_train_lines=40, n_segs=3)
    cfg = compose_cfg(ROOT / "conf", ["experiment=demo", f"data.raw_dir={raw}", f"data.work_dir={tmp_path / 'w'}",
                                      "data.max_train_pairs=null"])
    task = build_task(cfg)
    task.validate()
    named = task.identity()
    train = raw / "train.tags.de-en.en"
    train.write_text(train.read_text().replace("the", "teh", 1))  # edited while the run waited for a slot
    with pytest.raises(DataError, match=f"changed after the run was named \\(identity {named} when the run started"):
        task.setup({})
