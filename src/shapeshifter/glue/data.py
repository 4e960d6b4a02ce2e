"""Loading GLUE / user files into column dicts, label conversion, and the Lightning data module.

Raw splits are kept as plain ``{column: list}`` dicts so that the generic-files path needs neither
``datasets`` nor a cache directory; ``datasets`` is imported only for the Hub and ``load_from_disk``.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from shapeshifter.distributed import eval_shard, rank_share, trainer_ranks
from shapeshifter.glue.tasks import TaskSpec, generic_task, get_task
from shapeshifter.glue.tokenization import Encoded, HFTokenizer, PairTokenizer, WordTokenizer

__all__ = [
    "EncodedDataset",
    "EpochShuffleSampler",
    "GlueDataModule",
    "RawSplit",
    "Table",
    "collate_encoded",
    "convert_labels",
    "load_generic_splits",
    "load_glue_splits",
    "read_table",
]

#: One split as ``{column name: values}``; all columns have the same length.
RawSplit = dict[str, list]

_FORMATS = {".tsv": "tsv", ".txt": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
#: Alternative file stems accepted for each HF split name in a local GLUE directory.
#: Column names of the original GLUE distribution (gluebenchmark.com TSVs) -> Hugging Face names; applied
#: only when the Hugging Face column is absent. CoLA's original TSVs have no header and are not covered.
ORIGINAL_GLUE_COLUMNS: dict[str, dict[str, str]] = {
    "mnli": {"sentence1": "premise", "sentence2": "hypothesis", "gold_label": "label"},
    "mrpc": {"#1 String": "sentence1", "#2 String": "sentence2", "Quality": "label"},
    "qqp": {"is_duplicate": "label"},
    "stsb": {"score": "label"},
}
_SPLIT_FILE_ALIASES = {
    "validation": ("validation", "dev", "valid"),
    "validation_matched": ("validation_matched", "dev_matched"),
    "validation_mismatched": ("validation_mismatched", "dev_mismatched"),
    "test": ("test",),
    "test_matched": ("test_matched",),
    "test_mismatched": ("test_mismatched",),
    "train": ("train",),
}
UNLABELED = -1
_EXTRA = "\x00extra"  # DictReader key for surplus fields in a row


# ----------------------------------------------------------------------------------------------- files
class Table(dict):
    """Columns read from a file that remember where each row came from (``path``, 1-based ``lines``), so that
    an error about a row names the file and line to fix."""

    def __init__(self, columns: Mapping[str, list], path: Path, lines: list[int]) -> None:
        super().__init__(columns)
        self.path, self.lines = path, lines


def row_location(split: Mapping[str, list], name: str, i: int) -> str:
    """Where row ``i`` of a split comes from: ``file:line`` when read from a file, else its 1-based row."""
    if isinstance(split, Table):
        return f"{split.path}:{split.lines[i]}"
    return f"split {name!r} row {i + 1}"


def _decode(path: Path) -> str:
    """The file as text (UTF-8, a byte order mark dropped; ``*.gz`` decompressed); an undecodable byte names
    the file and line."""
    data = path.read_bytes()
    if path.suffix.lower() == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path}: not a complete gzip file ({err}): rebuild or re-download it") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: byte 0x{data[err.start]:02x} is not UTF-8 (Latin-1 or another "
                         "encoding?): re-save the file as UTF-8") from None


def _read_jsonl(path: Path, text: str) -> tuple[list[dict[str, Any]], list[int]]:
    rows, lines = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: invalid JSON ({err.msg})") from err
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object per line")
            rows.append(obj)
            lines.append(lineno)
    return rows, lines


def _read_delimited(path: Path, text: str, fmt: str) -> tuple[list[dict[str, Any]], list[int]]:
    kwargs: dict[str, Any] = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if fmt == "tsv" else {}
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey=_EXTRA, **kwargs)
    rows, lines = [], []
    for r in reader:
        if _EXTRA in r:
            raise ValueError(f"{path}:{reader.line_num}: the row has more fields than the header "
                             f"({len(r) - 1 + len(r[_EXTRA])} > {len(r) - 1})")
        rows.append(r)
        lines.append(reader.line_num)
    if not rows:
        raise ValueError(f"{path} has a header row ({', '.join(reader.fieldnames or [])}) but no data rows")
    return rows, lines


def read_table(path: str | Path, fmt: str | None = None) -> Table:
    """Read a TSV / CSV (header row) or JSONL file (UTF-8, optionally gzip-compressed: ``*.jsonl.gz``) into
    columns.

    TSV is read with quoting disabled, as GLUE's own TSVs contain unbalanced quote characters. An empty file,
    a header without rows and a byte that is not UTF-8 are errors naming the file (and line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    fmt = fmt or _FORMATS.get((path.with_suffix("") if path.suffix.lower() == ".gz" else path).suffix.lower())
    if fmt not in ("tsv", "csv", "jsonl"):
        raise ValueError(f"cannot infer the format of {path}; pass fmt='tsv'|'csv'|'jsonl'")
    text = _decode(path)
    if not text.strip():
        raise ValueError(f"{path} is empty: expected " + ("one JSON object per line" if fmt == "jsonl" else
                                                           "a header row and data rows"))
    rows, lines = _read_jsonl(path, text) if fmt == "jsonl" else _read_delimited(path, text, fmt)
    columns: list[str] = []
    for r in rows:  # union of keys in first-seen order; JSONL rows may differ
        columns.extend(k for k in r if k not in columns)
    return Table({c: [r.get(c) for r in rows] for c in columns}, path, lines)


def _n_rows(split: RawSplit) -> int:
    return len(next(iter(split.values()))) if split else 0


def _check_fields(spec: TaskSpec, split_name: str, split: RawSplit, where: str, need_label: bool) -> None:
    needed = list(spec.text_fields) + ([spec.label_field] if need_label else [])
    missing = [f for f in needed if f not in split]
    if missing:
        source = split.path if isinstance(split, Table) else where
        raise ValueError(
            f"task {spec.name!r}: split {split_name!r} from {source} is missing field(s) {missing}; "
            f"available fields: {sorted(split)}"
        )
    for f in spec.text_fields:
        bad = [i for i, v in enumerate(split[f]) if not isinstance(v, str)]
        if bad:
            value = split[f][bad[0]]
            raise ValueError(
                f"task {spec.name!r}: {row_location(split, split_name, bad[0])}: field {f!r} must be text, got "
                f"{type(value).__name__} {value!r}" + (" (a row with fewer fields than the header?)"
                                                        if value is None else "")
            )


# --------------------------------------------------------------------------------------------- labels
def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, float) and math.isnan(v))


def _canonical(v: Any, spec: TaskSpec, where: str) -> str:
    """Class label as a string key: ints and integral floats become ``"3"``; strings are stripped."""
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not v.is_integer():
            raise ValueError(
                f"task {spec.name!r}: {where}: label {v!r} is a non-integer number; "
                "use regression=True for real-valued targets"
            )
        return str(int(v))
    if isinstance(v, str):
        return v.strip()
    raise ValueError(f"task {spec.name!r}: {where}: label of unsupported type {type(v).__name__}")


def _numeric_key(s: str) -> tuple[int, float | str]:
    try:
        return (0, float(s))
    except ValueError:
        return (1, s)


def convert_labels(spec: TaskSpec, values: Sequence[Any], split: str,
                   where: Callable[[int], str] | None = None) -> list[float] | list[int]:
    """Map raw label values to class indices (or floats for regression).

    GLUE labels may be indices or the task's label names (e.g. ``"entailment"``); generic tasks map
    through ``spec.label_names``. An all-missing column (or all ``-1``, GLUE's hidden test labels) gives
    ``-1`` everywhere, meaning "unlabeled"; any other missing or unknown label is an error naming the row
    (``where(i)``: its file and line, default its 1-based row in ``split``).
    """
    where = where or (lambda i: f"split {split!r} row {i + 1}")
    if all(_is_missing(v) for v in values) or all(_is_hidden(v) for v in values):
        return [float(UNLABELED) if spec.is_regression else UNLABELED for _ in values]
    if spec.is_regression:
        out_f: list[float] = []
        for i, v in enumerate(values):
            try:
                if isinstance(v, bool) or _is_missing(v):
                    raise TypeError
                out_f.append(float(v))
            except (TypeError, ValueError):
                raise ValueError(
                    f"task {spec.name!r}: {where(i)}: regression label must be a number, got {v!r}"
                ) from None
        return out_f
    assert spec.label_names is not None, "classification spec without label names"
    index = {name: i for i, name in enumerate(spec.label_names)}
    n = spec.num_labels
    out: list[int] = []
    for i, v in enumerate(values):
        if _is_missing(v):
            raise ValueError(f"task {spec.name!r}: {where(i)} has no label")
        key = _canonical(v, spec, where(i))
        if key in index:
            out.append(index[key])
        elif key.lstrip("-").isdigit() and 0 <= int(key) < n and not spec.extra.get("labels_from_train"):
            out.append(int(key))  # GLUE files store indices
        else:
            raise ValueError(
                f"task {spec.name!r}: {where(i)} has unknown label {v!r}; known labels: {list(spec.label_names)}"
            )
    return out


def _is_hidden(v: Any) -> bool:
    """GLUE marks hidden test labels as ``-1`` (int, float or string)."""
    if isinstance(v, bool) or _is_missing(v):
        return False
    try:
        return float(v) == UNLABELED
    except (TypeError, ValueError):
        return False


def _with_train_label_vocab(spec: TaskSpec, train: RawSplit) -> TaskSpec:
    """Fill ``label_names`` / ``num_labels`` of a generic classification spec from the training labels."""
    if spec.is_regression or not spec.extra.get("labels_from_train"):
        return spec
    train_labels = train[spec.label_field]
    missing = [i for i, v in enumerate(train_labels) if _is_missing(v)]
    if missing:
        raise ValueError(f"task {spec.name!r}: {row_location(train, 'train', missing[0])} has no label")
    keys = sorted({_canonical(v, spec, row_location(train, "train", i)) for i, v in enumerate(train_labels)},
                  key=_numeric_key)
    if len(keys) < 2:
        raise ValueError(f"task {spec.name!r}: training split has {len(keys)} distinct label(s); need >= 2")
    return dataclasses.replace(spec, label_names=tuple(keys), num_labels=len(keys))


# -------------------------------------------------------------------------------------------- loaders
def _find_split_file(directory: Path, split: str) -> Path | None:
    for stem in _SPLIT_FILE_ALIASES.get(split, (split,)):
        for ext in _FORMATS:
            p = directory / f"{stem}{ext}"
            if p.is_file():
                return p
    return None


def _rename_original(spec: TaskSpec, split: RawSplit) -> RawSplit:
    """Accept the original GLUE TSV column names by renaming them to the Hugging Face ones."""
    mapping = ORIGINAL_GLUE_COLUMNS.get(spec.name, {})
    renames = {old: new for old, new in mapping.items() if old in split and new not in split}
    renamed = {renames.get(k, k): v for k, v in split.items()}
    return Table(renamed, split.path, split.lines) if isinstance(split, Table) else renamed


def _from_dataset_dict(dd: Any, spec: TaskSpec) -> dict[str, RawSplit]:
    return {name: dd[name].to_dict() for name in dd if name in _wanted_splits(spec)}


def _wanted_splits(spec: TaskSpec) -> tuple[str, ...]:
    return (spec.train_split, *spec.validation_splits, *spec.test_splits)


def _load_local(spec: TaskSpec, data_dir: Path) -> tuple[dict[str, RawSplit], str]:
    """A saved ``DatasetDict`` or per-split files in ``data_dir`` or ``data_dir/<task>``."""
    tried: list[str] = []
    for d in (data_dir / spec.name, data_dir):
        if (d / "dataset_dict.json").is_file():
            from datasets import load_from_disk

            return _from_dataset_dict(load_from_disk(str(d)), spec), f"saved DatasetDict at {d}"
        tried.append(f"{d}/dataset_dict.json")
        found = {s: _find_split_file(d, s) for s in _wanted_splits(spec)}
        if all(found[s] is not None for s in (spec.train_split, *spec.validation_splits)):
            raw = {s: _rename_original(spec, read_table(p)) for s, p in found.items() if p is not None}
            return raw, f"split files in {d}"
        missing = [s for s in (spec.train_split, *spec.validation_splits) if found[s] is None]
        exts = "/".join(e.lstrip(".") for e in _FORMATS)
        tried.append(f"{d}/{{{','.join(missing)}}}.{{{exts}}} (missing)")
    raise FileNotFoundError(
        f"GLUE task {spec.name!r}: no local data found under {data_dir}; tried: " + "; ".join(tried)
    )


def _hub_offline() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes") for k in
               ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"))


def _load_hub(spec: TaskSpec, cache_dir: str | None) -> tuple[dict[str, RawSplit], str]:
    from datasets import load_dataset

    errors: list[str] = []
    for repo in ("nyu-mll/glue", "glue"):
        try:
            dd = load_dataset(repo, spec.hf_config or spec.name, cache_dir=cache_dir)
        except Exception as err:  # noqa: BLE001 - report every source we tried
            errors.append(f"load_dataset({repo!r}, {spec.name!r}): {type(err).__name__}: {err}"[:300])
            continue
        mode = "offline cache" if _hub_offline() else "Hugging Face Hub"
        return _from_dataset_dict(dd, spec), f"{mode} ({repo})"
    raise FileNotFoundError(
        f"GLUE task {spec.name!r}: could not load from the Hub/cache: " + " | ".join(errors)
        + "; offline, pass data_dir= a save_to_disk DatasetDict or train/validation TSV/CSV/JSONL files"
    )


def load_glue_splits(
    task: str | TaskSpec,
    data_dir: str | Path | None = None,
    source: str = "auto",
    cache_dir: str | None = None,
) -> tuple[TaskSpec, dict[str, RawSplit]]:
    """Raw splits of a GLUE task with labels converted to indices (floats for STS-B).

    ``source="local"`` (or ``"auto"`` with ``data_dir``) reads only ``data_dir`` — a ``save_to_disk``
    DatasetDict or ``train``/``validation`` (``dev``)/``test`` TSV/CSV/JSONL files with the Hugging Face
    GLUE column names (or the original GLUE TSV names for MNLI/MRPC/QQP/STS-B, see
    ``ORIGINAL_GLUE_COLUMNS``) — and never touches the network. ``source="hub"`` (or ``"auto"`` without
    ``data_dir``) calls ``datasets.load_dataset``; with ``HF_DATASETS_OFFLINE=1`` that reads the cache only.
    """
    spec = get_task(task) if isinstance(task, str) else task
    if source not in ("auto", "local", "hub"):
        raise ValueError(f"source must be 'auto', 'local' or 'hub', got {source!r}")
    if source == "local" and data_dir is None:
        raise ValueError("source='local' needs data_dir")
    if source == "local" or (source == "auto" and data_dir is not None):
        raw, where = _load_local(spec, Path(data_dir))  # type: ignore[arg-type]
    else:
        raw, where = _load_hub(spec, cache_dir)
    return spec, _finalise(spec, raw, where)


def _finalise(spec: TaskSpec, raw: dict[str, RawSplit], where: str) -> dict[str, RawSplit]:
    """Check fields and convert labels in place; test splits may lack labels."""
    for required in (spec.train_split, *spec.validation_splits):
        if required not in raw:
            raise ValueError(f"task {spec.name!r}: {where} has no {required!r} split; found {sorted(raw)}")
    out: dict[str, RawSplit] = {}
    for name, split in raw.items():
        is_test = name in spec.test_splits
        _check_fields(spec, name, split, where, need_label=not is_test)
        labels = split.get(spec.label_field, [None] * _n_rows(split))
        rows = partial(row_location, split, name)
        source = split.path if isinstance(split, Table) else where
        split = dict(split)
        split[spec.label_field] = convert_labels(spec, labels, name, rows)
        if not is_test and any(x == UNLABELED for x in split[spec.label_field]) and not spec.is_regression:
            raise ValueError(f"task {spec.name!r}: split {name!r} from {source} has unlabeled rows (-1 labels)")
        out[name] = split
    return out


def load_generic_splits(
    spec: TaskSpec,
    train: str | Path,
    validation: str | Path | None = None,
    test: str | Path | None = None,
    fmt: str | None = None,
) -> tuple[TaskSpec, dict[str, RawSplit]]:
    """Read the user's own train/validation/test files for a :func:`generic_task` spec.

    For classification with no fixed ``label_names`` the label vocabulary is built from the training
    split (numeric labels in numeric order, strings alphabetically); a validation/test label outside it
    raises ``ValueError``. Returns the completed spec together with the converted splits.
    """
    raw: dict[str, RawSplit] = {"train": read_table(train, fmt)}
    _check_fields(spec, "train", raw["train"], str(train), need_label=True)
    spec = _with_train_label_vocab(spec, raw["train"])
    if validation is not None:
        raw["validation"] = read_table(validation, fmt)
    if test is not None:
        raw["test"] = read_table(test, fmt)
    spec = dataclasses.replace(
        spec, validation_splits=("validation",) if validation is not None else (), test_splits=("test",)
    )
    return spec, _finalise(spec, raw, "user files")


# ------------------------------------------------------------------------------------- torch dataset
class EncodedDataset(Dataset):
    """Pre-tokenised examples: ``(input_ids, token_type_ids, label)``."""

    def __init__(self, encoded: Sequence[Encoded], labels: Sequence[float] | Sequence[int]) -> None:
        if len(encoded) != len(labels):
            raise ValueError(f"{len(encoded)} encoded examples but {len(labels)} labels")
        self.encoded = list(encoded)
        self.labels = list(labels)

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, i: int) -> tuple[list[int], list[int], float | int]:
        ids, types = self.encoded[i]
        return ids, types, self.labels[i]


def collate_encoded(
    batch: Sequence[tuple[list[int], list[int], float | int]], pad_id: int, regression: bool
) -> dict[str, torch.Tensor]:
    """Pad to the longest sequence in the batch (not to ``max_length``) to save compute."""
    width = max(len(ids) for ids, _, _ in batch)
    n = len(batch)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    token_type_ids = torch.zeros((n, width), dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    for i, (ids, types, _) in enumerate(batch):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        token_type_ids[i, : len(types)] = torch.tensor(types)
        attention_mask[i, : len(ids)] = 1
    labels = torch.tensor([b[2] for b in batch], dtype=torch.float if regression else torch.long)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": token_type_ids,
        "labels": labels,
    }


class _Collator:
    """Picklable collate function (DataLoader workers need one)."""

    def __init__(self, pad_id: int, regression: bool) -> None:
        self.pad_id, self.regression = pad_id, regression

    def __call__(self, batch: Sequence[tuple[list[int], list[int], float | int]]) -> dict[str, torch.Tensor]:
        return collate_encoded(batch, self.pad_id, self.regression)


# ------------------------------------------------------------------------------------ data module
class EpochShuffleSampler(Sampler[int]):
    """A permutation of ``range(n)`` drawn from ``(seed, epoch)`` (as the translation batches): the order of an
    epoch does not depend on the epochs before it, so a run resumed from ``last.ckpt`` sees the batches an
    uninterrupted one would.

    Lightning calls `set_epoch` at the start of every epoch, also after a resume (a generator seeded once per
    dataloader would restart at epoch 0's order instead). With ``world > 1`` it serves rank ``rank``'s share of
    the permutation, padded so that every rank takes the same number of steps (`shapeshifter.distributed`).
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.n, self.seed, self.epoch = n, seed, 0
        self.rank, self.world = rank, world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        order = np.random.default_rng((self.seed, self.epoch)).permutation(self.n)
        return iter(rank_share(order, self.rank, self.world).tolist())

    def __len__(self) -> int:
        return -(-self.n // self.world)


class GlueDataModule(L.LightningDataModule):
    """Tokenises raw splits once and serves padded batches.

    ``tokenizer=None`` builds a :class:`WordTokenizer` from the training texts (from-scratch models);
    otherwise pass a Hugging Face tokenizer (wrapped in :class:`HFTokenizer`) or any object with
    ``encode_batch``/``pad_id``/``vocab_size``. The tokenizer exists right after construction so that
    ``vocab_size`` can size the model before ``setup``. Several validation splits (MNLI) become several
    validation dataloaders, in ``spec.validation_splits`` order.
    """

    def __init__(
        self,
        spec: TaskSpec,
        splits: Mapping[str, RawSplit],
        tokenizer: Any = None,
        max_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        min_count: int = 1,
        max_vocab: int | None = 30000,
        max_examples: int | Mapping[str, int] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if spec.train_split not in splits:
            raise ValueError(f"task {spec.name!r}: no {spec.train_split!r} split among {sorted(splits)}")
        if max_length < 4:
            raise ValueError(f"max_length must be >= 4, got {max_length}")
        self.spec = spec
        self.raw = {k: _head(v, max_examples, k) for k, v in splits.items()}
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        if tokenizer is None:
            train = self.raw[spec.train_split]
            texts = [t for f in spec.text_fields for t in train[f]]
            tokenizer = WordTokenizer.build(texts, min_count=min_count, max_vocab=max_vocab)
        elif not (hasattr(tokenizer, "encode_batch") and hasattr(tokenizer, "pad_id")):
            tokenizer = HFTokenizer(tokenizer)
        self.tokenizer: PairTokenizer = tokenizer
        self.datasets: dict[str, EncodedDataset] = {}

    # -- constructors
    @classmethod
    def from_glue(
        cls,
        task: str,
        data_dir: str | Path | None = None,
        source: str = "auto",
        cache_dir: str | None = None,
        **kwargs: Any,
    ) -> GlueDataModule:
        """Data module for a GLUE task (see :func:`load_glue_splits` for sources)."""
        spec, splits = load_glue_splits(task, data_dir=data_dir, source=source, cache_dir=cache_dir)
        return cls(spec, splits, **kwargs)

    @classmethod
    def from_files(
        cls,
        text_fields: str | Sequence[str],
        train: str | Path,
        validation: str | Path | None = None,
        test: str | Path | None = None,
        label_field: str = "label",
        regression: bool = False,
        label_names: Sequence[str] | None = None,
        fmt: str | None = None,
        name: str = "custom",
        **kwargs: Any,
    ) -> GlueDataModule:
        """Data module for the user's own TSV/CSV/JSONL files."""
        spec = generic_task(
            tuple(text_fields) if not isinstance(text_fields, str) else text_fields,
            label_field,
            name=name,
            regression=regression,
            label_names=label_names,
        )
        spec, splits = load_generic_splits(spec, train, validation, test, fmt=fmt)
        return cls(spec, splits, **kwargs)

    # -- properties
    @property
    def vocab_size(self) -> int:
        """Size of the tokenizer vocabulary (for sizing embeddings)."""
        return self.tokenizer.vocab_size

    @property
    def pad_id(self) -> int:
        """Padding id used by the collator."""
        return self.tokenizer.pad_id

    @property
    def validation_split_names(self) -> list[str]:
        """Validation splits served, in dataloader-index order."""
        return [s for s in self.spec.validation_splits if s in self.raw]

    @property
    def test_split_names(self) -> list[str]:
        """Test splits served, in dataloader-index order."""
        return [s for s in self.spec.test_splits if s in self.raw]

    def majority_rate(self, split: str) -> float:
        """Share of the most frequent label in ``split`` (the trivial baseline for accuracy)."""
        labels = [x for x in self.raw[split][self.spec.label_field] if x != UNLABELED]
        if not labels:
            return float("nan")
        return max(labels.count(c) for c in set(labels)) / len(labels)

    # -- lightning hooks
    def setup(self, stage: str | None = None) -> None:
        """Tokenise every split once (idempotent)."""
        for name, split in self.raw.items():
            if name in self.datasets:
                continue
            a = split[self.spec.text_fields[0]]
            b = split[self.spec.text_fields[1]] if self.spec.is_pair else None
            encoded = self.tokenizer.encode_batch(a, b, self.max_length)
            self.datasets[name] = EncodedDataset(encoded, split[self.spec.label_field])

    def _loader(self, split: str, train: bool) -> DataLoader:
        """Under DDP a training rank takes its padded share of each epoch's permutation and an evaluation rank a
        contiguous block of the split (the module gathers the blocks back in order)."""
        if split not in self.datasets:
            self.setup()
        dataset = self.datasets[split]
        rank, world = trainer_ranks(self.trainer)
        if train:
            sampler = EpochShuffleSampler(len(dataset), self.seed, rank, world)
        else:
            sampler = eval_shard(len(dataset), rank, world, f"{split} examples").tolist() if world > 1 else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=_Collator(self.pad_id, self.spec.is_regression),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.spec.train_split, train=True)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        loaders = [self._loader(s, train=False) for s in self.validation_split_names]
        return loaders[0] if len(loaders) == 1 else loaders

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        loaders = [self._loader(s, train=False) for s in self.test_split_names]
        if not loaders:
            raise ValueError(f"task {self.spec.name!r}: no test split loaded")
        return loaders[0] if len(loaders) == 1 else loaders


def _head(split: RawSplit, max_examples: int | Mapping[str, int] | None, name: str) -> RawSplit:
    n = max_examples.get(name) if isinstance(max_examples, Mapping) else max_examples
    return split if n is None else {k: v[:n] for k, v in split.items()}
