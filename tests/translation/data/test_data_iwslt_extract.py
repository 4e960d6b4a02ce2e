"""IWSLT'14 raw-format handling: meta-line stripping, <seg> extraction, locating/extracting the archive."""

from __future__ import annotations

import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from shapeshifter_data_fixtures import write_iwslt

from shapeshifter.experiment.data_identity import DataError
from shapeshifter.translation.data import iwslt14

TRAIN = [
    "<url>http://www.ted.com/talks/a.html</url>",
    "<keywords>talks, science</keywords>",
    "<speaker>Jane Doe</speaker>",
    "<talkid>1</talkid>",
    "<title>Jane Doe: Ein Titel</title>",
    "<description>TED Talk: Eine Beschreibung.</description>",
    "Erster Satz.",
    "<reviewer href=\"x\">R</reviewer>",
    "<translator href=\"y\">T</translator>",
    "Zweiter Satz mit <b>Fett</b> im Text.",
]


def test_strip_meta_fairseq_rule_keeps_title_and_description_text() -> None:
    assert iwslt14.strip_train_meta(TRAIN, "fairseq") == [
        "Jane Doe: Ein Titel",
        "TED Talk: Eine Beschreibung.",
        "Erster Satz.",
        "Zweiter Satz mit <b>Fett</b> im Text.",
    ]


def test_strip_meta_strict_rule_drops_every_meta_line() -> None:
    assert iwslt14.strip_train_meta(TRAIN, "strict") == ["Erster Satz.", "Zweiter Satz mit <b>Fett</b> im Text."]


def test_extract_segs_like_fairseq_sed() -> None:
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<doc docid="535" genre="lectures">',
        "<title>Kein Satz</title>",
        '<seg id="1"> Das ist’s. </seg>',
        '<seg id="12">Zweiter   Satz</seg>',
        "</doc>",
    ]
    assert iwslt14.extract_segs(lines) == ["Das ist's.", "Zweiter   Satz"]


def test_read_xml_without_segs_is_an_error_naming_the_file(tmp_path: Path) -> None:
    f = tmp_path / "IWSLT14.TED.dev2010.de-en.de.xml"
    f.write_text("<mteval>\n</mteval>\n")
    with pytest.raises(DataError, match="IWSLT14.TED.dev2010.de-en.de.xml"):
        iwslt14.read_xml(f)


def test_locate_accepts_extracted_dir_and_nested_de_en(tmp_path: Path) -> None:
    write_iwslt(tmp_path / "a")
    assert iwslt14.locate_raw_dir(tmp_path / "a", tmp_path / "x", download=False) == tmp_path / "a"
    write_iwslt(tmp_path / "b" / "de-en")
    assert iwslt14.locate_raw_dir(tmp_path / "b", tmp_path / "x", download=False) == tmp_path / "b" / "de-en"
    assert iwslt14.pair_name("en", "de", tmp_path / "a") == "de-en"


def test_locate_extracts_archive(tmp_path: Path) -> None:
    write_iwslt(tmp_path / "src" / "de-en")
    raw = tmp_path / "raw"
    raw.mkdir()
    with tarfile.open(raw / "de-en.tgz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "de-en", arcname="de-en")
    found = iwslt14.locate_raw_dir(raw, tmp_path / "work" / "raw", download=False)
    assert found == tmp_path / "work" / "raw" / "de-en"
    assert (found / "train.tags.de-en.en").read_text() == (tmp_path / "src/de-en/train.tags.de-en.en").read_text()


def test_corrupt_archive_error_names_it(tmp_path: Path) -> None:
    (tmp_path / "de-en.tgz").write_bytes(b"not a tarball")
    with pytest.raises(DataError, match="de-en.tgz"):
        iwslt14.locate_raw_dir(tmp_path, tmp_path / "x", download=False)


def test_missing_raw_data_without_download_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        iwslt14.locate_raw_dir(tmp_path, tmp_path / "x", download=False)
    assert str(tmp_path / "de-en.tgz") in str(e.value) and iwslt14.IWSLT14_URL in str(e.value)


def test_download_failure_gives_manual_instructions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(DataError) as e:
        iwslt14.locate_raw_dir(tmp_path, tmp_path / "x", download=True, log=lambda s: None)
    assert "place it at" in str(e.value) and str(tmp_path / "de-en.tgz") in str(e.value)
    assert not (tmp_path / "de-en.tgz.part").exists()
