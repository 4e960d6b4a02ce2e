"""Run folders keyed by config hash: no sharing between configs, the old layout adopted, checkpoints found."""

from __future__ import annotations

from pathlib import Path

import pytest

from shapeshifter.experiment.run_folder import find_checkpoint, run_dir


def test_two_configs_under_one_name_get_separate_folders(tmp_path: Path) -> None:
    a, b = run_dir(tmp_path / "job", "aaaa"), run_dir(tmp_path / "job", "bbbb")
    assert a != b and a.parent == b.parent == tmp_path / "job" and a.is_dir() and b.is_dir()


def test_old_layout_is_adopted_only_by_its_own_config(tmp_path: Path) -> None:
    job = tmp_path / "job"
    (job / "checkpoints").mkdir(parents=True)
    (job / "checkpoints" / "CONFIG_HASH").write_text("aaaa\n")
    (job / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (job / "csv").mkdir()
    other = run_dir(job, "bbbb")
    assert not (other / "checkpoints").exists() and (job / "checkpoints" / "last.ckpt").is_file()
    mine = run_dir(job, "aaaa")
    assert (mine / "checkpoints" / "last.ckpt").read_bytes() == b"x" and (mine / "csv").is_dir()
    assert not (job / "checkpoints").exists()


def test_find_checkpoint_in_a_file_a_run_folder_or_a_job_folder(tmp_path: Path) -> None:
    ckpt = tmp_path / "job" / "aaaa" / "checkpoints" / "best-epoch0003-valid_loss5.00.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    assert find_checkpoint(ckpt) == ckpt
    assert find_checkpoint(tmp_path / "job" / "aaaa") == ckpt
    assert find_checkpoint(tmp_path / "job") == ckpt
    twin = tmp_path / "job" / "bbbb" / "checkpoints" / "best-epoch0001-valid_loss6.00.ckpt"
    twin.parent.mkdir(parents=True)
    twin.write_bytes(b"y")
    with pytest.raises(FileNotFoundError, match="expected exactly one.*aaaa.*bbbb"):
        find_checkpoint(tmp_path / "job")
    with pytest.raises(FileNotFoundError, match="no checkpoint or run folder"):
        find_checkpoint(tmp_path / "nowhere")


def test_records_name_run_outputs_relative_to_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    import json

    from shapeshifter.experiment.records import write_record

    monkeypatch.chdir(tmp_path)
    inside, outside = str(tmp_path / "outputs" / "run" / "best.ckpt"), "/elsewhere/best.ckpt"
    record = {"config": {"data": {"raw_dir": str(tmp_path / "raw")}}, "evaluated_weights": inside,
              "metrics": {"test": {"files": {"tok": inside}}}, "resumed_from": outside, "list": [inside, 1]}
    written = json.loads(write_record(record, tmp_path / "r.json").read_text())
    assert written["evaluated_weights"] == "outputs/run/best.ckpt" == written["metrics"]["test"]["files"]["tok"]
    assert written["resumed_from"] == outside and written["list"] == ["outputs/run/best.ckpt", 1]
    assert written["config"] == record["config"]  # the config is kept as resolved (its hash covers it)
    assert record["evaluated_weights"] == inside  # the caller's record is not changed
