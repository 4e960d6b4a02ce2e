"""The config hash covers what the data is (its identity, kept beside the config), not where it lies: a copy of
the corpus in another folder names the same run, an edited copy another one; the config is never changed in
flight; records and run folders made before the identity existed, or that held it in the config
(``data.content``), migrate to the hash a run of theirs gets now."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from shapeshifter.cli import migrate  # noqa: E402
from shapeshifter.experiment.records import config_hash  # noqa: E402
from shapeshifter.experiment.run_folder import find_run  # noqa: E402
from shapeshifter.experiment.runner import data_identity, run_hash  # noqa: E402
from shapeshifter.experiment.sweep import compose_cfg  # noqa: E402
from shapeshifter.translation.data import DataError  # noqa: E402
from shapeshifter.translation.data.smoke import slice_iwslt_raw  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
DEMO = ["experiment=demo"]


def test_a_copy_of_the_corpus_elsewhere_is_the_same_run_an_edited_copy_is_not(tmp_path: Path) -> None:
    here = compose_cfg(CONF, DEMO)
    shutil.copytree(ROOT / "data/sample/de-en", tmp_path / "copy")
    moved = compose_cfg(CONF, [*DEMO, f"data.raw_dir={tmp_path / 'copy'}", f"data.work_dir={tmp_path / 'w'}"])
    assert run_hash(moved) == run_hash(here) and data_identity(moved) == data_identity(here)
    assert "content" not in moved.data  # hashing leaves the config as composed
    train = tmp_path / "copy/train.tags.de-en.en"
    train.write_bytes(train.read_bytes().replace(b"the", b"teh", 1))
    edited = compose_cfg(CONF, [*DEMO, f"data.raw_dir={tmp_path / 'copy'}"])
    assert run_hash(edited) != run_hash(here)


def test_missing_data_gives_no_finished_run_and_the_job_names_the_folder(tmp_path: Path) -> None:
    overrides = [*DEMO, f"data.raw_dir={tmp_path / 'absent'}"]
    cfg = compose_cfg(CONF, overrides)
    assert run_hash(cfg) != run_hash(compose_cfg(CONF, DEMO)) and data_identity(cfg) is None  # a sweep's skip check
    with pytest.raises(DataError, match=str(tmp_path / "absent")):
        data_identity(compose_cfg(CONF, overrides), fetch=True)  # what run_job does first


def test_glue_files_elsewhere_are_the_same_run(tmp_path: Path) -> None:
    job = ["experiment=quality/glue_grid", "+scale=cpu", "seed=1", "shapeshift=dense"]
    for split in ("train", "validation", "test"):
        shutil.copy(ROOT / f"data/snli/{split}.jsonl", tmp_path / f"{split}-copy.jsonl")
    moved = [f"data.{split}={tmp_path / f'{split}-copy.jsonl'}" for split in ("train", "validation", "test")]
    assert run_hash(compose_cfg(CONF, [*job, *moved])) == run_hash(compose_cfg(CONF, job))
    swapped = [*job, f"data.test={tmp_path / 'validation-copy.jsonl'}"]
    assert run_hash(compose_cfg(CONF, swapped)) != run_hash(compose_cfg(CONF, job))


def _old_style(cfg) -> dict:
    """A resolved config as runs wrote it before the data's identity existed."""
    return OmegaConf.to_container(cfg, resolve=True)


def test_records_and_run_folders_made_before_data_content_migrate_to_the_hash_a_run_gets_now(tmp_path) -> None:
    smoke = ["experiment=demo", "+scale=smoke", f"data.raw_dir={tmp_path / 'raw'}"]
    slice_iwslt_raw(tmp_path / "raw", n_train_lines=40, n_segs=3)
    cfg = compose_cfg(CONF, smoke)
    old_config = _old_style(cfg)
    old, new = config_hash(old_config), run_hash(cfg)
    assert old != new
    job = tmp_path / "outputs" / "job"
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(old_config), job / ".hydra/config.yaml")
    (job / old / "checkpoints").mkdir(parents=True)
    (job / old / "checkpoints/CONFIG_HASH").write_text(old + "\n")
    records = tmp_path / "records"
    records.mkdir()
    weights = f"outputs/job/{old}/checkpoints/best.ckpt"
    (records / f"x-{old}.json").write_text(json.dumps({"config": old_config, "config_hash": old, "status": "done",
                                                       "evaluated_weights": weights}))
    assert migrate.main([str(records), "--data-content", "--rehash", "--run-folders", str(tmp_path / "outputs")]) == 0
    record = json.loads((records / f"{cfg.run.name}-{new}.json").read_text())
    assert record["config_hash"] == new and record["migrated_from"] == [old]
    assert record["evaluated_weights"] == f"outputs/job/{new}/checkpoints/best.ckpt"
    assert not (job / old).exists() and (job / new / "checkpoints/CONFIG_HASH").read_text().strip() == new
    assert find_run(job).config_hash == new  # the folder names its hash again (its .hydra/data.json)
    assert migrate.main([str(records), "--data-content", "--rehash", "--run-folders", str(tmp_path / "outputs")]) == 0
    assert [p.name for p in records.iterdir()] == [f"{cfg.run.name}-{new}.json"]  # a second run changes nothing


def test_records_and_run_folders_holding_data_content_in_the_config_move_it_beside_without_a_hash_moving(
        tmp_path: Path) -> None:
    cfg = compose_cfg(CONF, DEMO)
    content, digest = data_identity(cfg), run_hash(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    config["data"]["content"] = content  # as runs wrote their records and saved configs before
    records, job = tmp_path / "records", tmp_path / "outputs" / "job"
    records.mkdir()
    (records / f"x-{digest}.json").write_text(json.dumps({"config": config, "config_hash": digest}))
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(config), job / ".hydra/config.yaml")
    assert find_run(job).config_hash == digest  # such a folder is still read: the identity taken from its config
    assert migrate.main([str(records), "--data-identity", "--run-folders", str(tmp_path / "outputs")]) == 0
    record = json.loads((records / f"x-{digest}.json").read_text())
    assert "content" not in record["config"]["data"] and record["data_content"] == content
    assert config_hash(record["config"], record["data_content"]) == digest
    assert "content" not in OmegaConf.load(job / ".hydra/config.yaml").data
    assert json.loads((job / ".hydra/data.json").read_text()) == {"content": content}
    run = find_run(job)
    assert run.config_hash == digest and run.data_content == content
    assert migrate.main([str(records), "--rehash"]) == 0 and (records / f"x-{digest}.json").is_file()
