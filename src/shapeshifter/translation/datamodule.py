"""Lightning datamodule over a fairseq `data-bin` directory (the output of fairseq-preprocess).

Batching follows fairseq: sentences are sorted by length, packed into token buckets of at most
`max_tokens` (source or target, padding included), and the *batches* are shuffled once per epoch by an
RNG seeded with (seed, epoch) so that a resumed run sees exactly the batches an uninterrupted one would.

Under DDP (several ranks) the batches themselves are shared out, never re-formed (`shapeshifter.distributed`):
a training rank takes every world-th batch of the epoch's order (padded so that all ranks take the same number
of steps); a validation rank takes every world-th batch of the length-sorted list, so each validation batch is
the one a single process evaluates. The test loader is never sharded: the test set is translated by one process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Sampler

from shapeshifter.distributed import rank_share, trainer_ranks


class TokenBatchSampler(Sampler[list[int]]):
    """Fixed token-bucket batches; the batch order is a permutation drawn from (seed, epoch) when shuffling.

    The epoch comes from `epoch_fn` when given (the datamodule passes the trainer's current epoch, which
    is correct after a resume too), else from `set_epoch`. With ``world > 1`` this rank's share of the batches
    is served: of the shuffled order padded to equal shares when shuffling (training), of the fixed order
    otherwise (evaluation, every batch once).
    """

    def __init__(
        self,
        batches: list[np.ndarray],
        seed: int,
        shuffle: bool,
        epoch_fn: Callable[[], int] | None = None,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.batches = [np.asarray(b, dtype=np.int64) for b in batches]
        self.seed = seed
        self.shuffle = shuffle
        self.epoch_fn = epoch_fn
        self.epoch = 0
        self.rank, self.world = rank, world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def current_epoch(self) -> int:
        return self.epoch_fn() if self.epoch_fn is not None else self.epoch

    def order(self) -> np.ndarray:
        """Indices of this rank's batches, in the order served."""
        n = len(self.batches)
        if not self.shuffle:
            return np.arange(self.rank, n, self.world)
        return rank_share(np.random.default_rng((self.seed, self.current_epoch())).permutation(n), self.rank,
                          self.world)

    def __iter__(self) -> Iterator[list[int]]:
        for i in self.order():
            yield self.batches[i].tolist()

    def __len__(self) -> int:
        n = len(self.batches)
        return -(-n // self.world) if self.shuffle else len(range(self.rank, n, self.world))


def split_for_ranks(batches: list[np.ndarray], world: int, name: str) -> list[np.ndarray]:
    """``batches`` with the largest ones halved until every one of ``world`` ranks gets at least one (a rank
    without a validation batch would skip the hooks where the others wait for its sums); unchanged when there
    are enough already, which is the rule beyond tiny evaluation sets."""
    batches = list(batches)
    while len(batches) < world:
        i = max(range(len(batches)), key=lambda j: len(batches[j])) if batches else None
        if i is None or len(batches[i]) < 2:
            raise ValueError(f"the {name} split has {sum(map(len, batches))} sentence(s), fewer than the {world} "
                             "ranks (each needs at least one): evaluate on fewer devices or more data")
        half = len(batches[i]) // 2
        batches[i:i + 1] = [batches[i][:half], batches[i][half:]]
    return batches


class TranslationDataModule(L.LightningDataModule):
    """Train/valid/test splits of a fairseq data-bin as token-bucketed `LanguagePairDataset` batches.

    Expected files (as written by fairseq-preprocess): `dict.{src}.txt`, `dict.{tgt}.txt` and, per split,
    `{split}.{src}-{tgt}.{lang}.bin/.idx` for both languages (the `{tgt}-{src}` spelling is accepted too).
    The dictionaries are available before `setup()` via `load_dictionaries()` so the model can be built
    first.
    """

    def __init__(
        self,
        data_bin: str,
        src_lang: str,
        tgt_lang: str,
        max_tokens: int = 4096,
        max_source_positions: int = 1024,
        max_target_positions: int = 1024,
        seed: int = 1,
        num_workers: int = 0,
        max_sentences: int | None = None,
        train_split: str = "train",
        valid_split: str = "valid",
        test_split: str = "test",
        left_pad_source: bool = True,
        left_pad_target: bool = False,
    ) -> None:
        super().__init__()
        self.data_bin = Path(data_bin)
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        self.max_tokens = max_tokens
        self.max_positions = (max_source_positions, max_target_positions)
        self.seed = seed
        self.num_workers = num_workers
        self.max_sentences = max_sentences
        self.splits = {"train": train_split, "valid": valid_split, "test": test_split}
        self.left_pad_source, self.left_pad_target = left_pad_source, left_pad_target
        self.src_dict: Any = None
        self.tgt_dict: Any = None
        self.datasets: dict[str, Any] = {}

    # -- files -----------------------------------------------------------------------------------------
    def dict_path(self, lang: str) -> Path:
        return self.data_bin / f"dict.{lang}.txt"

    def split_prefix(self, split: str, lang: str) -> Path:
        """Path prefix (without .bin/.idx) of one side of a split; prefers `{src}-{tgt}` like fairseq."""
        for pair in (f"{self.src_lang}-{self.tgt_lang}", f"{self.tgt_lang}-{self.src_lang}"):
            prefix = self.data_bin / f"{split}.{pair}.{lang}"
            if Path(f"{prefix}.bin").exists() and Path(f"{prefix}.idx").exists():
                return prefix
        prefix = self.data_bin / f"{split}.{self.src_lang}-{self.tgt_lang}.{lang}"
        missing = [p for p in (Path(f"{prefix}.bin"), Path(f"{prefix}.idx")) if not p.exists()]
        names = ", ".join(map(str, missing))
        raise FileNotFoundError(f"missing data-bin file(s) for split {split!r}: {names}")

    def load_dictionaries(self) -> tuple[Any, Any]:
        """Load (src_dict, tgt_dict) with fairseq's `Dictionary`; cached after the first call."""
        from fairseq.data import Dictionary

        if self.src_dict is None:
            for lang in (self.src_lang, self.tgt_lang):
                if not self.dict_path(lang).exists():
                    raise FileNotFoundError(f"missing dictionary file: {self.dict_path(lang)}")
            self.src_dict = Dictionary.load(str(self.dict_path(self.src_lang)))
            self.tgt_dict = Dictionary.load(str(self.dict_path(self.tgt_lang)))
        return self.src_dict, self.tgt_dict

    def load_split(self, name: str) -> Any:
        """`LanguagePairDataset` for split `name` ("train", "valid" or "test"); cached."""
        from fairseq.data import LanguagePairDataset, data_utils

        if name in self.datasets:
            return self.datasets[name]
        src_dict, tgt_dict = self.load_dictionaries()
        split = self.splits[name]
        sides = []
        for lang, dictionary in ((self.src_lang, src_dict), (self.tgt_lang, tgt_dict)):
            prefix = self.split_prefix(split, lang)
            data = data_utils.load_indexed_dataset(str(prefix), dictionary)
            if data is None:
                raise FileNotFoundError(f"could not read indexed dataset {prefix}.bin/.idx")
            sides.append(data)
        src, tgt = sides
        if len(src) != len(tgt):
            raise ValueError(f"split {split!r}: {len(src)} source vs {len(tgt)} target sentences")
        dataset = LanguagePairDataset(
            src, src.sizes, src_dict, tgt, tgt.sizes, tgt_dict,
            left_pad_source=self.left_pad_source, left_pad_target=self.left_pad_target,
            shuffle=(name == "train"),
        )  # fmt: skip
        self.datasets[name] = dataset
        return dataset

    # -- Lightning hooks -------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Load the splits a stage needs, so missing files fail here rather than mid-training."""
        needed = {"fit": ["train", "valid"], "validate": ["valid"], "test": ["test"], "predict": ["test"]}
        for name in needed.get(stage or "fit", ["train", "valid"]):
            self.load_split(name)

    def batches(self, name: str) -> list[np.ndarray]:
        """Token-bucket batches of dataset indices, sorted by length (fairseq's `batch_by_size`)."""
        from fairseq.data import data_utils

        dataset = self.load_split(name)
        # LanguagePairDataset breaks length ties randomly for train; fix that randomness with the seed.
        with data_utils.numpy_seed(self.seed):
            indices = dataset.ordered_indices()
        indices, ignored = dataset.filter_indices_by_size(indices, self.max_positions)
        if name != "train" and len(ignored) > 0:
            raise ValueError(
                f"{len(ignored)} {name} sentence(s) exceed max positions {self.max_positions}, e.g. id "
                f"{ignored[0]}; raise max_source_positions/max_target_positions"
            )
        self._check_longest(name, dataset, indices)
        return dataset.batch_by_size(indices, max_tokens=self.max_tokens, max_sentences=self.max_sentences)

    def check_max_tokens(self, splits: tuple[str, ...] = ("train", "valid", "test")) -> None:
        """Raise ValueError when a sentence of ``splits`` is longer than ``max_tokens``: called right after the
        data is prepared, so that the run fails before training instead of in fairseq's batching assertion."""
        for name in splits:
            dataset = self.load_split(name)
            indices = np.arange(len(dataset), dtype=np.int64)
            if name == "train":  # sentences over the max positions are dropped from train, not batched
                indices, _ = dataset.filter_indices_by_size(indices, self.max_positions)
            self._check_longest(name, dataset, indices)

    def _check_longest(self, name: str, dataset: Any, indices: np.ndarray) -> None:
        if self.max_tokens is None or len(indices) == 0:
            return
        tokens = np.asarray(dataset.num_tokens_vec(indices))  # per sentence: max(source, target) tokens
        longest = int(tokens.max())
        if longest > self.max_tokens:
            where = int(indices[int(tokens.argmax())])
            raise ValueError(
                f"batching.max_tokens={self.max_tokens} is below the longest {name} sentence ({longest} tokens after "
                f"BPE, sentence id {where} of {self.data_bin}): raise batching.max_tokens (pipelines/evaluate.py: "
                f"--max-tokens) to at least {longest}")

    def _epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def _loader(self, name: str, shuffle: bool, shard: bool = True) -> DataLoader:
        dataset = self.load_split(name)
        rank, world = trainer_ranks(self.trainer) if shard else (0, 1)
        batches = self.batches(name)
        if world > 1 and not shuffle:
            batches = split_for_ranks(batches, world, name)
        sampler = TokenBatchSampler(batches, self.seed, shuffle, self._epoch if shuffle else None, rank, world)
        return DataLoader(
            dataset, batch_sampler=sampler, collate_fn=dataset.collater, num_workers=self.num_workers
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """The whole test split on every rank: it is translated by one process (`translation.task`)."""
        return self._loader("test", shuffle=False, shard=False)
