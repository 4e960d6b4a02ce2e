"""Token-bucket batching, (seed, epoch) shuffling and clear errors for a broken data-bin."""

from __future__ import annotations

import shutil

import pytest

from shapeshifter.translation.datamodule import TokenBatchSampler, TranslationDataModule


def test_batches_respect_max_tokens_and_cover_split(data_bin):
    dm = TranslationDataModule(str(data_bin), "de", "en", max_tokens=40)
    dm.setup("fit")
    dataset = dm.load_split("train")
    batches = dm.batches("train")
    assert len(batches) > 1
    seen = sorted(int(i) for b in batches for i in b)
    assert seen == list(range(len(dataset)))
    for batch in batches:
        longest = max(max(dataset.src_sizes[i], dataset.tgt_sizes[i]) for i in batch)
        assert longest * len(batch) <= 40  # padded tokens per side never exceed max_tokens
    for sample in dm.train_dataloader():
        assert sample["net_input"]["src_tokens"].numel() <= 40 and sample["target"].numel() <= 40


def test_shuffle_is_a_function_of_seed_and_epoch(data_bin):
    batches = TranslationDataModule(str(data_bin), "de", "en", max_tokens=40).batches("train")

    def order(seed: int, epoch: int) -> list[list[int]]:
        sampler = TokenBatchSampler(batches, seed=seed, shuffle=True)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1)
    assert order(1, 0) != order(2, 0)
    assert sorted(map(tuple, order(1, 3))) == sorted(tuple(b.tolist()) for b in batches)
    assert list(TokenBatchSampler(batches, seed=1, shuffle=False)) == [b.tolist() for b in batches]


def test_missing_split_file_is_named(data_bin, tmp_path):
    broken = tmp_path / "data-bin"
    shutil.copytree(data_bin, broken)
    (broken / "valid.de-en.en.idx").unlink()
    dm = TranslationDataModule(str(broken), "de", "en")
    with pytest.raises(FileNotFoundError, match="valid.de-en.en.idx"):
        dm.setup("fit")


def test_missing_dictionary_is_named(data_bin, tmp_path):
    broken = tmp_path / "data-bin"
    shutil.copytree(data_bin, broken)
    (broken / "dict.en.txt").unlink()
    with pytest.raises(FileNotFoundError, match="dict.en.txt"):
        TranslationDataModule(str(broken), "de", "en").setup("fit")


def test_reverse_direction_prefix_is_accepted(data_bin):
    dm = TranslationDataModule(str(data_bin), "en", "de", max_tokens=100)
    dm.setup("validate")
    assert len(dm.load_split("valid")) == 12
