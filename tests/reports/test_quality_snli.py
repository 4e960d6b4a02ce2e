"""The classification study on the full SNLI subset (quality_snli): its jobs compose in the order they should
land, its sizes are ~10x below dense on that data's vocabulary, and its table states each row's gap to dense."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
from test_quality_glue import glue_record, study, study_sizes  # noqa: E402  (tests/reports is on sys.path)

from shapeshifter.experiment.records import write_record  # noqa: E402
from shapeshifter.experiment.sweep import compose_cfg  # noqa: E402
from shapeshifter.reports.quality import build_quality_snli_table  # noqa: E402
from shapeshifter.reports.registry import build_table, get_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
ORDER = ["d128-dense", "d128-o2-r8-emb57", "d128-lowrank-r8-emb12", "d16-dense"]


@pytest.mark.parametrize("scale", ["full", "smoke"])
def test_jobs_compose_first_seeds_first(scale: str) -> None:
    spec = get_table("quality_snli")
    cfgs = [compose_cfg(CONF, job) for job in spec.all_jobs(spec.scale_overrides(scale))]
    seeds = (1, 2) if scale == "full" else (1,)  # smoke runs the first seeds only
    suffix = "-smoke" if scale == "smoke" else ""
    plain = [f"snli_full-{n}-s{seed}" for seed in seeds for n in ORDER]
    distilled = [f"snli_full-{n}-distilled-word-s{seed}" for seed in seeds for n in ORDER[1:]]
    assert [c.run.name for c in cfgs] == plain + distilled
    for c in cfgs[len(plain):]:  # each compressed method distilled from the dense run of its own seed
        assert list(c.distill.kinds) == ["word"] and (c.distill.alpha, c.distill.temperature) == (0.9, 1.0)
        assert c.distill.teacher.endswith(f"quality_snli{suffix}/snli_full-d128-dense-s{c.seed}")
    assert {c.run.group for c in cfgs} == {f"quality_snli{suffix}"}
    assert {c.data.name for c in cfgs} == {"snli_full"} and {c.ckpt.patience for c in cfgs} == {3}
    assert {c.trainer.max_epochs for c in cfgs} == {1 if scale == "smoke" else 15}
    assert {c.glue.max_examples for c in cfgs} == {1000 if scale == "smoke" else None}
    assert {c.trainer.accelerator for c in cfgs} == {"cpu"}


@pytest.mark.slow
def test_the_study_sizes_are_about_ten_times_below_dense_on_its_vocabulary() -> None:
    """The config comments quote these counts (11,481-word vocabulary of the 94,670 training pairs)."""
    vocab, dense, counts = study_sizes("quality/snli", [job[1:] for job in get_table("quality_snli").jobs[1:4]])
    assert vocab == 11_481
    assert dense == 1_875_203 and counts == [187_931, 182_703, 191_395]
    assert all(0.95 * dense / 10 <= n <= 1.05 * dense / 10 for n in counts)


def snli_study() -> list[dict]:
    recs = [*study(), glue_record("lowrank-r8-emb12", 2, 0.70, 98, kind="lowrank")]
    for rec in recs:
        rec["task"] = {"name": "snli_full"}
    return recs


def test_gap_to_dense_per_seed_and_majority_in_the_table(tmp_path: Path) -> None:
    records = tmp_path / "records" / "quality_snli"
    for rec in snli_study():
        write_record(rec, records / f"{rec['config_hash']}.json")
    md = build_table("quality_snli", "full", tmp_path / "records", tmp_path / "tables")
    head = md.splitlines()[2]
    assert "Δ test accuracy vs dense (points)" in head and "majority class (%, test)" in head
    lines = {line.split(" | ")[1]: line for line in md.splitlines() if line.startswith("| ")}
    # o2: seeds 66, 68 vs dense 70, 72 -> -4 and -4; low-rank: 64, 70 vs 70, 72 -> -6 and -2
    assert "| 67.0 ± 1.41 | -4.0 ± 0.00 | 33.9 |" in lines["o2-r8-emb44"]
    assert "| 67.0 ± 4.24 | -4.0 ± 2.83 | 33.9 |" in lines["lowrank-r8-emb12"]
    assert "| 71.0 ± 1.41 | +0.0 | 33.9 |" in lines["dense"]
    assert "| 60.0 | -11.0 | 33.9 |" in lines["dense-d16"]  # one seed: no spread to report
    assert "Predicting the majority class scores 33.9%" in md
    csv_first = (tmp_path / "tables" / "quality_snli.csv").read_bytes()
    build_quality_snli_table(list(reversed(snli_study())), tmp_path / "tables")
    assert (tmp_path / "tables" / "quality_snli.csv").read_bytes() == csv_first
