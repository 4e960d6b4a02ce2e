"""The distillation screening table: each distilled configuration beside its undistilled twin's same seeds."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from shapeshifter.reports.distill import build_distill_table, distill_label, distill_rows, step_costs

BASE = {"seed": 1, "optim": {"factor_lr_scale": 3.0}, "shapeshift": {"name": "o2-r8-emb29", "rank": 8},
        "eval": {"bleu_every_n_epochs": 1000}, "run": {"name": "x"}}


def record(seed: int, loss: float, bleu: float, step: float, distill: dict | None = None,
           valid_bleu: float | None = None) -> dict:
    config = copy.deepcopy(BASE)
    config["seed"] = seed
    if distill:
        config["distill"] = {"kinds": [], "teacher": f"outputs/quality/dense-s{seed}", "alpha": 0.5,
                             "temperature": 2.0, "hidden_weight": 1.0, "beam": 5, "with_references": False,
                             **distill}
        config["eval"]["bleu_every_n_epochs"] = 6
    valid = {"valid_loss": loss} | ({"valid_bleu": valid_bleu} if valid_bleu is not None else {})
    teacher = {"teacher": {"name": "dense-s1", "config_hash": "t1"}} if distill else None
    return {"config": config, "config_hash": f"{'d' if distill else 'p'}{seed}{loss}", "git_commit": "c",
            **({"distill": teacher} if teacher else {}),
            "params": {"total": 100}, "policy": POLICY, "training": {"best": loss}, "timings": {"train_step_s": step},
            "metrics": {"test": {"tokenized_bleu": bleu}, "valid": valid}}


POLICY = {"attention": {"rank": 8}}


def bench(finished_at: str, word: float, policy: dict = POLICY) -> dict:
    """A pipelines/bench_distill.py record: each step's ratio to the plain student's, in one process."""
    results = {"plain": 1.0, "word": word, "hidden": 1.25, "word+hidden": word + 0.25, "teacher": 0.9}
    return {"kind": "bench_distill", "config": {"policy": policy}, "config_hash": f"b{finished_at}",
            "git_commit": "c", "finished_at": finished_at,
            "results": {k: {"ratio_to_plain": v} for k, v in results.items()}}


def test_rows_compare_each_distilled_config_with_its_twin_seeds(tmp_path: Path) -> None:
    records = [record(1, 7.0, 10.0, 0.5), record(2, 7.2, 9.0, 0.5), record(3, 6.0, 30.0, 0.5),  # seed 3: no twin
               record(1, 6.8, 11.0, 0.75, {"kinds": ["word"]}, 12.0),
               record(2, 6.9, 10.0, 0.75, {"kinds": ["word"]}, 11.0),
               record(1, 7.5, 8.0, 0.6, {"kinds": ["word"], "alpha": 0.9, "temperature": 1.0}),
               record(1, 7.4, 8.5, 0.6, {"kinds": ["sequence"]})]
    benches = [bench("2026-12-02", 2.0), bench("2026-12-03", 1.5), bench("2026-12-04", 9.0, {"ffn": {}})]
    rows = {r["distill"]: r for r in build_rows(records + benches)}
    assert set(rows) == {"word α 0.5 T 2", "word α 0.9 T 1", "sequence (beam 5)"}
    word = rows["word α 0.5 T 2"]
    assert word["seeds"] == 2 and word["valid_loss"] == pytest.approx(6.85)
    assert word["delta"] == pytest.approx(6.85 - 7.1) and word["delta_bleu"] == pytest.approx(10.5 - 9.5)
    # the step cost is the newest benchmark of the same student policy, not a ratio of separate runs' times
    assert word["step_ratio"] == pytest.approx(1.5) and word["valid_bleu"] == pytest.approx(11.5)
    assert rows["sequence (beam 5)"]["step_ratio"] == 1.0  # plain steps on the teacher's translations
    other = rows["word α 0.9 T 1"]
    assert other["delta"] == pytest.approx(0.5) and other["twins"] == ["p17.0"]  # seed 1's twin only
    md = build_distill_table(records + benches, tmp_path)
    assert "word α 0.5 T 2" in md and (tmp_path / "quality_distill.csv").is_file()
    assert "p36.0" not in md  # a record no row used is not named in the stamp
    assert "Every row's teacher is dense-s1 (t1)" in md
    assert "b2026-12-03" in md and "b2026-12-02" not in md  # the benchmark used is named, an older one not
    assert distill_rows(records)[0]["step_ratio"] is None  # no benchmark: no cost claimed


def build_rows(records: list[dict]) -> list[dict]:
    bench_records = [r for r in records if r.get("kind") == "bench_distill"]
    return distill_rows([r for r in records if r.get("kind") != "bench_distill"], step_costs(bench_records))


def test_labels_and_no_rows() -> None:
    assert distill_label({"distill": {"kinds": ["sequence", "hidden"], "beam": 4, "with_references": True,
                                      "hidden_weight": 2.0}}) == "sequence + references (beam 4) + hidden ×2"
    with pytest.raises(FileNotFoundError):
        build_distill_table([record(1, 7.0, 10.0, 0.5)], Path("unused"))
    (alone,) = distill_rows([record(1, 6.8, 11.0, 0.75, {"kinds": ["word"]}), record(2, 7.0, 10.0, 0.5)])
    assert alone["twins"] is None and alone["delta"] is None and alone["step_ratio"] is None  # no twin of seed 1


def test_smoke_runs_one_job_per_kind_and_full_scale_the_whole_screening() -> None:
    from shapeshifter.reports.registry import get_table

    spec = get_table("quality_distill")
    smoke, full = spec.all_jobs(spec.scale_overrides("smoke")), spec.all_jobs(spec.scale_overrides("full"))
    kinds = [next(o for o in job if o.startswith("distill=")) for job in smoke]
    assert kinds == ["distill=word", "distill=hidden", "distill=sequence", "distill=attention"] and len(full) == 21
    later_seeds = [job for job in full if any(o in ("seed=2", "seed=3") for o in job)]
    # the six candidates' further seeds all learn from the seed-1 teacher
    assert len(later_seeds) == 12 and all(any(o.endswith("-dense-s1") for o in job) for job in later_seeds)
