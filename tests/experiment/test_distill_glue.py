"""GLUE distillation through the Hydra app: logit and hidden-state distillation from a finished dense classifier
run into a narrower student, and the teacher checks (label set, sequence-level refused, unfinished run)."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402
from tiny_configs import glue_cfg  # noqa: E402

from shapeshifter.distill.teacher import TeacherError  # noqa: E402
from shapeshifter.experiment.runner import record_path, run_job  # noqa: E402

WORDS = "the a cat dog sat ran on under mat log quickly slowly big small red blue".split()
pytestmark = pytest.mark.usefixtures("one_thread")


def _compose(tmp: Path, *overrides: str) -> DictConfig:
    """The shared tiny GLUE run on the module's CoLA files, with a 32-wide encoder the students narrow."""
    return glue_cfg(tmp, "+trainer.enable_model_summary=false", "data=glue", "data.task=cola", "data.source=local",
                    f"data.data_dir={tmp / 'glue'}", "glue.batch_size=16", "glue.min_count=1", "arch.d_model=32",
                    "arch.d_ff=64", *overrides)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("glue_distill")
    d = root / "glue" / "cola"
    d.mkdir(parents=True)
    rng = random.Random(0)
    for split, n in (("train", 48), ("validation", 24), ("test", 16)):
        rows = [f"{' '.join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))}\t{i % 2}\t{i}" for i in range(n)]
        (d / f"{split}.tsv").write_text("sentence\tlabel\tidx\n" + "\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def teacher(tmp: Path) -> Path:
    cfg = _compose(tmp, "run.name=teacher")
    folder = tmp / "teacher"
    assert run_job(cfg, folder)["status"] == "done"
    return folder


def test_logit_and_hidden_distillation_into_a_narrower_classifier(tmp: Path, teacher: Path, tmp_path: Path) -> None:
    cfg = _compose(tmp, "run.name=student", "distill=word", "distill.kinds=[word,hidden]",
                   f"distill.teacher={teacher}", "arch.d_model=16", "arch.d_ff=32")
    record = run_job(cfg, tmp_path / "student")
    assert record["status"] == "done" and record["distill"]["kinds"] == ["word", "hidden"]
    assert record["distill"]["teacher"]["config_hash"] == json.loads(
        record_path(OmegaConf.load(teacher / ".hydra" / "config.yaml")).read_text())["config_hash"]
    (last,) = (tmp_path / "student").rglob("last.ckpt")
    state = torch.load(last, weights_only=True, map_location="cpu")["state_dict"]
    assert not any(k.startswith("teacher") for k in state) and "hidden_projection.weight" in state


def test_glue_teacher_checks(tmp: Path, teacher: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sequence distillation is for translation"):
        run_job(_compose(tmp, "distill=sequence", f"distill.teacher={teacher}"), tmp_path / "a")
    with pytest.raises(ValueError, match="attention distillation is for translation"):
        run_job(_compose(tmp, "distill=attention", f"distill.teacher={teacher}"), tmp_path / "a")
    with pytest.raises(TeacherError, match="n_layers 2 vs the student's 1"):
        run_job(_compose(tmp, "distill=hidden", f"distill.teacher={teacher}", "arch.n_layers=1"), tmp_path / "b")
    unfinished = tmp_path / "unfinished"
    shutil.copytree(teacher, unfinished)
    cfg = OmegaConf.load(unfinished / ".hydra" / "config.yaml")
    cfg.run.name = "never-finished"
    OmegaConf.save(cfg, unfinished / ".hydra" / "config.yaml")
    with pytest.raises(TeacherError, match="not a finished run"):
        run_job(_compose(tmp, "distill=word", f"distill.teacher={unfinished}"), tmp_path / "c")
    # another label set: the teacher's record says 3 labels
    other = tmp_path / "labels"
    shutil.copytree(teacher, other)
    cfg = OmegaConf.load(other / ".hydra" / "config.yaml")
    cfg.run.name, cfg.run.records = "three-labels", str(tmp_path / "records")
    OmegaConf.save(cfg, other / ".hydra" / "config.yaml")
    record = json.loads(record_path(OmegaConf.load(teacher / ".hydra" / "config.yaml")).read_text())
    record["task"]["num_labels"] = 3
    record_path(cfg).parent.mkdir(parents=True, exist_ok=True)
    record_path(cfg).write_text(json.dumps(record))
    student = _compose(tmp, "run.name=s", "distill=word", f"distill.teacher={other}")
    with pytest.raises(TeacherError, match="num_labels 3 vs the student's 2"):
        run_job(student, tmp_path / "d")
    assert not list((tmp_path / "d").rglob("*.ckpt"))
