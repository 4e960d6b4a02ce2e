"""Distillation through the Hydra app on a slice of the committed sample: teacher checks before any work, the
record's distillation fields, the sequence-level stage's cache and resume, and the hash of distill=none."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from tiny_configs import TINY_TRANSLATION

from shapeshifter.distill.teacher import TeacherError
from shapeshifter.experiment.records import config_hash, semantic_config
from shapeshifter.experiment.runner import record_path, run_hash, run_job

pytestmark = pytest.mark.usefixtures("one_thread")
CONF = Path(__file__).resolve().parents[2] / "conf"


def compose_cfg(tmp: Path, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=[
            f"data.raw_dir={tmp / 'raw'}", f"data.work_dir={tmp / 'work'}", f"run.records={tmp / 'records'}",
            *TINY_TRANSLATION, "ckpt.monitor=valid_loss", "seed=5", *overrides])


def finished_run(cfg: DictConfig, folder: Path) -> dict:
    """Train ``cfg`` into ``folder``; the job keeps its composed config there (as Hydra's app does), so the
    folder serves as a teacher without pipelines/train.py."""
    record = run_job(cfg, folder)
    assert (folder / ".hydra" / "config.yaml").is_file()
    return record


@pytest.fixture(scope="module")
def teacher(sample: Path) -> Path:
    folder = sample / "teacher"
    assert finished_run(compose_cfg(sample, "run.name=teacher"), folder)["status"] == "done"
    return folder


def test_distill_none_keeps_every_existing_hash(sample: Path) -> None:
    cfg = compose_cfg(sample)
    assert list(cfg.distill.kinds) == []
    without = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "distill"}
    assert config_hash(OmegaConf.to_container(cfg, resolve=True)) == config_hash(without)
    distilled = compose_cfg(sample, "distill=word", "distill.teacher=x")
    assert semantic_config(OmegaConf.to_container(distilled, resolve=True))["distill"]["kinds"] == ["word"]
    other_alpha = compose_cfg(sample, "distill=word", "distill.teacher=x", "distill.alpha=0.9")
    hashes = {config_hash(OmegaConf.to_container(c, resolve=True)) for c in (cfg, distilled, other_alpha)}
    assert len(hashes) == 3


def _fails_before_work(sample: Path, tmp_path: Path, match: str, *overrides: str) -> None:
    cfg = compose_cfg(sample, "run.name=student", *overrides)
    with pytest.raises((TeacherError, ValueError), match=match):
        run_job(cfg, tmp_path / "student")
    path = record_path(cfg)
    assert not path.exists() or json.loads(path.read_text())["status"] != "done"
    assert not list((tmp_path / "student").rglob("*.ckpt"))


def test_teacher_checks_fail_before_any_work(sample: Path, teacher: Path, tmp_path: Path) -> None:
    _fails_before_work(sample, tmp_path, "no such run folder .*add run.records=", "distill=word",
                       f"distill.teacher={tmp_path / 'nope'}")
    _fails_before_work(sample, tmp_path, "needs distill.teacher", "distill=word")
    _fails_before_work(sample, tmp_path, "distill.kinds is empty", f"distill.teacher={teacher}")
    _fails_before_work(sample, tmp_path, "unknown kind", "distill=word", "distill.kinds=[words]",
                       f"distill.teacher={teacher}")
    _fails_before_work(sample, tmp_path, "encoder_layers 1 vs the student's 2", "distill=hidden",
                       "arch.overrides.encoder_layers=2", f"distill.teacher={teacher}")
    # unfinished: the run folder is there, its record is not "done"
    unfinished = tmp_path / "unfinished"
    shutil.copytree(teacher, unfinished)
    cfg = OmegaConf.load(unfinished / ".hydra" / "config.yaml")
    cfg.run.name = "never-finished"
    OmegaConf.save(cfg, unfinished / ".hydra" / "config.yaml")
    _fails_before_work(sample, tmp_path, "not a finished run", "distill=word", f"distill.teacher={unfinished}")
    # other data: the teacher's data identity (its run folder's .hydra/data.json) differs from the student's
    other = tmp_path / "other_data"
    shutil.copytree(teacher, other)
    cfg = OmegaConf.load(other / ".hydra" / "config.yaml")
    cfg.run.records = str(tmp_path / "records")
    OmegaConf.save(cfg, other / ".hydra" / "config.yaml")
    (other / ".hydra" / "data.json").write_text(json.dumps({"content": "sha256:0000000000000000"}))
    record = json.loads(record_path(OmegaConf.load(teacher / ".hydra" / "config.yaml")).read_text())
    moved = record_path(cfg, run_hash(cfg, "sha256:0000000000000000"))
    moved.parent.mkdir(parents=True, exist_ok=True)
    moved.write_text(json.dumps(record))
    _fails_before_work(sample, tmp_path, "trained on other data", "distill=word", f"distill.teacher={other}")


def test_a_teacher_with_another_dictionary_is_refused_before_training(sample: Path, teacher: Path,
                                                                      tmp_path: Path) -> None:
    wrong = tmp_path / "wrong_dict"
    shutil.copytree(teacher, wrong)
    cfg = OmegaConf.load(wrong / ".hydra" / "config.yaml")
    shutil.copytree(Path(cfg.data.work_dir), tmp_path / "work")
    dict_en = tmp_path / "work" / "data-bin" / "dict.en.txt"
    lines = dict_en.read_text().splitlines()
    lines[3], lines[4] = lines[4], lines[3]  # same size, two symbols swapped
    dict_en.write_text("\n".join(lines) + "\n")
    cfg.data.work_dir = str(tmp_path / "work")  # a data path: the config hash (and so the record) stays the teacher's
    OmegaConf.save(cfg, wrong / ".hydra" / "config.yaml")
    _fails_before_work(sample, tmp_path, "target dictionary differs .* symbol 7", "distill=word",
                       f"distill.teacher={wrong}")


def test_word_and_hidden_distillation_records_the_teacher_and_never_saves_it(sample: Path, teacher: Path,
                                                                           tmp_path: Path) -> None:
    import torch

    cfg = compose_cfg(sample, "run.name=word-hidden", "distill=word", "distill.kinds=[word,hidden]",
                      f"distill.teacher={teacher}", "arch.overrides.encoder_embed_dim=16",
                      "arch.overrides.decoder_embed_dim=16")  # a narrow student: the projection is used
    record = run_job(cfg, tmp_path / "run")
    assert record["status"] == "done"
    saved = json.loads(Path(record["_path"]).read_text())
    teacher_record = json.loads(record_path(OmegaConf.load(teacher / ".hydra" / "config.yaml")).read_text())
    assert saved["distill"]["teacher"]["config_hash"] == teacher_record["config_hash"] != saved["config_hash"]
    assert saved["distill"]["kinds"] == ["word", "hidden"] and saved["distill"]["alpha"] == 0.5
    assert saved["timings"]["train_step_s"] > 0
    (last,) = (tmp_path / "run").rglob("last.ckpt")
    state = torch.load(last, weights_only=True, map_location="cpu")["state_dict"]
    assert not any(k.startswith("teacher") for k in state)
    assert any(k.startswith("hidden_projection") for k in state)  # resumable; never exported (not in model.)
    from shapeshifter.translation.export import load_export
    from shapeshifter.translation.fairseq_model import unique_parameter_count
    from shapeshifter.translation.run_model import export_run

    export_run(tmp_path / "run", tmp_path / "export")
    exported = load_export(tmp_path / "export").model  # the student alone: its own size, no projection
    assert unique_parameter_count(exported) == saved["params"]["total"]


def test_attention_distillation_runs_records_its_weight_and_leaves_the_other_kinds_hashes(sample: Path,
                                                                                          teacher: Path,
                                                                                          tmp_path: Path) -> None:
    cfg = compose_cfg(sample, "run.name=attention", "distill=attention", f"distill.teacher={teacher}",
                      "distill.attention_weight=0.5")
    assert "attention_weight" not in compose_cfg(sample, "distill=hidden", "distill.teacher=x").distill
    record = run_job(cfg, tmp_path / "run")
    saved = json.loads(Path(record["_path"]).read_text())
    assert saved["status"] == "done" and saved["distill"]["kinds"] == ["attention"]
    assert saved["config"]["distill"]["attention_weight"] == 0.5
    _fails_before_work(sample, tmp_path / "deeper", "decoder_layers 1 vs the student's 2", "distill=attention",
                       f"distill.teacher={teacher}", "arch.overrides.decoder_layers=2")


def test_sequence_stage_decodes_once_resumes_after_a_kill_and_is_reused(sample: Path, teacher: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from shapeshifter.translation import distill_stage as sequence
    from shapeshifter.translation.datamodule import TranslationDataModule
    from shapeshifter.translation.export import build_model
    from shapeshifter.translation.run_model import read_run

    model = build_model(read_run(teacher)).model
    data_bin = Path(OmegaConf.load(teacher / ".hydra" / "config.yaml").data.work_dir) / "data-bin"
    dm = TranslationDataModule(str(data_bin), "de", "en", max_tokens=1024)
    n = len(dm.load_split("train"))
    options = dict(beam=1, max_len_a=1.0, max_len_b=5, lenpen=1.0, max_tokens=1024, chunk_sentences=n // 3,
                   progress=False)
    real, calls = sequence.decode_chunk, []

    def killed_after_two(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the job is killed while decoding the third chunk
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(sequence, "decode_chunk", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        sequence.sequence_data_bin(model, dm, tmp_path, "k", with_references=False, **options)
    assert len(list((tmp_path / "seq-k" / "chunks").glob("*.json"))) == 2
    monkeypatch.setattr(sequence, "decode_chunk", lambda *a, **k: (calls.append(a[2]), real(*a, **k))[1])
    stage = sequence.sequence_data_bin(model, dm, tmp_path, "k", with_references=False, **options)
    assert not stage.reused and stage.sentences == n and stage.decode_s > 0
    decoded = sorted(i for ids in calls for i in ids)
    assert decoded == list(range(n))  # every sentence decoded exactly once across the kill
    calls.clear()
    again = sequence.sequence_data_bin(model, dm, tmp_path, "k", with_references=False, **options)
    assert again.reused and again.data_bin == stage.data_bin and calls == []
    student = TranslationDataModule(str(stage.data_bin), "de", "en", max_tokens=1024)
    train = student.load_split("train")
    assert len(train) == n and len(student.load_split("valid")) == len(dm.load_split("valid"))
    chunk = json.loads((tmp_path / "seq-k" / "chunks" / "00000.json").read_text())["hypotheses"]
    assert train.tgt[0].tolist() == chunk["0"] and train.src[0].tolist() == dm.load_split("train").src[0].tolist()
    both = sequence.sequence_data_bin(model, dm, tmp_path, "k", with_references=True, **options)
    mixed = TranslationDataModule(str(both.data_bin), "de", "en", max_tokens=1024).load_split("train")
    assert len(mixed) == 2 * n and calls == []  # the same decoded chunks, references added
    assert mixed.tgt[0].tolist() == dm.load_split("train").tgt[0].tolist() and mixed.tgt[n].tolist() == chunk["0"]


def test_a_sequence_distilled_run_records_the_teachers_decoding_time(sample: Path, teacher: Path,
                                                                    tmp_path: Path) -> None:
    cfg = compose_cfg(sample, "run.name=seq", "distill=sequence", f"distill.teacher={teacher}", "distill.beam=1")
    record = run_job(cfg, tmp_path / "run")
    assert record["status"] == "done"
    assert record["timings"]["teacher_decode_s"] > 0 and record["distill"]["sequence"]["sentences"] > 0
    assert record["distill"]["kinds"] == ["sequence"] and run_hash(cfg) == record["config_hash"]


def test_a_student_run_again_with_its_outputs_elsewhere_is_skipped(sample: Path, teacher: Path, tmp_path: Path) -> None:
    """``reproduce.py --outputs <another path to the same runs>``: the teacher is named below ``run.outputs``, so
    the finished student is found by its hash and not trained again."""
    outputs = tmp_path / "outputs"
    (outputs / "grp").mkdir(parents=True)
    (outputs / "grp" / "teacher").symlink_to(teacher)
    (tmp_path / "mounted").symlink_to(outputs)  # the same folder under another absolute path
    job = ["run.name=student", "run.group=grp", "distill=word", "distill.teacher=${run.outputs}/grp/teacher"]
    first = run_job(compose_cfg(sample, *job, f"run.outputs={outputs}"), outputs / "grp" / "student")
    assert first["status"] == "done"
    again = compose_cfg(sample, *job, f"run.outputs={tmp_path / 'mounted'}")
    assert again.distill.teacher == str(tmp_path / "mounted" / "grp" / "teacher")
    skipped = run_job(again, tmp_path / "mounted" / "grp" / "student")
    assert skipped["config_hash"] == first["config_hash"] and skipped["finished_at"] == first["finished_at"]
    assert len(list((outputs / "grp" / "student").rglob("last.ckpt"))) == 1  # trained once
