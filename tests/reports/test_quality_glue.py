"""The quality study's classification side: its grid composes (every job, both scales), its sizes are ~10x
below dense on the SNLI sample, and its table is built from records only."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

from shapeshifter.experiment.records import write_record  # noqa: E402
from shapeshifter.experiment.sweep import compose_cfg, grid_jobs  # noqa: E402
from shapeshifter.reports.quality import build_quality_glue_table, quality_glue_rows  # noqa: E402
from shapeshifter.reports.registry import build_table, get_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
METHODS = {"dense": "dense", "study_glue/o2_r8_emb44": "o2-r8-emb44",
           "study_glue/lowrank_r8_emb12": "lowrank-r8-emb12"}


def _reproduce():
    from shapeshifter.cli import reproduce

    return reproduce


@pytest.mark.parametrize("scale", ["full", "smoke"])
def test_every_job_of_the_grid_composes(scale: str, capsys: pytest.CaptureFixture[str]) -> None:
    reproduce = _reproduce()
    assert reproduce.main(["quality_glue", "--scale", scale, "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    seeds = (1, 2) if scale == "full" else (1,)  # smoke runs each grid's first seed (conf/scale/smoke_glue.yaml)
    assert len(lines) == 7 * len(seeds)
    assert all(line.startswith(("python pipelines/train.py experiment=quality/glue_grid",
                                "python pipelines/train.py experiment=quality/glue_distill")) for line in lines)
    grid = get_table("quality_glue")
    base = [f"+scale={grid.smoke_scale if scale == 'smoke' else grid.full_scale}"]
    cfgs = [compose_cfg(CONF, job) for exp in grid.experiments
            for job in grid_jobs(CONF, exp, base, grid.with_dense)]
    plain = [(f"d128-{n}", "") for n in METHODS.values()] + [("d16-dense", "")]
    distilled = [(f"d128-{n}", "-distilled-word") for n in METHODS.values() if n != "dense"] + [("d16-dense",
                                                                                               "-distilled-word")]
    assert sorted(c.run.name for c in cfgs) == sorted(f"snli_sample-{row}{tag}-s{seed}" for seed in seeds
                                                      for row, tag in [*plain, *distilled])
    taught = [c for c in cfgs if c.distill.kinds]  # every distilled job learns from the dense run of its seed
    assert len(taught) == 3 * len(seeds)
    assert all(str(c.distill.teacher).endswith(f"-d128-dense-s{c.seed}") for c in taught)
    assert {(c.distill.alpha, c.distill.temperature) for c in taught} == {(0.9, 1.0)}
    suffix = "-smoke" if scale == "smoke" else ""
    assert {c.run.group for c in cfgs} == {f"quality_glue{suffix}"} and {c.run.records for c in cfgs} == {
        "results/records"}
    assert {c.data.name for c in cfgs} == {"snli_sample"} and {c.ckpt.patience for c in cfgs} == {5}
    assert {c.trainer.max_epochs for c in cfgs} == {1 if scale == "smoke" else 30}
    assert {c.glue.max_examples for c in cfgs} == {1000 if scale == "smoke" else None}
    assert {c.trainer.accelerator for c in cfgs} == {"cpu"}


def study_sizes(experiment: str, variants: Iterable[Sequence[str]]) -> tuple[int, int, list[int]]:
    """A classification study's vocabulary size, its dense model's total parameters and each variant's (the
    overrides of one job), all on that vocabulary."""
    from shapeshifter.experiment.policy import policy_from_config
    from shapeshifter.glue.models import apply_shapeshift
    from shapeshifter.glue.task import build_model, check_arch, check_data, glue_settings, load_datamodule
    from shapeshifter.params import count_parameters

    first = compose_cfg(CONF, [f"experiment={experiment}"])
    dm = load_datamodule(check_data(first), check_arch(first), glue_settings(first), first.seed)  # vocabulary only

    def count(*overrides: str) -> int:
        cfg = compose_cfg(CONF, [f"experiment={experiment}", *overrides])
        model = build_model(check_arch(cfg), dm, glue_settings(cfg)["max_length"])
        apply_shapeshift(model, policy_from_config(cfg.shapeshift), init="random")
        return count_parameters(model)["total"]

    return dm.vocab_size, count(), [count(*overrides) for overrides in variants]


def test_the_study_sizes_are_about_ten_times_below_dense() -> None:
    """The configs' comments quote these counts: dense encoder_small on the SNLI sample's word vocabulary."""
    variants = {name: [f"shapeshift={group}"] for group, name in METHODS.items() if group != "dense"}
    variants["dense-d16"] = ["arch=encoder_small_d16"]
    _, dense, sizes = study_sizes("quality/glue", variants.values())
    counts = dict(zip(variants, sizes, strict=True))
    assert dense == 1_252_099
    assert counts == {"o2-r8-emb44": 126_755, "lowrank-r8-emb12": 124_287, "dense-d16": 113_507}
    assert all(0.9 * dense / 10 <= n <= 1.1 * dense / 10 for n in counts.values())


def glue_record(name: str, seed: int, acc: float, params: int, *, label: str | None = None,
                kind: str | None = None, step_s: float = 0.1, stopped_by: str = "early_stopping") -> dict:
    policy = None
    if name != "dense":
        spec = {"rank": 8, "order": 2, "scheme": "balanced", "path": "auto"} | ({"kind": kind} if kind else {})
        policy = {t: dict(spec) for t in ("embedding", "attention", "ffn")}
    arch = {"kind": "scratch", "name": "encoder_small"} | ({"label": label} if label else {})
    config = {"seed": seed, "arch": arch, "shapeshift": {"name": name, "init": "random"}, "optim": {"lr": 1e-3}}
    return {
        "kind": "glue", "status": "done", "config_hash": f"{name}{label or ''}{seed}", "config": config,
        "policy": policy, "git_commit": "abc", "task": {"name": "snli_sample"},
        # a narrow dense record counts its own width as dense
        "params": {"total": params, "reduction_vs_dense": 1000 / params if name != "dense" else 1.0},
        "objective": acc + 0.01, "objective_metric": "val/accuracy", "objective_mode": "max",
        "metrics": {"main_metric": "accuracy", "validation": {"accuracy": acc + 0.01}, "test": {"accuracy": acc},
                    "majority_rate": {"validation": 0.34, "test": 0.3385}},
        "timings": {"train_step_s": step_s, "test_s": 1.0},
        "training": {"epochs": 12 + seed, "steps": 100, "stopped_by": stopped_by, "monitor": "val/accuracy",
                     "best": acc + 0.01},
    }


def study() -> list[dict]:
    return [
        glue_record("dense", 1, 0.70, 1000), glue_record("dense", 2, 0.72, 1000),
        glue_record("dense", 1, 0.60, 110, label="d16", step_s=0.05),
        glue_record("o2-r8-emb44", 1, 0.66, 100, step_s=0.15), glue_record("o2-r8-emb44", 2, 0.68, 100, step_s=0.25),
        glue_record("lowrank-r8-emb12", 1, 0.64, 98, kind="lowrank", stopped_by="max_epochs"),
    ]


def test_rows_per_configuration_with_methods_seed_means_and_ratios() -> None:
    rows = quality_glue_rows(study())
    assert [r["config"] for r in rows] == ["dense", "o2-r8-emb44", "lowrank-r8-emb12", "dense-d16"]
    by = {r["config"]: r for r in rows}
    assert [r["method"] for r in rows] == ["dense", "Shapeshifter o2", "low-rank", "narrow dense"]
    assert by["dense"]["accuracy"] == pytest.approx(71.0) and by["dense"]["accuracy_std"] == pytest.approx(1.414, 1e-3)
    assert by["dense"]["val_accuracy"] == pytest.approx(72.0) and by["dense"]["seeds"] == 2
    assert by["dense-d16"]["seeds"] == 1 and by["dense-d16"]["reduction_vs_dense"] == pytest.approx(1000 / 110)
    assert by["o2-r8-emb44"]["train_time_ratio"] == pytest.approx(2.0) and by["o2-r8-emb44"]["epochs"] == 13.5
    assert by["lowrank-r8-emb12"]["stopped_by"] == "max_epochs" and by["dense"]["majority"] == pytest.approx(33.85)


def test_duplicate_record_is_an_error_not_a_second_seed() -> None:
    with pytest.raises(ValueError, match="same configuration and seed"):
        quality_glue_rows(study() + [glue_record("o2-r8-emb44", 1, 0.5, 100)])


def test_writes_table_and_csv_from_the_records_folder(tmp_path: Path) -> None:
    records = tmp_path / "records" / "quality_glue"
    for rec in study():
        write_record(rec, records / f"{rec['config_hash']}.json")
    md = build_table("quality_glue", "full", tmp_path / "records", tmp_path / "tables")
    assert "| low-rank | lowrank-r8-emb12 | 98 | 10.2 | 65.0 | 64.0 |" in md
    assert "majority class scores 33.9% on the same test split" in md
    rows = list(csv.DictReader((tmp_path / "tables" / "quality_glue.csv").open()))
    assert {"method", "params", "reduction_vs_dense", "accuracy", "seeds"} <= set(rows[0])
    assert rows[0]["method"] == "dense" and float(rows[0]["accuracy"]) == pytest.approx(71.0)
    first = (tmp_path / "tables" / "quality_glue.csv").read_bytes()
    build_quality_glue_table(list(reversed(study())), tmp_path / "tables")
    assert (tmp_path / "tables" / "quality_glue.csv").read_bytes() == first  # record order does not matter


def test_distilled_classifiers_are_rows_of_their_own_named_in_the_notes() -> None:
    from shapeshifter.reports.quality import glue_study_notes, quality_glue_rows

    taught = glue_record("o2-r8-emb44", 1, 0.69, 100)
    taught["config"]["distill"] = {"kinds": ["word"], "alpha": 0.9, "temperature": 1.0, "teacher": "o/dense-s1"}
    taught["config_hash"] += "-distilled"
    rows = {r["config"]: r for r in quality_glue_rows([*study(), taught])}
    assert rows["o2-r8-emb44-distilled-word"]["method"] == "Shapeshifter o2, distilled"
    assert rows["o2-r8-emb44-distilled-word"]["accuracy"] == pytest.approx(69.0)
    assert rows["o2-r8-emb44"]["seeds"] == 2  # the plain row keeps its own seeds
    assert "A distilled row" in glue_study_notes(list(rows.values()))
    assert "A distilled row" not in glue_study_notes(quality_glue_rows(study()))
