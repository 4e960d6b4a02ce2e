"""Multirun launchers (conf/launcher): joblib processes locally, submitit on SLURM; neither changes a run's hash."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from shapeshifter.experiment.records import config_hash
from shapeshifter.experiment.sweep import compose_cfg

CONF = Path(__file__).resolve().parents[2] / "conf"


def _stop(task, out_dir, record_path):
    raise RuntimeError("the task would run here")


@pytest.mark.parametrize(("launcher", "target"), [
    ("local", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
    ("slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
])
def test_launcher_is_a_hydra_setting_only(launcher: str, target: str) -> None:
    import fairseq  # noqa: F401  (registers its own ConfigStore groups: ours must not collide)

    base = ["experiment=table2/iwslt14", "+scale=smoke", "shapeshift=r1_emb16"]
    plain = compose_cfg(CONF, base, hydra_config=True)
    launched = compose_cfg(CONF, [*base, f"launcher={launcher}"], hydra_config=True)
    assert launched.hydra.launcher._target_ == target
    assert plain.hydra.launcher._target_ != target
    strip = lambda c: {k: v for k, v in OmegaConf.to_container(c, resolve=False).items() if k != "hydra"}  # noqa: E731
    assert {k: v for k, v in strip(plain).items() if k != "run"} == {k: v for k, v in strip(launched).items()
                                                                    if k != "run"}
    assert config_hash(strip(plain)) == config_hash(strip(launched))  # the same runs, skipped when done


def test_local_jobs_share_the_cores(monkeypatch, tmp_path: Path) -> None:
    import torch

    from shapeshifter.experiment import runner

    cfg = compose_cfg(CONF, ["experiment=table2/iwslt14", "+scale=smoke", "launcher=local"])
    assert cfg.run.threads == 1
    seen = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    monkeypatch.setattr(runner, "record_path", lambda c, digest=None: Path("/nonexistent/record.json"))
    monkeypatch.setattr(runner, "run_task", _stop)  # stop right after the thread setting, before any data work
    with pytest.raises(RuntimeError, match="the task would run here"):
        runner.run_job(cfg, tmp_path / "out")
    assert seen == [1]


def test_jobs_without_run_threads_follow_the_shared_rule(monkeypatch, tmp_path: Path) -> None:
    import torch

    from shapeshifter import threads
    from shapeshifter.experiment import runner

    cfg = compose_cfg(CONF, ["experiment=table2/iwslt14", "+scale=smoke"])
    assert cfg.run.threads is None
    seen = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    monkeypatch.setattr(threads, "available_cores", lambda: 4)
    monkeypatch.setenv(threads.JOBS_ENV, "2")  # two jobs share 4 cores: 2 threads each
    monkeypatch.setattr(runner, "record_path", lambda c, digest=None: Path("/nonexistent/record.json"))
    monkeypatch.setattr(runner, "run_task", _stop)  # stop right after the thread setting, before any data work
    with pytest.raises(RuntimeError, match="the task would run here"):
        runner.run_job(cfg, tmp_path / "out")
    assert seen == [2]


def test_slurm_jobs_get_one_gpu_and_resubmission() -> None:
    cfg = compose_cfg(CONF, ["experiment=table2/iwslt14", "+scale=full", "launcher=slurm"], hydra_config=True)
    assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.max_num_timeout > 0
    assert cfg.trainer.accelerator == "gpu" and cfg.run.resume
