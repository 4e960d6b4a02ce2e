"""data=snli_full: the committed full SNLI subset (counts, labels, the held-out rule) and the code that builds it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapeshifter.glue.data import load_generic_splits, read_table
from shapeshifter.glue.snli import LABELS, is_validation_premise, labelled_pairs, split_by_premise, write_jsonl
from shapeshifter.glue.tasks import generic_task

ROOT = Path(__file__).resolve().parents[2]
FULL = ROOT / "data" / "snli_full"
COUNTS = {"train": 94_670, "validation": 5_220, "test": 9_824}  # data/snli_full/README.md


@pytest.fixture(scope="module")
def committed() -> dict[str, list[dict]]:
    out = {}
    for split in COUNTS:
        with gzip.open(FULL / f"{split}.jsonl.gz", "rt", encoding="utf-8") as fh:
            out[split] = [json.loads(line) for line in fh]
    return out


def test_committed_counts_labels_and_size(committed: dict[str, list[dict]]) -> None:
    assert {s: len(rows) for s, rows in committed.items()} == COUNTS
    # the 100k training subset less its 110 unlabelled pairs; the official test set less its 176
    assert COUNTS["train"] + COUNTS["validation"] == 99_890
    for rows in committed.values():
        assert {r["gold_label"] for r in rows} == set(LABELS)  # '-' dropped, nothing else
        assert all(set(r) == {"sentence1", "sentence2", "gold_label"} for r in rows)
    assert sum((FULL / f"{s}.jsonl.gz").stat().st_size for s in COUNTS) < 3_000_000
    assert (FULL / "LICENSE").read_text().count("CC BY-SA 4.0") == 1


def test_committed_validation_is_held_out_by_premise(committed: dict[str, list[dict]]) -> None:
    assert all(is_validation_premise(r["sentence1"], 20) for r in committed["validation"])
    assert not any(is_validation_premise(r["sentence1"], 20) for r in committed["train"])
    train_premises = {r["sentence1"] for r in committed["train"]}
    assert not train_premises & {r["sentence1"] for r in committed["validation"]}
    assert not train_premises & {r["sentence1"] for r in committed["test"]}


def test_data_config_loads_through_the_generic_files_path() -> None:
    """What data=snli_full reads (conf/data/snli_full.yaml): gzip JSONL, labels from the training split."""
    from omegaconf import OmegaConf

    data = OmegaConf.load(ROOT / "conf" / "data" / "snli_full.yaml")
    spec = generic_task(tuple(data.text_fields), label_field=data.label_field, name=data.name)
    spec, splits = load_generic_splits(spec, ROOT / data.train, ROOT / data.validation, ROOT / data.test)
    assert spec.label_names == LABELS
    assert {s: len(rows[data.label_field]) for s, rows in splits.items()} == COUNTS
    assert all(set(rows[data.label_field]) == {0, 1, 2} for rows in splits.values())


def test_unlabelled_pairs_are_dropped_and_unknown_labels_refused() -> None:
    lines = [json.dumps({"sentence1": "A", "sentence2": f"b{i}", "gold_label": g, "pairID": str(i)})
             for i, g in enumerate(["entailment", "-", "neutral", "contradiction"])]
    rows = labelled_pairs([*lines, ""])
    assert [r["gold_label"] for r in rows] == ["entailment", "neutral", "contradiction"]
    assert all(set(r) == {"sentence1", "sentence2", "gold_label"} for r in rows)
    bad = json.dumps({"sentence1": "A", "sentence2": "b", "gold_label": "maybe"})
    with pytest.raises(ValueError, match=r"x.jsonl:2: gold_label 'maybe'"):
        labelled_pairs([lines[0], bad], "x.jsonl")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.sampled_from(LABELS)), max_size=60), st.integers(2, 5))
def test_split_by_premise_keeps_each_premise_on_one_side(pairs: list[tuple[int, str]], one_in: int) -> None:
    rows = [{"sentence1": f"premise {p}", "sentence2": f"h{i}", "gold_label": g} for i, (p, g) in enumerate(pairs)]
    train, validation = split_by_premise(rows, one_in)
    assert sorted(map(json.dumps, train + validation)) == sorted(map(json.dumps, rows))
    assert not {r["sentence1"] for r in train} & {r["sentence1"] for r in validation}
    assert [r for r in rows if r in validation] == validation  # source order kept
    assert split_by_premise(list(reversed(rows)), one_in)[1] == list(reversed(validation))  # order-independent


def test_gzip_jsonl_is_reproducible_and_read_back(tmp_path: Path) -> None:
    rows = [{"sentence1": "Ein Mann.", "sentence2": "A man.", "gold_label": "entailment"}]
    write_jsonl(rows, tmp_path / "a.jsonl.gz")
    write_jsonl(rows, tmp_path / "b.jsonl.gz")
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()
    table = read_table(tmp_path / "a.jsonl.gz")
    assert dict(table) == {k: [v] for k, v in rows[0].items()} and table.lines == [1]


def test_truncated_gzip_is_a_clear_error(tmp_path: Path) -> None:
    write_jsonl([{"sentence1": "x", "sentence2": "y", "gold_label": "neutral"}] * 50, tmp_path / "t.jsonl.gz")
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes((tmp_path / "t.jsonl.gz").read_bytes()[:-12])
    with pytest.raises(ValueError, match=r"cut.jsonl.gz: not a complete gzip file"):
        read_table(cut)
