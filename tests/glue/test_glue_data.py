"""Task registry, file readers, label conversion, local GLUE loading, tokenizers and batching."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # tests must never reach the network
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from shapeshifter.glue.data import (  # noqa: E402
    EpochShuffleSampler,
    GlueDataModule,
    collate_encoded,
    load_generic_splits,
    load_glue_splits,
    read_table,
)
from shapeshifter.glue.tasks import TaskSpec, generic_task, get_task  # noqa: E402
from shapeshifter.glue.tokenization import WordTokenizer, truncate_pair  # noqa: E402


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _jsonl(path: Path, rows: list[dict]) -> Path:
    return _write(path, "".join(json.dumps(r) + "\n" for r in rows))


# ------------------------------------------------------------------------------------------- tasks
def test_task_registry_fields() -> None:
    assert get_task("MRPC").text_fields == ("sentence1", "sentence2")
    assert get_task("qqp").text_fields == ("question1", "question2")
    assert get_task("mnli").text_fields == ("premise", "hypothesis")
    assert get_task("qnli").text_fields == ("question", "sentence")
    assert get_task("SST-2").text_fields == ("sentence",)
    assert get_task("cola").metrics == ("mcc",)
    stsb = get_task("sts-b")
    assert stsb.is_regression and stsb.num_labels == 1 and stsb.metrics == ("pearson", "spearman")
    mnli = get_task("mnli")
    assert mnli.num_labels == 3
    assert mnli.validation_splits == ("validation_matched", "validation_mismatched")


def test_bad_task_name_and_bad_spec() -> None:
    with pytest.raises(ValueError, match=r"unknown GLUE task 'colaa'.*'cola'"):
        get_task("colaa")
    with pytest.raises(ValueError, match="one or two text fields"):
        TaskSpec("x", ("a", "b", "c"))
    with pytest.raises(ValueError, match="unknown metric"):
        TaskSpec("x", ("a",), metrics=("bleu",))
    with pytest.raises(ValueError, match="also a text field"):
        generic_task(("label", "b"), "label")


# ---------------------------------------------------------------------------------- generic files
def test_generic_tsv_string_labels(tmp_path: Path) -> None:
    tr = _write(tmp_path / "tr.tsv", 'text\tlab\nI liked "it\tpos\nawful\tneg\nfine\tpos\n')
    va = _write(tmp_path / "va.tsv", "text\tlab\ngreat\tpos\nbad\tneg\n")
    spec, splits = load_generic_splits(generic_task("text", "lab"), tr, va)
    assert spec.label_names == ("neg", "pos") and spec.num_labels == 2
    assert splits["train"]["lab"] == [1, 0, 1]
    assert splits["train"]["text"][0] == 'I liked "it'  # TSV quoting disabled, as for GLUE files
    assert splits["validation"]["lab"] == [1, 0]


def test_generic_csv_int_labels_and_pairs(tmp_path: Path) -> None:
    tr = _write(tmp_path / "tr.csv", 'a,b,y\n"x, y",q,2\nz,w,0\nu,v,5\n')
    va = _write(tmp_path / "va.csv", "a,b,y\nk,l,5\n")
    spec, splits = load_generic_splits(generic_task(["a", "b"], "y"), tr, va)
    assert spec.label_names == ("0", "2", "5")  # numeric order, then mapped to 0..K-1
    assert splits["train"]["y"] == [1, 0, 2]
    assert splits["validation"]["y"] == [2]
    assert splits["train"]["a"][0] == "x, y"


def test_generic_jsonl_unknown_label_is_error(tmp_path: Path) -> None:
    tr = _jsonl(tmp_path / "tr.jsonl", [{"s": "a", "l": "yes"}, {"s": "b", "l": "no"}])
    va = _jsonl(tmp_path / "va.jsonl", [{"s": "c", "l": "maybe"}])
    with pytest.raises(ValueError, match=r"va\.jsonl:1 has unknown label 'maybe'"):
        load_generic_splits(generic_task("s", "l"), tr, va)


def test_generic_unlabeled_test_and_regression(tmp_path: Path) -> None:
    tr = _jsonl(tmp_path / "tr.jsonl", [{"s": "a", "score": 0.5}, {"s": "b", "score": "4.25"}])
    te = _jsonl(tmp_path / "te.jsonl", [{"s": "c"}, {"s": "d"}])
    spec, splits = load_generic_splits(generic_task("s", "score", regression=True), tr, test=te)
    assert splits["train"]["score"] == [0.5, 4.25]
    assert splits["test"]["score"] == [-1.0, -1.0]
    assert spec.validation_splits == ()
    bad = _jsonl(tmp_path / "bad.jsonl", [{"s": "a", "score": "high"}])
    with pytest.raises(ValueError, match="regression label must be a number, got 'high'"):
        load_generic_splits(generic_task("s", "score", regression=True), bad)


def test_generic_field_and_label_type_errors(tmp_path: Path) -> None:
    tr = _jsonl(tmp_path / "tr.jsonl", [{"s": "a", "l": 0}, {"s": "b", "l": 1}])
    with pytest.raises(ValueError, match=r"missing field\(s\) \['t'\]; available fields: \['l', 's'\]"):
        load_generic_splits(generic_task(["s", "t"], "l"), tr)
    with pytest.raises(ValueError, match=r"missing field\(s\) \['label'\]"):
        load_generic_splits(generic_task("s"), tr)
    floats = _jsonl(tmp_path / "f.jsonl", [{"s": "a", "l": 0.5}, {"s": "b", "l": 1.0}])
    with pytest.raises(ValueError, match="non-integer number; use regression=True"):
        load_generic_splits(generic_task("s", "l"), floats)
    nontext = _jsonl(tmp_path / "n.jsonl", [{"s": 3, "l": 0}, {"s": "b", "l": 1}])
    with pytest.raises(ValueError, match="field 's' must be text"):
        load_generic_splits(generic_task("s", "l"), nontext)
    one = _jsonl(tmp_path / "o.jsonl", [{"s": "a", "l": "x"}, {"s": "b", "l": "x"}])
    with pytest.raises(ValueError, match="1 distinct label"):
        load_generic_splits(generic_task("s", "l"), one)
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_table(tmp_path / "nope.jsonl")
    ragged = _write(tmp_path / "r.tsv", "s\tl\na\t0\nb\t1\textra\n")
    with pytest.raises(ValueError, match=r"r\.tsv:3: the row has more fields than the header \(3 > 2\)"):
        read_table(ragged)
    short = _write(tmp_path / "sh.tsv", "s\tt\tl\na\tb\t0\nc\n")
    with pytest.raises(ValueError, match=r"sh\.tsv:3: field .t. must be text, got NoneType None \(a row with fewer"):
        load_generic_splits(generic_task(["s", "t"], "l"), short)


# ------------------------------------------------------------------------------------ local GLUE
def test_local_glue_split_files_with_label_names(tmp_path: Path) -> None:
    d = tmp_path / "rte"
    d.mkdir()
    _write(d / "train.tsv", "sentence1\tsentence2\tlabel\nA\tB\tentailment\nC\tD\tnot_entailment\n")
    _write(d / "dev.tsv", "sentence1\tsentence2\tlabel\nE\tF\t1\n")
    _write(d / "test.tsv", "sentence1\tsentence2\nG\tH\n")
    spec, splits = load_glue_splits("rte", data_dir=tmp_path)
    assert spec.name == "rte"
    assert splits["train"]["label"] == [0, 1]
    assert splits["validation"]["label"] == [1]
    assert splits["test"]["label"] == [-1]


def test_local_glue_saved_datasetdict_mnli(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    def ds(n: int, offset: int) -> Dataset:
        return Dataset.from_dict({
            "premise": [f"p {i}" for i in range(n)],
            "hypothesis": [f"h {i}" for i in range(n)],
            "label": [(i + offset) % 3 for i in range(n)],
            "idx": list(range(n)),
        })

    DatasetDict({
        "train": ds(6, 0),
        "validation_matched": ds(3, 1),
        "validation_mismatched": ds(4, 2),
        "test_matched": Dataset.from_dict({"premise": ["x"], "hypothesis": ["y"], "label": [-1], "idx": [0]}),
    }).save_to_disk(str(tmp_path / "mnli"))
    spec, splits = load_glue_splits("mnli", data_dir=tmp_path, source="local")
    assert splits["validation_mismatched"]["label"] == [2, 0, 1, 2]
    assert splits["test_matched"]["label"] == [-1]
    dm = GlueDataModule(spec, splits, batch_size=2)
    dm.setup("fit")
    assert dm.validation_split_names == ["validation_matched", "validation_mismatched"]
    loaders = dm.val_dataloader()
    assert isinstance(loaders, list) and [len(dl.dataset) for dl in loaders] == [3, 4]


def test_local_glue_original_tsv_column_names(tmp_path: Path) -> None:
    head = "index\tpromptID\tpairID\tgenre\tsentence1\tsentence2\tgold_label\n"
    _write(tmp_path / "train.tsv", head + '0\t1\t1e\tgov\tHe said "hi\tHe spoke\tentailment\n'
           + "1\t2\t2c\tgov\tA\tB\tcontradiction\n")
    _write(tmp_path / "dev_matched.tsv", head + "0\t3\t3n\tfic\tC\tD\tneutral\n")
    _write(tmp_path / "dev_mismatched.tsv", head + "0\t4\t4n\tfic\tE\tF\tcontradiction\n")
    spec, splits = load_glue_splits("mnli", data_dir=tmp_path)
    assert splits["train"]["premise"] == ['He said "hi', "A"]
    assert splits["train"]["label"] == [0, 2]
    assert splits["validation_matched"]["label"] == [1]
    assert splits["validation_mismatched"]["hypothesis"] == ["F"]


def test_local_glue_missing_files_error_names_what_was_tried(tmp_path: Path) -> None:
    (tmp_path / "cola").mkdir()
    _write(tmp_path / "cola" / "train.tsv", "sentence\tlabel\nok\t1\n")
    with pytest.raises(FileNotFoundError, match=r"task 'cola'.*cola/\{validation\}.*missing"):
        load_glue_splits("cola", data_dir=tmp_path)
    with pytest.raises(ValueError, match="source='local' needs data_dir"):
        load_glue_splits("cola", source="local")


def test_local_glue_wrong_field_is_error(tmp_path: Path) -> None:
    _write(tmp_path / "train.tsv", "text\tlabel\nok\t1\n")
    _write(tmp_path / "validation.tsv", "text\tlabel\nok\t1\n")
    with pytest.raises(ValueError, match=r"split 'train'.*missing field\(s\) \['sentence'\]"):
        load_glue_splits("sst2", data_dir=tmp_path)


# ----------------------------------------------------------------------------- tokenizer / batches
def test_word_tokenizer_vocab_and_pair_encoding() -> None:
    tok = WordTokenizer.build(["The cat sat.", "the dog sat!", "rare"], min_count=2)
    assert tok.itos == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "sat", "the"]
    ids, types = tok.encode("The cat sat", "dog", max_length=16)
    assert ids == [2, 5, 1, 4, 3, 1, 3]
    assert types == [0, 0, 0, 0, 0, 1, 1]
    ids, types = tok.encode("a b c d e f", "g h", max_length=7)
    assert len(ids) == 7 and types.count(1) == 3  # longest-first truncation keeps both segments
    assert WordTokenizer.build(["a a b b c"], max_vocab=6).itos[4:] == ["a", "b"]
    assert truncate_pair([1, 2, 3], [4], 2) == ([1], [4])


def test_collate_pads_to_longest_in_batch() -> None:
    batch = collate_encoded([([2, 7, 3], [0, 0, 0], 1), ([2, 3], [0, 0], 0)], pad_id=0, regression=False)
    assert batch["input_ids"].tolist() == [[2, 7, 3], [2, 3, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].dtype == torch.long


def test_hf_bert_tokenizer_from_local_vocab(tmp_path: Path) -> None:
    from transformers import BertTokenizerFast

    words = ["a", "man", "is", "sleeping", "woman", "dog", "."]
    vocab = tmp_path / "vocab.txt"
    _write(vocab, "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tok = BertTokenizerFast.from_pretrained(str(tmp_path))  # local dir with vocab.txt: no hub, v4 and v5
    spec = generic_task(("s1", "s2"), "y")
    spec, splits = load_generic_splits(
        spec, _jsonl(tmp_path / "t.jsonl", [{"s1": "A man is sleeping.", "s2": "A dog", "y": "n"},
                                            {"s1": "A woman", "s2": "zebra", "y": "e"}])
    )
    dm = GlueDataModule(spec, splits, tokenizer=tok, max_length=32, batch_size=2)
    assert dm.vocab_size == 12 and dm.pad_id == 0
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    row = batch["input_ids"][batch["labels"].tolist().index(1)].tolist()  # label 'n' -> index 1
    assert row == [2, 5, 6, 7, 8, 11, 3, 5, 10, 3]  # [CLS] a man is sleeping . [SEP] a dog [SEP]
    types = batch["token_type_ids"][batch["labels"].tolist().index(1)].tolist()
    assert types == [0] * 7 + [1] * 3


def test_datamodule_max_length_and_majority(tmp_path: Path) -> None:
    rows = [{"a": "w " * 50, "b": "v " * 50, "y": "x"}] * 3 + [{"a": "q", "b": "r", "y": "z"}]
    dm = GlueDataModule.from_files(("a", "b"), _jsonl(tmp_path / "t.jsonl", rows), label_field="y",
                                   max_length=20)
    dm.setup()
    assert max(len(ids) for ids, _, _ in dm.datasets["train"]) == 20
    assert dm.majority_rate("train") == pytest.approx(0.75)


def test_training_order_is_drawn_from_seed_and_epoch_only(tmp_path: Path) -> None:
    """A fresh loader set to epoch 1 (a resumed run) yields what the original loader yields in epoch 1."""
    rows = [{"a": f"w{i}", "y": str(i % 2)} for i in range(40)]
    dm = GlueDataModule.from_files("a", _jsonl(tmp_path / "t.jsonl", rows), label_field="y", batch_size=8, seed=3)

    def epoch_order(loader, epoch: int) -> list[int]:
        loader.sampler.set_epoch(epoch)  # what Lightning does at the start of every epoch
        return list(loader.sampler)

    straight = dm.train_dataloader()
    orders = [epoch_order(straight, e) for e in range(3)]
    assert orders[0] != orders[1] != orders[2] and sorted(orders[1]) == list(range(40))
    assert epoch_order(dm.train_dataloader(), 1) == orders[1]
    assert list(EpochShuffleSampler(40, seed=4)) != orders[0]  # another seed, another order
