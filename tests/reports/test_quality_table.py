"""The quality study's table: rows per configuration, methods, seeds, duplicates, CSV columns, plot."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from shapeshifter.reports.quality import (
    build_quality_table,
    build_width_table,
    compute_spent,
    headline_rows,
    method,
    quality_rows,
    verdict,
    why_rows,
    width_rows,
)


def record(name: str, seed: int, bleu: float, params: int, *, label: str | None = None, order: int = 2,
           init: str = "random", kind: str | None = None, scheme: str = "balanced", best: float = 5.0,
           step_s: float = 0.5) -> dict:
    policy = None
    if name != "dense":
        spec = {"rank": 8, "order": order, "scheme": scheme, "path": "auto"} | ({"kind": kind} if kind else {})
        policy = {t: dict(spec) for t in ("embedding", "attention", "ffn", "output")}
    arch = {"name": "transformer_iwslt_de_en"} | ({"label": label} if label else {})
    config = {"seed": seed, "arch": arch, "shapeshift": {"name": name, "init": init}, "optim": {"lr": 3e-3}}
    return {
        "kind": "translation", "status": "done", "config_hash": f"{name}{label or ''}{seed}", "config": config,
        "policy": policy, "git_commit": "abc",
        "params": {"total": params, "reduction_vs_dense": 1000 / params},
        "metrics": {"test": {"tokenized_bleu": bleu, "sacrebleu": bleu + 0.1},
                    "copy_baseline": {"tokenized_bleu": 3.0}},
        "timings": {"train_s": step_s * 100, "train_steps": 100, "test_generate_s": 10.0},
        "training": {"epochs": 20, "stopped_by": "early_stopping", "best": best, "monitor": "valid_loss",
                     "curve": [{"epoch": 0, "valid_loss": best + 1.0}, {"epoch": 1, "valid_loss": best}]},
    }


def study() -> list[dict]:
    return [
        record("dense", 1, 20.0, 1000, best=4.0), record("dense", 2, 22.0, 1000, best=4.2),
        record("dense", 1, 6.0, 100, label="d20"),
        record("o2-r8-emb29", 1, 15.0, 100, step_s=0.4), record("o2-r8-emb29", 2, 17.0, 100, step_s=0.6),
        record("o3-r16-emb235", 1, 14.0, 100, order=3),
        record("o2-r8-emb29-proj", 1, 16.0, 100, init="project"),
        record("lowrank-r8", 1, 12.0, 100, kind="lowrank"),
        record("phm8", 1, 13.0, 110, scheme="phm8"),
    ]


def test_rows_per_configuration_with_methods_seed_means_and_ratios() -> None:
    rows = {r["config"]: r for r in quality_rows(study())}
    assert set(rows) == {"dense", "dense-d20", "o2-r8-emb29", "o3-r16-emb235", "o2-r8-emb29-proj", "lowrank-r8",
                         "phm8"}
    assert rows["dense"]["method"] == "dense" and rows["dense-d20"]["method"] == "narrow dense"
    assert rows["o3-r16-emb235"]["method"] == "Shapeshifter o3"
    assert rows["o2-r8-emb29-proj"]["method"] == "Shapeshifter, projected from dense"
    assert rows["lowrank-r8"]["method"] == "low-rank" and rows["phm8"]["method"] == "PHM"
    assert rows["dense"]["bleu"] == pytest.approx(21.0) and rows["dense"]["seeds"] == 2
    assert rows["dense"]["valid_loss"] == pytest.approx(4.1)
    assert rows["o2-r8-emb29"]["train_time_ratio"] == pytest.approx(1.0)
    assert rows["dense-d20"]["seeds"] == 1  # a narrow dense run is not averaged into the dense row


def test_a_resumed_run_is_timed_by_its_measured_step_time_not_by_its_last_attempt_over_all_steps() -> None:
    resumed = record("o2-r8-emb29", 1, 15.0, 100)
    resumed["timings"].update(train_s=10.0, train_step_s=0.5)  # 80 of the 100 steps ran before the resume
    rows = {r["config"]: r for r in quality_rows([record("dense", 1, 20.0, 1000), resumed])}
    assert rows["o2-r8-emb29"]["train_time_ratio"] == pytest.approx(1.0)


def test_narrow_dense_reduction_is_against_the_dense_row() -> None:
    narrow = record("dense", 1, 6.0, 100, label="d20")
    narrow["params"]["reduction_vs_dense"] = 1.0  # what a run records: its own width is its dense model
    rows = {r["config"]: r for r in quality_rows([*study()[:2], narrow])}
    assert rows["dense-d20"]["reduction_vs_dense"] == pytest.approx(10.0) and rows["dense-d20"]["budget"] == 10


def test_duplicate_record_is_an_error_not_a_second_seed() -> None:
    records = study() + [record("o2-r8-emb29", 1, 3.0, 100)]
    with pytest.raises(ValueError, match="same configuration and seed"):
        quality_rows(records)


def test_writes_table_csv_with_the_promised_columns_and_a_plot(tmp_path: Path) -> None:
    build_quality_table(study(), tmp_path)
    rows = list(csv.DictReader((tmp_path / "quality.csv").open()))
    assert {"method", "params", "reduction_vs_dense", "bleu", "seeds"} <= set(rows[0])
    assert rows[0]["method"] == "dense" and float(rows[0]["bleu"]) == pytest.approx(21.0)
    assert (tmp_path / "quality_bleu_vs_params.png").stat().st_size > 1000
    assert (tmp_path / "quality_curves.png").stat().st_size > 1000
    md = (tmp_path / "quality.md").read_text()
    assert "Copying the source scores 3.00" in md
    first = (tmp_path / "quality.csv").read_bytes()
    build_quality_table(list(reversed(study())), tmp_path)
    assert (tmp_path / "quality.csv").read_bytes() == first  # record order does not change the output


def test_method_of_a_policy_without_kind_is_kronecker() -> None:
    assert method(record("o2-r1-emb6", 1, 1.0, 10)) == "Shapeshifter o2"


def why_record(name: str, best: float, **config: object) -> dict:
    rec = record(name, 1, 10.0, 100, best=best)
    rec["config"]["optim"]["factor_lr_scale"] = config.get("flr", 1.0)
    rec["config"]["arch"]["overrides"] = {"dropout": config.get("dropout", 0.1)}
    rec["config"]["shapeshift"]["rank"] = config.get("rank", 8)
    rec["config_hash"] = f"{name}-{sorted(config.items())}"
    rec["metrics"]["train"] = {"train_loss_epoch": best - 0.5}
    return rec


def test_why_rows_name_each_change_and_its_effect_on_valid_loss() -> None:
    records = [why_record("o2-r8-emb29", 5.0), why_record("o2-r8-emb29", 4.8, flr=0.3),
               why_record("o2-r4-emb42", 5.2, rank=4), why_record("o2-r8-emb29", 4.9, dropout=0.0)]
    rows = why_rows(records)
    assert [r["change"] for r in rows] == ["base", "optim.factor_lr_scale: 1.0 → 0.3",
                                           "arch.overrides.dropout: 0.1 → 0.0", "shapeshift.rank: 8 → 4"]
    assert [round(r["delta"], 3) for r in rows] == [0.0, -0.2, -0.1, 0.2]
    with pytest.raises(FileNotFoundError, match="base record"):
        why_rows(records[1:])
    later = why_record("o2-r8-emb29", 4.7, flr=3.0)
    later["config"]["scale"] = {"suffix": ""}  # a key added by later code, empty by default: not a change
    assert why_rows([records[0], later])[1]["change"] == "optim.factor_lr_scale: 1.0 → 3.0"


def test_why_rows_average_the_seeds_of_one_change() -> None:
    def seeded(seed: int, best: float, **config: object) -> dict:
        rec = why_record("o2-r8-emb29", best, **config)
        rec["config"]["seed"], rec["config_hash"] = seed, f"{rec['config_hash']}-s{seed}"
        return rec

    rows = why_rows([seeded(1, 5.0), seeded(2, 5.2), seeded(1, 4.8, flr=3.0), seeded(2, 4.9, flr=3.0),
                     seeded(3, 4.7, flr=3.0)])
    assert [(r["change"], r["seeds"]) for r in rows] == [("base", 2), ("optim.factor_lr_scale: 1.0 → 3.0", 3)]
    assert rows[0]["valid_loss"] == pytest.approx(5.1) and rows[0]["valid_loss_std"] == pytest.approx(0.1414, abs=1e-4)
    assert rows[1]["delta"] == pytest.approx(-0.3) and len(rows[1]["hashes"]) == 3


def test_verdict_answers_the_question_from_the_rows() -> None:
    text = verdict(quality_rows(study()), 10)
    assert "best Kronecker-sum row o2-r8-emb29-proj" in text or "best Kronecker-sum row o2-r8-emb29 " in text
    assert "more than 1 BLEU" in text
    assert "vs narrow dense dense-d20 (6.00): ahead by" in text and "vs low-rank lowrank-r8 (12.00): ahead" in text
    assert "not enough finished runs" in verdict(quality_rows(study()[2:]), 10)
    assert "with at least" not in text  # the best row has 10x fewer parameters


def test_a_best_row_short_of_the_budgets_reduction_is_answered_beside_the_best_row_that_has_it() -> None:
    records = [*study(), record("phm4", 1, 21.5, 105, scheme="phm4")]  # 9.5x fewer: ~10x, but short of 10x
    text = verdict(quality_rows(records), 10)
    assert "best Kronecker-sum row phm4 (PHM, 9.5× fewer, 1 seed(s)) scores 21.50 BLEU vs dense 21.00: within" in text
    assert "\n  with at least 10× fewer: o2-r8-emb29 (Shapeshifter o2, 10.0× fewer, 2 seed(s)) scores 16.00" in text


def test_projected_replicas_may_name_their_own_seeds_dense_source() -> None:
    a, b = (record("o2-r8-emb29-proj", s, 16.0 + s, 100, init="project") for s in (1, 2))
    a["config"]["shapeshift"]["init_from"], b["config"]["shapeshift"]["init_from"] = "out/dense-s1", "out/dense-s2"
    rows = {r["config"]: r for r in quality_rows([record("dense", 1, 20.0, 1000), a, b])}
    assert rows["o2-r8-emb29-proj"]["seeds"] == 2
    b["config"]["shapeshift"]["rank"] = 4  # anything else that differs is still an error
    with pytest.raises(ValueError, match="not only in the seed"):
        quality_rows([record("dense", 1, 20.0, 1000), a, b])


def test_full_width_variant_is_its_own_row_of_its_method_not_narrow_dense() -> None:
    tuned = record("o2-r8-emb29-proj", 1, 18.0, 100, init="project", label="d128-drop0")
    rows = {r["config"]: r for r in quality_rows([*study(), tuned])}
    assert rows["o2-r8-emb29-proj-drop0"]["method"] == "Shapeshifter, projected from dense"
    assert rows["o2-r8-emb29-proj-drop0"]["seeds"] == 1 and rows["o2-r8-emb29-proj"]["seeds"] == 1
    assert rows["dense-d20"]["method"] == "narrow dense"  # a narrow width stays a baseline


def width_study() -> list[dict]:
    """The full-width study plus a narrower base: its dense model and Shapeshifter at ~10x fewer than it."""
    return [*study(), record("dense", 1, 12.0, 400, label="d64", best=4.6),
            record("o2-r4-emb22", 1, 6.0, 40, label="d64", best=5.8),
            record("o2-r2-emb14", 1, 9.0, 40)]  # a full-width row at 25x: not in the width table


def test_width_rows_compare_each_base_with_its_own_dense_model() -> None:
    rows = width_rows(width_study())
    assert [(r["base"].split()[0], r["config"]) for r in rows] == [
        ("d128", "dense"), ("d128", "o2-r8-emb29"), ("d64", "dense-d64"), ("d64", "o2-r4-emb22-d64")]
    by = {r["config"]: r for r in rows}
    assert by["o2-r8-emb29"]["reduction"] == pytest.approx(10.0) and by["o2-r4-emb22-d64"]["reduction"] == 10.0
    assert by["o2-r8-emb29"]["bleu_kept"] == pytest.approx(100 * 16.0 / 21.0)  # both seeds of each, averaged
    assert by["o2-r4-emb22-d64"]["bleu_kept"] == pytest.approx(50.0)
    assert by["o2-r4-emb22-d64"]["valid_gap"] == pytest.approx(1.2) and by["dense-d64"]["valid_gap"] == 0.0
    assert by["o2-r8-emb29"]["valid_gap"] == pytest.approx(5.0 - 4.1)


@pytest.mark.parametrize("scale", ["full", "smoke"])
def test_the_width_table_reads_the_quality_records_beside_its_own_and_leaves_them_alone(scale: str,
                                                                                      tmp_path: Path) -> None:
    import json

    from shapeshifter.reports.registry import build_table, group_name

    narrow = [r for r in width_study() if (r["config"]["arch"].get("label") == "d64")]
    for table, recs in (("quality", [r for r in width_study() if r not in narrow]), ("quality_width", narrow)):
        folder = tmp_path / "records" / group_name(table, scale)
        folder.mkdir(parents=True)
        for i, rec in enumerate(recs):
            (folder / f"{i}.json").write_text(json.dumps(rec))
    tables = tmp_path / "tables"
    with pytest.raises(FileNotFoundError):  # the full-width pair is not its records: not built without them
        build_table("quality_width", scale, tmp_path / "nothing", tables)
    build_table("quality", scale, tmp_path / "records", tables)
    out = tables if scale == "full" else tables / scale
    main = (out / "quality.csv").read_bytes()
    width = build_table("quality_width", scale, tmp_path / "records", tables)
    assert "o2-r4-emb22-d64" in width and "| o2-r8-emb29 |" in width and "o2-r2-emb14" not in width
    assert "Built from 6 run record(s)" in width  # the two seeds of dense and of o2-r8-emb29, and the d64 pair
    build_table("quality", scale, tmp_path / "records", tables)
    assert (out / "quality.csv").read_bytes() == main  # the width runs are not rows of the main table
    with pytest.raises(FileNotFoundError, match="narrower base"):
        build_width_table(study(), tmp_path)  # not built before a run on a narrower base has finished


def distilled(name: str, seed: int, bleu: float, **kw: object) -> dict:
    rec = record(name, seed, bleu, 100, **kw)
    rec["config"]["distill"] = {"kinds": ["sequence"], "with_references": True, "beam": 5,
                                "teacher": f"out/dense-s{seed}"}
    rec["config_hash"] += "-distilled"
    return rec


def test_distilled_rows_say_so_beside_their_plain_twins_and_in_the_plot(tmp_path: Path) -> None:
    records = [*study(), distilled("o2-r8-emb29", 1, 18.0), distilled("o2-r8-emb29", 2, 19.0),
               distilled("lowrank-r8", 1, 13.0, kind="lowrank")]
    rows = quality_rows(records)
    by = {r["config"]: r for r in rows}
    assert by["o2-r8-emb29-distilled-seq-refs"]["method"] == "Shapeshifter o2, distilled"
    assert by["o2-r8-emb29-distilled-seq-refs"]["seeds"] == 2  # each seed's own teacher is no difference
    assert by["lowrank-r8-distilled-seq-refs"]["method"] == "low-rank, distilled"
    assert by["o2-r8-emb29"]["seeds"] == 2 and by["o2-r8-emb29"]["bleu"] == pytest.approx(16.0)
    order = [r["config"] for r in rows]
    assert order.index("o2-r8-emb29") < order.index("o2-r8-emb29-distilled-seq-refs") < order.index("o3-r16-emb235")
    assert "lowrank-r8-distilled-seq-refs" == order[order.index("lowrank-r8") + 1]
    plain, distilled_block = verdict(rows).split("\n~10×, distilled from dense: ")
    assert "ahead" in distilled_block and "low-rank, distilled" in distilled_block  # rivals trained the same way
    assert "o2-r8-emb29-distilled-seq-refs" in distilled_block and "vs low-rank lowrank-r8 " not in distilled_block
    assert "distilled" not in plain
    md = build_quality_table(records, tmp_path)
    assert "o2-r8-emb29-distilled-seq-refs" in md and "A distilled row" in md
    assert ("Distillation moved test BLEU: o2-r8-emb29 seq-refs +2.50 (2 vs 2 seed(s)); lowrank-r8 seq-refs +1.00 "
            "(1 vs 1 seed(s)).") in md


def test_two_recipes_of_one_configuration_are_two_rows_each_against_the_plain_twin(tmp_path: Path) -> None:
    attention = [distilled("o2-r8-emb29", seed, 20.0 + seed) for seed in (1, 2)]
    for rec in attention:
        rec["config"]["distill"]["kinds"] = ["sequence", "attention"]
        rec["config_hash"] += "-attention"
    records = [*study(), distilled("o2-r8-emb29", 1, 18.0), *attention]
    by = {r["config"]: r for r in quality_rows(records)}
    assert by["o2-r8-emb29-distilled-seq-refs"]["seeds"] == 1
    assert by["o2-r8-emb29-distilled-seq-refs-attention"]["seeds"] == 2
    assert by["o2-r8-emb29-distilled-seq-refs-attention"]["bleu"] == pytest.approx(21.5)
    md = build_quality_table(records, tmp_path)
    assert "o2-r8-emb29 seq-refs +2.00 (1 vs 2 seed(s)); o2-r8-emb29 seq-refs-attention +5.50 (2 vs 2 seed(s))" in md
    assert "A distilled row" not in build_quality_table(study(), tmp_path / "plain")


def test_the_headline_puts_each_distilled_recipe_beside_its_plain_configuration_at_the_budget(tmp_path: Path) -> None:
    attention = [distilled("o2-r8-emb29", seed, 20.0 + seed) for seed in (1, 2)]
    for rec in attention:
        rec["config"]["distill"]["kinds"] = ["sequence", "attention"]
        rec["config_hash"] += "-attention"
    records = [*study(), *attention, distilled("o2-r8-emb29", 1, 18.0),
               distilled("o2-r8-emb29-proj", 1, 19.0, init="project"),
               record("o2-r8-emb29-proj", 1, 15.0, 100, init="project", label="d128-drop0"),  # not distilled
               record("o2-r2-emb14", 1, 9.0, 40)]  # ~25x
    lines, columns = headline_rows(quality_rows(records))
    by = {line["config"]: line for line in lines}
    # dense first; of a distilled method only its distilled configurations; other methods' rows as they are
    assert lines[0]["config"] == "dense"
    assert set(by) == {"dense", "o2-r8-emb29", "o3-r16-emb235", "o2-r8-emb29-proj", "lowrank-r8", "phm8",
                       "dense-d20"}
    assert [c.header for c in columns][3:] == ["from the labels", "distilled (seq-refs)",
                                               "distilled (seq-refs-attention)"]  # in the table's row order
    o2 = by["o2-r8-emb29"]
    assert (o2["plain"], o2["seq-refs"], o2["seq-refs-attention"]) == (16.0, 18.0, 21.5)
    assert o2["plain_std"] == pytest.approx(2 ** 0.5) and o2["seq-refs_std"] is None
    assert by["o2-r8-emb29-proj"]["seq-refs"] == 19.0 and by["o2-r8-emb29-proj"]["seq-refs-attention"] is None
    build_quality_table(records, tmp_path)
    md = (tmp_path / "quality_10x.md").read_text()
    assert "| Shapeshifter o2 | o2-r8-emb29 | 100 | 16.00 ± 1.41 | 18.00 | 21.50 ± 0.71 |" in md
    assert "| PHM | phm8 | 110 | 13.00 | – | – |" in md
    assert ("~10×, distilled from dense: best Kronecker-sum row o2-r8-emb29-distilled-seq-refs-attention" in md
            and "vs low-rank lowrank-r8 (12.00): ahead by 4.00." in md)  # the verdict, one paragraph
    full = (tmp_path / "quality.md").read_text()  # the ~25x answer sits in the full table's notes
    assert ("The study's question at the other budgets: ~25×, from the labels: best Kronecker-sum row o2-r2-emb14 "
            "(Shapeshifter o2, 25.0× fewer, 1 seed(s)) scores 9.00 BLEU vs dense 21.00: more than 1 BLEU "
            "(gap +12.00)." in full)
    assert "~25×, distilled from dense" not in full and "~10×, from the labels" not in full


def test_the_compute_counts_every_step_of_a_resumed_run_and_each_teacher_decoding_once() -> None:
    students = [distilled("o2-r8-emb29", seed, 18.0, step_s=18.0) for seed in (1, 2)]
    for rec, key in zip(students, ("k1", "k1"), strict=True):  # the second reused the first one's decoding
        rec["distill"] = {"sequence": {"key": key, "decode_s": 720.0}}
    students[1]["timings"] |= {"train_s": 5.0, "train_step_s": 36.0}  # resumed: its last sitting took 5 s
    plain = [record("dense", 1, 20.0, 1000, step_s=36.0)]
    assert compute_spent(plain) == (" Compute: 1.0 h of training steps over 1 runs (steps × each run's measured "
                                    "step time, one thread per run).")
    assert compute_spent(plain + students) == (
        " Compute: 2.5 h of training steps over 3 runs (steps × each run's measured step time, one thread per run), "
        "1.5 h of them for 2 distilled students, plus 0.2 h for 1 teacher decoding(s) of the training sources.")


def embeddings_only(seed: int, bleu: float) -> dict:
    emb = record("emb-o2-r3", seed, bleu, 400)
    emb["policy"] = {"embedding": emb["policy"]["embedding"]}
    emb["params"]["by_type"] = {"embedding": {"dense": 0, "dense_equivalent": 968704, "params": 8472}}
    return emb


def test_a_policy_of_the_embeddings_alone_is_its_own_method() -> None:
    rows = {r["config"]: r for r in quality_rows([*study(), embeddings_only(1, 19.0)])}
    assert rows["emb-o2-r3"]["method"] == "Shapeshifter, embeddings only"
    assert method(record("o2-r8-emb29", 1, 15.0, 100)) == "Shapeshifter o2"


def test_the_notes_answer_the_embeddings_alone_claim_with_the_relative_drop(tmp_path: Path) -> None:
    close = build_quality_table([*study(), embeddings_only(1, 20.0), embeddings_only(2, 21.0)], tmp_path / "a")
    assert ("emb-o2-r3 has 114× fewer embedding parameters (8,472 vs 968,704) and scores 20.50 BLEU vs dense's "
            "21.00, 2.4% below it (within the seed spread, ±2.12)") in close
    far = build_quality_table([*study(), embeddings_only(1, 15.0)], tmp_path / "b")
    assert "scores 15.00 BLEU vs dense's 21.00, 28.6% below it (outside the seed spread, ±1.41)" in far
    assert "embeddings alone" not in build_quality_table(study(), tmp_path / "c")
    untrained = [*(record("dense", seed, 0.0, 1000) for seed in (1, 2)), embeddings_only(1, 0.0)]  # a smoke run
    assert "no relative drop defined (dense scores 0)" in build_quality_table(untrained, tmp_path / "d")
