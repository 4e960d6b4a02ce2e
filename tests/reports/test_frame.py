"""records -> DataFrame -> one row per configuration -> text (shapeshifter.reports.frame), against the
statistics module as the oracle for the mean and std over seeds."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shapeshifter.reports.frame import (
    Column,
    by_configuration,
    configurations,
    records_frame,
    to_csv,
    to_latex,
    to_markdown,
    to_rows,
)


def record(h: str, name: str, bleu: float | None, sys_len: int | None = None) -> dict:
    test = {} if bleu is None else {"tokenized_bleu": bleu}
    return {"config_hash": h, "config": {"shapeshift": {"name": name}},
            "metrics": {"test": test | ({"detail": {"sys_len": sys_len}} if sys_len else {})}}


def test_records_frame_reads_dotted_paths_and_functions_missing_as_nan() -> None:
    recs = [record("a", "dense", 30.0, 100), record("b", "o2", None)]
    frame = records_frame(recs, config=lambda r: r["config"]["shapeshift"]["name"], bleu="metrics.test.tokenized_bleu",
                          sys_len="metrics.test.detail.sys_len", absent="metrics.nowhere")
    assert list(frame["config_hash"]) == ["a", "b"]
    assert list(frame["config"]) == ["dense", "o2"]
    assert frame["bleu"][0] == 30.0 and math.isnan(frame["bleu"][1])
    assert frame["sys_len"][0] == 100 and math.isnan(frame["absent"][0])


def test_groups_keep_first_seen_order_and_sort_their_hashes() -> None:
    recs = [record("z1", "o2", 20.0), record("d1", "dense", 30.0), record("a2", "o2", 22.0, 5)]
    frame = records_frame(recs, config=lambda r: r["config"]["shapeshift"]["name"], bleu="metrics.test.tokenized_bleu",
                          sys_len="metrics.test.detail.sys_len", first_len="metrics.test.detail.sys_len")
    rows = to_rows(by_configuration(frame, "config", first=["first_len"], mean_std=["bleu"], mean_of_all=["sys_len"]))
    assert [r["config"] for r in rows] == ["o2", "dense"]
    o2, dense = rows
    assert o2["hashes"] == ["a2", "z1"] and o2["seeds"] == 2
    assert o2["bleu"] == 21.0 and o2["bleu_std"] == statistics.stdev([20.0, 22.0])
    # the first record's value (missing), not the first present one; a mean of all seeds is missing if one is
    assert o2["first_len"] is None and o2["sys_len"] is None
    assert dense["bleu_std"] is None and dense["seeds"] == 1  # one seed: no spread to report
    assert all(type(r["seeds"]) is int for r in rows)


def test_configurations_check_replicas_keep_read_order_when_asked_and_take_other_aggregations() -> None:
    recs = [{"config_hash": h, "config": {"seed": seed, "lr": 1.0}, "name": "o2", "stop": stop}
            for h, seed, stop in (("z", 1, "patience"), ("a", 2, "max_epochs"), ("m", 3, "patience"))]
    fields = {"config": "name", "stop": "stop"}
    (row,) = to_rows(configurations(recs, "config", fields, sort_hashes=False,
                                    stopped=("stop", lambda s: ", ".join(sorted(set(s))))))
    assert row["hashes"] == ["z", "a", "m"] and row["stopped"] == "max_epochs, patience" and row["seeds"] == 3
    recs[2]["config"]["lr"] = 3.0  # another experiment under the same row name: not a seed of it
    with pytest.raises(ValueError, match=r"row 'o2'.*differ in \['lr'\]"):
        configurations(recs, "config", fields)


@given(st.lists(st.tuples(st.sampled_from("abc"), st.one_of(st.none(), st.floats(-1e6, 1e6))), min_size=1,
                max_size=12))
def test_mean_and_std_over_seeds_match_the_statistics_module(values: list[tuple[str, float | None]]) -> None:
    recs = [{"config_hash": f"h{i}", "name": name, "value": v} for i, (name, v) in enumerate(values)]
    frame = records_frame(recs, config="name", value=lambda r: r["value"])
    rows = {r["config"]: r for r in to_rows(by_configuration(frame, "config", mean_std=["value"]))}
    for name in {n for n, _ in values}:
        present = [v for n, v in values if n == name and v is not None]
        row = rows[name]
        assert row["seeds"] == sum(n == name for n, _ in values)
        if not present:
            assert row["value"] is None and row["value_std"] is None
            continue
        assert math.isclose(row["value"], statistics.mean(present), rel_tol=1e-9, abs_tol=1e-6)
        if len(present) == 1:
            assert row["value_std"] is None
        else:
            assert math.isclose(row["value_std"], statistics.stdev(present), rel_tol=1e-6, abs_tol=1e-6)


COLUMNS = [Column("config", "configuration"), Column("params", "params", lambda v: f"{v:,}"),
           Column("bleu", "BLEU_tok (%)", ".2f")]
ROWS = [{"config": "dense", "params": 12345, "bleu": 30.0, "bleu_std": None, "hashes": ["b", "a"]},
        {"config": "o2, r8", "params": 1234, "bleu": None, "hashes": ["c"]},
        {"config": "o3", "params": 999, "bleu": 27.123456789, "bleu_std": 0.5}]


def test_markdown_latex_and_csv_text() -> None:
    assert to_markdown(ROWS, COLUMNS) == (
        "| configuration | params | BLEU_tok (%) |\n|---|---|---|\n| dense | 12,345 | 30.00 |\n"
        "| o2, r8 | 1,234 | – |\n| o3 | 999 | 27.12 ± 0.50 |\n")
    tex = to_latex(ROWS, COLUMNS, "A 10× caption")
    assert r"configuration & params & BLEU\_tok (\%) \\" in tex
    assert r"o3 & 999 & 27.12 $\pm$ 0.50 \\" in tex and r"\caption{A 10$\times$ caption}" in tex
    # raw values, floats to 6 significant digits, a missing value empty, commas quoted, the rows' hashes last
    assert to_csv(ROWS, COLUMNS) == ('config,params,bleu,config_hashes\ndense,12345,30,b a\n"o2, r8",1234,,c\n'
                                     "o3,999,27.1235,\n")
    assert to_csv([{k: v for k, v in r.items() if k != "hashes"} for r in ROWS], COLUMNS[:1]) == \
        'config\ndense\n"o2, r8"\no3\n'


def test_no_records_give_no_rows() -> None:
    from shapeshifter.reports.glue import glue_rows
    from shapeshifter.reports.translation import translation_rows

    assert translation_rows([]) == [] and glue_rows([]) == []
    empty = records_frame([], config="name", value="value")
    assert to_rows(by_configuration(empty, "config", mean_std=["value"])) == []
