"""A run's identity (the config hash) is what it computes: not where the outputs live, not its display names.

A reference to another run's folder (``distill.teacher``, ``shapeshift.init_from``) enters the hash below the
outputs folder, so ``reproduce.py --outputs /elsewhere`` finds every finished job again; a label (``shapeshift.name``,
``arch.label``, ...) can be renamed without re-running anything; a real setting still makes another run."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from shapeshifter.cli import migrate  # noqa: E402
from shapeshifter.experiment.records import config_hash, map_strings, portable_record  # noqa: E402
from shapeshifter.experiment.run_folder import find_run  # noqa: E402
from shapeshifter.experiment.runner import run_hash  # noqa: E402
from shapeshifter.experiment.sweep import compose_cfg  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
DISTILLED = ["experiment=quality/distill", "seed=1", "shapeshift=study/o2_r8_emb29", "distill=word"]
PROJECTED = ["experiment=quality/translation", "seed=2", "shapeshift=study/o2_r8_emb29_proj"]


def _hash(overrides: list[str]) -> str:
    return run_hash(compose_cfg(CONF, overrides))


@pytest.mark.parametrize("job", [DISTILLED, PROJECTED], ids=["teacher", "init_from"])
def test_the_same_job_under_another_outputs_folder_is_the_same_run(job: list[str], tmp_path: Path) -> None:
    here = _hash(job)
    assert _hash([*job, f"run.outputs={tmp_path / 'outputs'}"]) == here
    assert _hash([*job, "run.outputs=elsewhere/runs"]) == here


def test_another_teacher_or_dense_source_is_another_run() -> None:
    assert _hash([*DISTILLED, "distill.teacher=${run.outputs}/quality/sample_de_en-d128-dense-s2"]) != _hash(DISTILLED)
    assert _hash([*PROJECTED, "shapeshift.init_from=${run.outputs}/quality/sample_de_en-d128-dense-s1"]) \
        != _hash(PROJECTED)
    # a folder outside the outputs folder is hashed as given: it is not the run of the same name inside it
    assert _hash([*DISTILLED, "distill.teacher=/elsewhere/quality/sample_de_en-d128-dense-s1"]) != _hash(DISTILLED)


def test_a_teacher_named_by_its_absolute_path_is_the_one_named_through_run_outputs(tmp_path: Path) -> None:
    cfg = compose_cfg(CONF, DISTILLED)
    absolute = Path(cfg.paths.output_dir) / "quality/sample_de_en-d128-dense-s1"
    assert _hash([*DISTILLED, f"distill.teacher={absolute}"]) == _hash(DISTILLED)
    outputs = tmp_path / "outputs"
    assert _hash([*DISTILLED, f"run.outputs={outputs}",
                  f"distill.teacher={outputs}/quality/sample_de_en-d128-dense-s1/"]) == _hash(DISTILLED)


def test_a_record_written_inside_the_project_keeps_the_hash_its_run_had(tmp_path: Path) -> None:
    """write_record makes paths inside the project relative; the teacher and run.outputs move together, so the
    hash recomputed from the record (skip-done, migrations, replica checks) is the run's."""
    root = tmp_path / "checkout"
    cfg = compose_cfg(CONF, [*DISTILLED, f"run.outputs={root / 'outputs'}"])
    config = OmegaConf.to_container(cfg, resolve=True)
    written = portable_record({"config": config}, root)["config"]
    assert written["distill"]["teacher"] == "outputs/quality/sample_de_en-d128-dense-s1"
    assert written["run"]["outputs"] == "outputs"
    assert config_hash(written) == config_hash(config)


@pytest.mark.parametrize("rename", ["shapeshift.name=renamed", "++arch.label=d128-renamed",
                                    "++data.name_in_tables=Sample", "+scale=cpu", "scale.suffix=-x"])
def test_renaming_a_display_name_keeps_the_hash(rename: str) -> None:
    job = ["experiment=quality/translation", "+scale=smoke"] if rename.startswith("scale.") else PROJECTED
    assert _hash([*job, rename]) == _hash(job)


def test_a_label_that_names_a_referenced_folder_moves_the_reference() -> None:
    """``scale.suffix`` is a label, but the dense source's folder is built from it: another folder, another run."""
    smoke = [*PROJECTED, "+scale=smoke"]
    assert _hash([*smoke, "scale.suffix=-x"]) != _hash(smoke)


@pytest.mark.parametrize("change", ["shapeshift.rank=4", "shapeshift.per_type.embedding.rank=16",
                                    "optim.factor_lr_scale=2.0", "arch.name=transformer", "seed=3",
                                    "shapeshift.layers=[attention]"])
def test_a_real_setting_still_makes_another_run(change: str) -> None:
    assert _hash([*PROJECTED, change]) != _hash(PROJECTED)
    assert _hash([*PROJECTED, change, "shapeshift.name=renamed"]) == _hash([*PROJECTED, change])


def test_a_sweep_label_beside_its_setting_is_a_label() -> None:
    """``shapeshift=sweep`` names itself after its layers and scheme; the settings carry the difference."""
    sweep = ["shapeshift=sweep", "layers=attn", "scheme=exact"]
    assert _hash([*sweep, "shapeshift.layers_name=a", "shapeshift.scheme_name=e"]) == _hash(sweep)
    assert _hash(["shapeshift=sweep", "layers=ffn", "scheme=exact"]) != _hash(sweep)


RECORDS = ROOT / "results/records"
MIGRATED = {  # committed records (migrated once to this hash rule) and how their run folders are laid out
    "quality/sample_de_en-d128-dense-s1-d3c82e297b36.json": "hash folder",  # the distillation teacher
    "quality/sample_de_en-d128-dense-s2-762d37009336.json": "hash folder",  # the projection's dense source
    "quality/sample_de_en-d20-dense-s1-d874a19fcfaf.json": "older layout",  # <job>/checkpoints/ directly
    "quality/sample_de_en-d128-o2-r8-emb29-proj-s2-3ff2d9e047af.json": "hash folder",
    "quality_distill/sample_de_en-d128-o2-r8-emb29-flr3.0-distilled-seq-t1-s3-61093f1046c2.json": "hash folder",
}


def _as_before(record: dict, back: dict[str, str]) -> dict:
    """A migrated record as it was written before: its own and the other records' old hashes."""
    older = migrate._replacing(back)
    out = {k: v if k in ("config", "migrated_from") else map_strings(v, older) for k, v in record.items()}
    out["migrated_from"] = record["migrated_from"][:-1]
    if not out["migrated_from"]:
        del out["migrated_from"]
    return out


def _old_run_folders(records: Path, outputs: Path, committed: dict[str, dict], back: dict[str, str]) -> None:
    """The committed runs' folders as they were before the migration: named by the old hashes."""
    for name, record in committed.items():
        old, config = back[record["config_hash"]], record["config"]
        job = outputs / config["run"]["group"] / config["run"]["name"]
        checkpoints = job / (old if MIGRATED[name] == "hash folder" else "") / "checkpoints"
        checkpoints.mkdir(parents=True)
        (checkpoints / "CONFIG_HASH").write_text(old + "\n")
        (job / ".hydra").mkdir()
        saved = {**config, "run": {**config["run"], "records": str(records)}}  # outside the hash: where records are
        saved["data"] = {**config["data"], "content": record["data_content"]}  # where folders of then held it
        if "paths" in config:
            saved["paths"] = {**config["paths"], "records_dir": str(records)}
        OmegaConf.save(OmegaConf.create(saved), job / ".hydra/config.yaml")


def _check_run_folders(records: Path, outputs: Path, committed: dict[str, dict], back: dict[str, str]) -> None:
    for record in committed.values():
        new, old = record["config_hash"], back[record["config_hash"]]
        job = outputs / record["config"]["run"]["group"] / record["config"]["run"]["name"]
        layout = MIGRATED[next(name for name in MIGRATED if name.endswith(f"-{new}.json"))]
        mark = job / (new if layout == "hash folder" else "") / "checkpoints/CONFIG_HASH"
        assert mark.read_text().strip() == new and not (job / old).exists()
        run = find_run(job)
        assert run.config_hash == new and run.record is not None and run.record["status"] == "done"


def test_the_migration_renames_records_references_and_run_folders(tmp_path: Path) -> None:
    """Records and run folders written under the previous hash rule (rebuilt here from the committed records)
    get the hashes a run gets now: record files, the teacher's hash in a distilled record, the dense source's
    folder in a projected one, the ``<hash>`` folders and ``CONFIG_HASH`` marks; the teacher's folder then names
    its record again (what the distillation's teacher check reads). A second run changes nothing."""
    committed = {name: json.loads((RECORDS / name).read_text()) for name in MIGRATED}
    back = {r["config_hash"]: r["migrated_from"][-1] for r in committed.values()}
    records, outputs = tmp_path / "records", tmp_path / "outputs"
    for name, record in committed.items():
        path = records / name.replace(record["config_hash"], back[record["config_hash"]])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_as_before(record, back), indent=1, sort_keys=True))
    _old_run_folders(records, outputs, committed, back)
    assert migrate.main([str(records), "--rehash", "--run-folders", str(outputs)]) == 0

    for name, record in committed.items():
        new, old = record["config_hash"], back[record["config_hash"]]
        migrated = json.loads((records / name).read_text())
        assert not (records / name.replace(new, old)).exists()
        for key in ("config_hash", "migrated_from", "distill", "init_from", "metrics", "config"):
            assert migrated.get(key) == record.get(key), key
    _check_run_folders(records, outputs, committed, back)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert migrate.main([str(records), "--rehash", "--run-folders", str(outputs)]) == 0
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_renaming_a_policy_in_records_renames_the_files_and_keeps_the_hash(tmp_path: Path) -> None:
    name = "quality/sample_de_en-d128-o2-r8-emb29-proj-s2-3ff2d9e047af.json"
    record = json.loads((RECORDS / name).read_text())
    (tmp_path / "quality").mkdir()
    (tmp_path / name).write_text(json.dumps(record))
    assert migrate.main([str(tmp_path), "--rename", "o2-r8-emb29-proj=projected-10x"]) == 0
    renamed = json.loads((tmp_path / "quality/sample_de_en-d128-projected-10x-s2-3ff2d9e047af.json").read_text())
    assert renamed["config"]["shapeshift"]["name"] == "projected-10x"
    assert renamed["config"]["run"]["name"] == "sample_de_en-d128-projected-10x-s2"
    assert renamed["config_hash"] == record["config_hash"] and renamed["migrated_from"] == record["migrated_from"]
    assert not (tmp_path / name).exists()


def test_records_migrated_in_git_move_the_run_folders_and_records_left_elsewhere(tmp_path: Path) -> None:
    """The committed records are migrated already; the run folders of another checkout's outputs, and a record
    written there (a distilled run whose record names its teacher by the old hash), still name the old hashes:
    the committed records' ``migrated_from`` says which, and one command brings both to the new ones."""
    committed = {name: json.loads((RECORDS / name).read_text()) for name in MIGRATED}
    back = {r["config_hash"]: r["migrated_from"][-1] for r in committed.values()}
    records, outputs, lane = tmp_path / "records", tmp_path / "outputs", tmp_path / "lane"
    for name, record in committed.items():
        (records / name).parent.mkdir(parents=True, exist_ok=True)
        (records / name).write_text(json.dumps(record, indent=1, sort_keys=True))
    _old_run_folders(records, outputs, committed, back)
    student = "quality_distill/sample_de_en-d128-o2-r8-emb29-flr3.0-distilled-seq-t1-s3-61093f1046c2.json"
    unmigrated = _as_before(committed[student], back)
    lane.mkdir()
    (lane / "student-copy.json").write_text(json.dumps({**unmigrated, "status": "running"}))
    assert migrate.main([str(records), str(lane / "student-copy.json"), "--rehash", "--run-folders",
                         str(outputs)]) == 0
    _check_run_folders(records, outputs, committed, back)
    for name, record in committed.items():
        assert json.loads((records / name).read_text()) == record  # the migrated records are left as they are
    (copy,) = lane.iterdir()
    assert copy.name == Path(student).name  # <run.name>-<new hash>.json
    assert json.loads(copy.read_text())["distill"]["teacher"]["config_hash"] == "d3c82e297b36"
