"""Your own parallel text (recipe ``files``, ``data=parallel_files``): PREFIX.de / PREFIX.en, one sentence per
line, through the same tokenize / clean / BPE / binarize stages; the split rule when valid or test is absent; and
errors that name the file and the line to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from shapeshifter_data_fixtures import sentence_pair

from shapeshifter.translation.data import DataError, TranslationDataConfig, prepare_translation_data
from shapeshifter.translation.data.config import files_work_dir
from shapeshifter.translation.data.recipe import data_content, files_split_rule
from shapeshifter.translation.data.text import read_lines


def write_pairs(prefix: Path, pairs: list[tuple[str, str]]) -> Path:
    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_name(prefix.name + ".de").write_text("".join(de + "\n" for de, _ in pairs), encoding="utf-8")
    prefix.with_name(prefix.name + ".en").write_text("".join(en + "\n" for _, en in pairs), encoding="utf-8")
    return prefix


def files_cfg(work: Path, train: Path, **kw: object) -> TranslationDataConfig:
    return TranslationDataConfig(recipe="files", src_lang="de", tgt_lang="en", trainpref=str(train),
                                 work_dir=str(work), bpe_merges=40, **kw)


def prepare(cfg: TranslationDataConfig):
    return prepare_translation_data(cfg, log=lambda s: None)


def test_given_splits_are_used_as_they_are_and_train_is_cleaned(tmp_path: Path) -> None:
    train = write_pairs(tmp_path / "c" / "train", [sentence_pair(i) for i in range(40)] + [("Ja.", "Yes " * 9)])
    valid = write_pairs(tmp_path / "c" / "valid", [sentence_pair(i) for i in range(100, 105)])
    test = write_pairs(tmp_path / "c" / "test", [sentence_pair(i) for i in range(200, 203)])
    data = prepare(files_cfg(tmp_path / "w", train, validpref=str(valid), testpref=str(test)))
    assert (data.splits["train"].lines, data.splits["valid"].lines, data.splits["test"].lines) == (40, 5, 3)
    assert read_lines(data.splits["test"].raw["en"]) == [sentence_pair(i)[1] for i in range(200, 203)]
    assert read_lines(data.splits["valid"].tok["de"])[0] == "Das Satz100 : Haus Katze , nicht wahr ?"  # cased
    assert (data.data_bin / "dict.de.txt").is_file() and (data.data_bin / "test.de-en.en.bin").is_file()


def test_without_valid_and_test_files_they_are_taken_out_of_train_by_the_documented_rule(tmp_path: Path) -> None:
    pairs = [sentence_pair(i) for i in range(50)]
    data = prepare(files_cfg(tmp_path / "w", write_pairs(tmp_path / "train", pairs)))
    expected = files_split_rule(50, 23, ("valid", "test"))
    assert expected["valid"] == [22, 45] and expected["test"] == [10, 33]  # the 23rd, 46th; the 11th, 34th pair
    for split in ("train", "valid", "test"):
        assert read_lines(data.splits[split].raw["en"]) == [pairs[i][1] for i in expected[split]]


@given(n=st.integers(0, 200), every=st.integers(3, 40), carve=st.sampled_from([(), ("valid",), ("test",),
                                                                             ("valid", "test")]))
def test_the_split_rule_is_a_partition(n: int, every: int, carve: tuple[str, ...]) -> None:
    out = files_split_rule(n, every, carve)
    assert sorted(i for ii in out.values() for i in ii) == list(range(n))
    assert set(out) == {"train", *carve}


def test_a_pair_with_a_missing_line_names_the_line_without_a_partner(tmp_path: Path) -> None:
    train = write_pairs(tmp_path / "train", [sentence_pair(i) for i in range(30)])
    en = tmp_path / "train.en"
    en.write_text("".join(line + "\n" for n, line in enumerate(read_lines(en)) if n != 12))  # line 13 lost
    with pytest.raises(DataError, match=r"train\.de has 30 lines, .*train\.en has 29: line 30 of .*train\.de has no "
                                        r"partner in .*train\.en"):
        prepare(files_cfg(tmp_path / "w", train))
    assert not (tmp_path / "w" / "data-bin").exists()


def test_empty_files_undecodable_bytes_and_missing_files_are_named(tmp_path: Path) -> None:
    train = write_pairs(tmp_path / "train", [sentence_pair(i) for i in range(30)])
    valid = write_pairs(tmp_path / "valid", [])
    with pytest.raises(DataError, match=r"valid\.de is empty"):
        prepare(files_cfg(tmp_path / "w1", train, validpref=str(valid)))
    en = tmp_path / "train.en"
    lines = read_lines(en)
    en.write_bytes("".join(x + "\n" for x in lines[:6]).encode() + b"caf\xe9\n" + "".join(x + "\n" for x in
                                                                                        lines[7:]).encode())
    with pytest.raises(DataError, match=r"train\.en:7: byte 0xe9 \(column 4\) is not UTF-8"):
        prepare(files_cfg(tmp_path / "w2", train))
    with pytest.raises(DataError, match=r"data\.testpref=.*nothing: no file .*nothing\.de"):
        prepare(files_cfg(tmp_path / "w3", train, testpref=str(tmp_path / "nothing")))


def test_what_the_data_is_does_not_depend_on_where_it_lies_or_how_the_files_are_named(tmp_path: Path) -> None:
    pairs = [sentence_pair(i) for i in range(30)]
    a = files_cfg(tmp_path / "w", write_pairs(tmp_path / "a" / "train", pairs))
    b = files_cfg(tmp_path / "w", write_pairs(tmp_path / "b" / "corpus", pairs))
    c = files_cfg(tmp_path / "w", write_pairs(tmp_path / "c" / "train", pairs[:-1]))
    assert data_content(a) == data_content(b) != data_content(c)
    as_test = files_cfg(tmp_path / "w", write_pairs(tmp_path / "a" / "train", pairs), testpref=str(tmp_path / "b"
                                                                                                    / "corpus"))
    assert data_content(as_test) != data_content(a)  # a file's role is part of what the data is


def test_two_corpora_get_their_own_work_folder_and_the_languages_are_required(tmp_path: Path) -> None:
    assert files_work_dir("a/train", None, None) != files_work_dir("b/train", None, None)
    assert TranslationDataConfig(recipe="files", src_lang="de", tgt_lang="en", trainpref="a/train",
                                 work_dir=None).work_dir == files_work_dir("a/train", None, None)
    with pytest.raises(ValueError, match=r"data=parallel_files needs data\.trainpref, data\.source_lang"):
        TranslationDataConfig(recipe="files", trainpref="a/train")
