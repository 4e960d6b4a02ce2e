"""The ``paths``, ``logger`` and ``callbacks`` groups: runs work from any directory, and none of the groups moves a
config hash (committed records and resuming sweeps are keyed by them), except early stopping, which changes
results and is hashed as ``ckpt.patience``."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from shapeshifter.experiment.records import config_hash, write_record  # noqa: E402
from shapeshifter.experiment.runner import data_identity, record_path, run_hash, run_job  # noqa: E402
from shapeshifter.experiment.sweep import compose_cfg  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"

# Hashes of committed records (results/records/<table>/<name>-<hash>.json) and the jobs that made them: if one of
# these moves, every finished run of that kind would be re-run and resumed sweeps would start afresh.
PINNED = {
    ("experiment=quality/grid_10x", "+scale=cpu", "seed=1", "shapeshift=study/o2_r8_emb29"): "16ebd8d88528",
    ("experiment=quality/glue_grid", "+scale=cpu", "seed=1", "shapeshift=study_glue/o2_r8_emb44"): "b92646c515f1",
    # results/demo/records: make demo rewrites these files in place; another hash would add a second record per row
    ("experiment=demo", "shapeshift=study/o2_r8_emb29_proj"): "a9c37fcf2277",
    ("experiment=glue_table/pretrained", "+scale=smoke_glue"): "a3e00f932e94",
    ("experiment=ablation/iwslt14", "+scale=smoke", "rank=4", "scheme=exact", "layers=all"): "cc8dd369e461",
    # shapeshift.init_from names a run folder under run.outputs: hashed below it, so run.outputs may move; the
    # committed record was made with +scale=cpu, whose labels (scale.name, scale.suffix) the hash leaves out
    ("experiment=quality/why", "optim.factor_lr_scale=3.0", "shapeshift=study/o2_r8_emb29_proj",
     "shapeshift.init_from=${run.outputs}/quality${oc.select:scale.suffix,''}/${data.name}-d128-dense-s${seed}"):
        "e0f146d80dde",
}
NEUTRAL = ["logger=csv", "logger=none", "callbacks=lr_monitor", "paths.root_dir=/elsewhere", "run.records=/tmp/r",
           "run.outputs=/tmp/o", "run.threads=1"]


def composed_hash(*overrides: str) -> str:
    """The hash a job's record is named by (with its data's identity, as the job computes it)."""
    return run_hash(compose_cfg(CONF, list(overrides)))


@pytest.mark.parametrize("job", list(PINNED), ids=[job[0].split("=")[1] for job in PINNED])
def test_committed_config_hashes_are_pinned(job: tuple[str, ...]) -> None:
    assert composed_hash(*job) == PINNED[job]


def test_paths_logger_and_callbacks_leave_the_hash_alone_early_stopping_does_not(monkeypatch, tmp_path) -> None:
    import fairseq  # noqa: F401  (registers its own ConfigStore groups: ours must not collide)

    job = next(iter(PINNED))
    for override in NEUTRAL:
        assert composed_hash(*job, override) == PINNED[job], override
    monkeypatch.chdir(tmp_path)  # started from another directory: same hash
    assert composed_hash(*job) == PINNED[job]
    patient = compose_cfg(CONF, ["callbacks=early_stopping"])
    assert patient.ckpt.patience == 5 and "callbacks" not in patient
    assert composed_hash("callbacks=early_stopping") != composed_hash()
    both = compose_cfg(CONF, ["callbacks=[lr_monitor,early_stopping]", "experiment=quality/translation"])
    assert both.ckpt.patience == 5 and both.callbacks.lr_monitor.logging_interval == "step"  # the choice wins


def test_run_folders_and_records_land_in_the_checkout_from_any_directory(monkeypatch, tmp_path) -> None:
    from shapeshifter.translation.data_node import data_config

    monkeypatch.chdir(tmp_path)
    cfg = compose_cfg(CONF, ["experiment=demo"])
    assert Path(cfg.paths.root_dir).resolve() == ROOT.resolve()
    assert record_path(cfg) == ROOT / "results/demo/records/demo" / f"{cfg.run.name}-{run_hash(cfg)}.json"
    hydra = compose_cfg(CONF, ["experiment=demo"], hydra_config=True).hydra
    assert hydra.run.dir == f"{ROOT}/outputs/demo/{cfg.run.name}"
    assert cfg.data.raw_dir == "data/sample/de-en"  # hashed: stays relative in the config ...
    assert Path(data_config(cfg).raw_dir) == ROOT / "data/sample/de-en"  # ... and is read from the checkout
    absolute = compose_cfg(CONF, [f"run.records={tmp_path / 'r'}", f"run.outputs={tmp_path / 'o'}"])
    assert absolute.paths.records_dir == str(tmp_path / "r") and absolute.paths.output_dir == str(tmp_path / "o")


@pytest.mark.parametrize("where", ["checkout", "elsewhere"])
def test_records_name_the_checkout_relatively_wherever_the_run_started(where: str, monkeypatch, tmp_path) -> None:
    import json

    monkeypatch.chdir(ROOT if where == "checkout" else tmp_path)
    cfg = compose_cfg(CONF, [])
    config, content = OmegaConf.to_container(cfg, resolve=True), data_identity(cfg)
    weights = str(ROOT / "outputs" / "default" / "run" / "best.ckpt")
    record = {"config": config, "config_hash": config_hash(config, content), "evaluated_weights": weights}
    written = json.loads(write_record(record, tmp_path / "record.json").read_text())
    assert written["config"]["paths"] == {"root_dir": ".", "output_dir": "outputs", "records_dir": "results/records"}
    assert written["evaluated_weights"] == "outputs/default/run/best.ckpt"
    assert config_hash(written["config"], content) == record["config_hash"] == composed_hash()


@pytest.mark.parametrize(("overrides", "message"), [
    (["+callbacks.swa.lr=0.1"], "callbacks.swa is not a known callback"),
    (["callbacks=lr_monitor", "callbacks.lr_monitor.logging_interval=batch"], "must be one of"),
    (["callbacks=lr_monitor", "logger=none"], "logger=none has no logger"),
    (["+logger.tensorboard.enabled=true"], "logger.tensorboard is not a logger"),
])
def test_bad_groups_fail_before_any_work(overrides: list[str], message: str, tmp_path: Path) -> None:
    cfg = compose_cfg(CONF, [*overrides, f"run.records={tmp_path}"])
    with pytest.raises(ValueError, match=message):
        run_job(cfg, tmp_path / "out")
    assert not list(tmp_path.rglob("*.json"))


def test_lr_monitor_logs_to_csv_and_logger_none_writes_no_log(tmp_path: Path) -> None:
    import csv

    import torch

    torch.set_num_threads(1)
    tiny = ["experiment=glue/snli_demo", "glue.max_examples=32", "glue.batch_size=32", "glue.max_length=32",
            "arch.d_model=16", "arch.d_ff=32", "arch.n_layers=1", "trainer.max_epochs=1",
            "trainer.progress_bar=none", "+trainer.enable_model_summary=false", "trainer.log_every_n_steps=1",
            f"run.records={tmp_path / 'r'}"]
    record = run_job(compose_cfg(CONF, [*tiny, "logger=csv", "callbacks=lr_monitor"]), tmp_path / "a")
    with open(tmp_path / "a" / record["config_hash"] / "csv" / "metrics.csv") as fh:
        assert any(name.startswith("lr-AdamW") for name in next(csv.reader(fh)))
    silent = run_job(compose_cfg(CONF, [*tiny, "logger=none", "seed=2"]), tmp_path / "b")
    assert silent["status"] == "done" and not (tmp_path / "b" / silent["config_hash"] / "csv").exists()
    assert not (tmp_path / "a" / record["config_hash"] / "wandb").exists()  # logger=csv: no W&B run
