"""TranslationDataConfig: construction from a plain dict, per-recipe defaults, validation errors."""

from __future__ import annotations

import pytest

from shapeshifter.translation.data import TranslationDataConfig


def test_defaults_per_recipe() -> None:
    iw = TranslationDataConfig(**{"recipe": "iwslt14"})
    assert (iw.src_lang, iw.tgt_lang, iw.bpe_merges, iw.lowercase, iw.valid_every) == ("de", "en", 10000, True, 23)
    assert iw.test_sets == ["TED.dev2010", "TEDX.dev2012", "TED.tst2010", "TED.tst2011", "TED.tst2012"]
    sample = TranslationDataConfig(recipe="sample")
    assert sample.raw_dir == "data/sample/de-en" and sample.bpe_merges == 5000
    assert "TEDX.dev2012" not in (sample.test_sets or [])
    wmt = TranslationDataConfig(recipe="wmt18", bpe_merges=123)
    assert (wmt.src_lang, wmt.tgt_lang, wmt.bpe_merges, wmt.lowercase) == ("en", "ro", 123, False)
    assert TranslationDataConfig(recipe="iwslt14", src_lang="en", tgt_lang="de").src_lang == "en"


@pytest.mark.parametrize(
    ("kw", "msg"),
    [({"recipe": "wmt14"}, "recipe must be one of"), ({"bpe": "wordpiece"}, "bpe must be one of"),
     ({"bpe_merges": 0}, "bpe_merges must be >= 1"), ({"max_len": 0}, "max_len must be >= 1"),
     ({"min_len": 5, "max_len": 4}, "max_len"), ({"ratio": 0}, "ratio must be > 0"),
     ({"valid_every": 0}, "valid_every"), ({"max_train_pairs": 0}, "max_train_pairs"),
     ({"src_lang": "en", "tgt_lang": "en"}, "must differ"), ({"meta_rule": "loose"}, "meta_rule")],
)
def test_invalid_values_are_rejected(kw: dict, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        TranslationDataConfig(**kw)


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(TypeError, match="bpe_size"):
        TranslationDataConfig(**{"bpe_size": 3})
