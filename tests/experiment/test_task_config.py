"""The config names its task (``adapter._target_``, set by each ``conf/data`` file) and Hydra builds it; the
node names code, not a result, so every configuration keeps the config hash its committed records and resuming
runs are found by."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import fairseq  # noqa: E402,F401 - registers its ConfigStore groups (model, task, optimizer, ...): none may collide
import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from shapeshifter.experiment.records import config_hash, record_data  # noqa: E402
from shapeshifter.experiment.runner import run_hash  # noqa: E402
from shapeshifter.experiment.task import build_task  # noqa: E402
from shapeshifter.glue.task import GlueTask  # noqa: E402
from shapeshifter.translation.task import TranslationTask  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"

# config hashes computed by the code and configs before ``adapter`` existed (commit d5ea1b6), moved once when the
# hash stopped covering display names (every config names its policy: ``shapeshift.name``) and took references to
# other runs' folders below ``run.outputs``; d3c82e297b36, 62992c64767a and bf0cd3988548 are committed records'
# (results/records/quality, results/records/quality_glue; ``migrated_from`` keeps the hashes they had before)
HASHES = {
    "experiment=demo": "ff339ca69b0a",
    "experiment=quality/translation +scale=cpu seed=1 shapeshift=dense": "d3c82e297b36",
    "experiment=quality/translation seed=2 shapeshift=study/o2_r8_emb29 optim.factor_lr_scale=3.0": "62992c64767a",
    "experiment=quality/distill seed=1 shapeshift=study/o2_r8_emb29 distill=word": "f1402ad32378",
    "experiment=quality/glue_grid +scale=cpu seed=1 shapeshift=dense": "bf0cd3988548",
    "experiment=quality/snli seed=2 shapeshift=dense": "b31cdcdbb474",
    "experiment=glue/scratch data=glue_files data.train=data/snli/train.jsonl "
    "data.validation=data/snli/validation.jsonl data.text_fields=[premise,hypothesis]": "e4b5a1ee683f",
    "experiment=table2/iwslt14 shapeshift=r8_emb64": "bedea2a9c9f2",
    "data=parallel_files data.source_lang=de data.target_lang=en data.trainpref=data/sample/de-en/train.tags.de-en "
    "logger=csv callbacks=lr_monitor": "1cac9eb31fd4",
}


def _compose(overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides.split())


@pytest.mark.parametrize("overrides", sorted(HASHES))
def test_the_task_node_leaves_every_config_hash_as_it_was(overrides: str) -> None:
    cfg = _compose(overrides)
    assert "_target_" in cfg.adapter and "adapter" not in cfg.data
    assert run_hash(cfg) == HASHES[overrides]


@pytest.mark.parametrize(("overrides", "task"), [("experiment=demo", TranslationTask),
                                                 ("experiment=quality/snli", GlueTask)])
def test_each_data_group_names_its_task_and_hydra_builds_it(overrides: str, task: type) -> None:
    cfg = _compose(overrides)
    built = build_task(cfg)
    assert type(built) is task and built.cfg is cfg and built.kind == cfg.data.kind


def test_a_config_saved_before_the_task_node_gets_its_task_from_data_kind() -> None:
    cfg = _compose("experiment=quality/snli")
    saved = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "adapter"])
    assert type(build_task(saved)) is GlueTask
    with pytest.raises(ValueError, match="data.kind must be 'translation' or 'glue', got 'images'"):
        build_task(OmegaConf.create({"data": {"kind": "images"}}))


@pytest.mark.parametrize("record", ["quality/sample_de_en-d128-dense-s1-d3c82e297b36.json",
                                    "quality_glue/snli_sample-d128-dense-s1-bf0cd3988548.json"])
def test_committed_records_keep_their_hash_with_the_task_node(record: str) -> None:
    saved = json.loads((ROOT / "results/records" / record).read_text())
    config = {**saved["config"], "adapter": {"_target_": "shapeshifter.translation.task.TranslationTask"}}
    content = saved["data_content"]
    assert config_hash(config, content) == config_hash(saved["config"], content) == saved["config_hash"]


def test_trainer_callbacks_and_loggers_are_built_from_their_targets(tmp_path: Path) -> None:
    from hydra.errors import InstantiationException
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger

    from shapeshifter.experiment.callbacks import make_callbacks, validate_callbacks
    from shapeshifter.experiment.loggers import make_loggers
    from shapeshifter.experiment.task import build_trainer

    cfg = _compose("experiment=quality/snli logger=csv callbacks=lr_monitor")
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"
    (monitor,) = make_callbacks(cfg)
    assert isinstance(monitor, LearningRateMonitor) and monitor.logging_interval == "step"
    (csv,) = make_loggers(cfg.logger, tmp_path, "r", None, {})
    assert isinstance(csv, CSVLogger) and Path(csv.log_dir) == tmp_path / "csv"

    class Run:  # build_trainer reads the config and the task's extra Trainer options
        def __init__(self, cfg) -> None:
            self.cfg = cfg

        def trainer_options(self) -> dict:
            return {}

    moved = _compose("experiment=quality/snli trainer._target_=shapeshifter.NoTrainer")
    with pytest.raises(InstantiationException, match="shapeshifter.NoTrainer"):
        build_trainer(Run(moved), [], [], tmp_path)
    with pytest.raises(InstantiationException, match="shapeshifter.NoLogger"):
        make_loggers(_compose("logger=csv logger.csv._target_=shapeshifter.NoLogger").logger, tmp_path, "r", None, {})
    with pytest.raises(ValueError, match=r"callbacks.lr_monitor._target_ must be .*LearningRateMonitor"):
        validate_callbacks(_compose("callbacks=lr_monitor "
                                    "callbacks.lr_monitor._target_=lightning.pytorch.callbacks.EarlyStopping"))


def test_glue_configs_made_with_the_translation_settings_migrate_to_the_hash_they_had(tmp_path: Path) -> None:
    """Before the translation task's own settings moved to conf/adapter/translation.yaml, every config held them
    and the hash left them out of GLUE runs; ``--task-settings`` removes them from GLUE records and run folders, so
    each hashes to the hash it was recorded with, and leaves translation configs alone."""
    from shapeshifter.cli import migrate

    own = OmegaConf.to_container(OmegaConf.load(CONF / "adapter" / "translation.yaml"))
    glue = json.loads((ROOT / "results/records/quality_glue/snli_sample-d128-dense-s1-bf0cd3988548.json").read_text())
    old = json.loads(json.dumps(glue))
    for node, settings in own.items():
        if node not in ("adapter", "defaults"):
            old["config"][node] = {**old["config"].get(node, {}), **settings}
    content = glue["data_content"]
    assert config_hash(old["config"], content) != old["config_hash"] == "bf0cd3988548"
    translation = json.loads((ROOT / "results/records/quality/sample_de_en-d128-dense-s1-d3c82e297b36.json")
                             .read_text())
    records, job = tmp_path / "records", tmp_path / "outputs" / "quality_glue" / "snli_sample-d128-dense-s1"
    records.mkdir()
    for name, rec in (("glue.json", old), ("translation.json", translation)):
        (records / name).write_text(json.dumps(rec))
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(old["config"]), job / ".hydra" / "config.yaml")

    assert migrate.main([str(records), "--task-settings", "--run-folders", str(tmp_path / "outputs")]) == 0
    migrated = json.loads((records / "glue.json").read_text())
    assert config_hash(migrated["config"], content) == "bf0cd3988548" and migrated["config"] == glue["config"]
    assert json.loads((records / "translation.json").read_text()) == translation
    saved = OmegaConf.to_container(OmegaConf.load(job / ".hydra" / "config.yaml"))
    assert "eval" not in saved and "monitor" not in saved["ckpt"] and "lr" in saved["optim"]
    assert migrate.main([str(records), "--task-settings"]) == 0  # a second pass changes nothing
    assert json.loads((records / "glue.json").read_text()) == migrated


def test_every_committed_run_record_hashes_to_the_hash_it_is_filed_under() -> None:
    """A record whose config no longer gives its hash is one a rerun would not find (migrate it with
    ``shapeshifter-migrate``); benchmark and analysis records, which hold no run config, are skipped."""
    stale = []
    for path in sorted((ROOT / "results").rglob("*.json")):
        saved = json.loads(path.read_text())
        if not (isinstance(saved, dict) and "config" in saved and "config_hash" in saved):
            continue
        if config_hash(saved["config"], record_data(saved)) != saved["config_hash"]:
            stale.append(str(path.relative_to(ROOT)))
        assert path.stem.endswith(saved["config_hash"]), path
    assert not stale, stale
