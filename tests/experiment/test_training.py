"""Shared training bookkeeping: how a run ended, and when its record may say "done"."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from shapeshifter.experiment.training import (
    check_schedule_completed,
    expected_steps,
    learning_curve,
    stopping_callbacks,
)


def test_expected_steps_counts_the_batches_the_trainer_takes() -> None:
    trainer = SimpleNamespace(num_training_batches=30, accumulate_grad_batches=1)
    assert expected_steps(trainer, max_epochs=3) == 90
    assert expected_steps(trainer, max_epochs=3, max_steps=40) == 40
    assert expected_steps(trainer, max_epochs=-1, max_steps=40) == 40
    assert expected_steps(SimpleNamespace(num_training_batches=30, accumulate_grad_batches=4), 2) == 16


def test_a_run_short_of_its_schedule_is_not_finished() -> None:
    check_schedule_completed({"steps": 90, "epochs": 3, "stopped_by": "max_epochs"}, 90)
    check_schedule_completed({"steps": 40, "epochs": 2, "stopped_by": "early_stopping"}, 90)
    with pytest.raises(RuntimeError, match="after 45 of 90 optimizer steps"):
        check_schedule_completed({"steps": 45, "epochs": 2, "stopped_by": "max_epochs"}, 90)


def test_early_stopping_only_with_a_patience() -> None:
    assert stopping_callbacks(None, "valid_loss", "min") == [] and stopping_callbacks(0, "valid_loss", "min") == []
    (stopper,) = stopping_callbacks(4, "val/accuracy", "max")
    assert (stopper.monitor, stopper.mode, stopper.patience) == ("val/accuracy", "max", 4)


def _checkpoint(path: Path, value: float) -> Path:
    import torch

    torch.save({"state_dict": {"w": torch.full((64,), value)}, "epoch": int(value)}, path)
    return path


def test_resume_point_prefers_last_and_moves_a_damaged_one_aside(tmp_path: Path) -> None:
    from shapeshifter.experiment.training import resume_point

    assert resume_point(tmp_path) is None  # nothing to resume: a fresh start
    prev = _checkpoint(tmp_path / "last.prev.ckpt", 1.0)
    last = _checkpoint(tmp_path / "last.ckpt", 2.0)
    assert resume_point(tmp_path) == last

    last.write_bytes(last.read_bytes()[:-100])  # truncated
    assert resume_point(tmp_path, move_damaged=False) == prev and last.is_file()  # a DDP rank > 0 only reads
    assert resume_point(tmp_path) == prev
    assert not last.exists() and (tmp_path / "last.ckpt.corrupt").is_file()  # kept for inspection

    last.write_bytes(b"not a checkpoint")  # damaged again, and the previous one too: both aside, fresh start
    prev.write_bytes(prev.read_bytes()[:10])
    assert resume_point(tmp_path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt.corrupt", "last.ckpt.corrupt.1",
                                                          "last.prev.ckpt.corrupt"]


def test_last_checkpoint_keeps_the_one_it_replaces(tmp_path: Path) -> None:
    import torch

    from shapeshifter.experiment.training import last_checkpoint_callback

    callback = last_checkpoint_callback(tmp_path)
    trainer = SimpleNamespace(is_global_zero=True, global_step=0, loggers=[],
                              save_checkpoint=lambda path, weights_only=False: _checkpoint(Path(path), trainer.step))
    for trainer.step in (1.0, 2.0, 3.0):
        callback._save_checkpoint(trainer, str(tmp_path / "last.ckpt"))
    load = lambda name: torch.load(tmp_path / name, weights_only=True)["epoch"]  # noqa: E731
    assert (load("last.ckpt"), load("last.prev.ckpt")) == (3, 2)


def test_learning_curve_keeps_one_point_per_validated_epoch(tmp_path: Path) -> None:
    log = tmp_path / "metrics.csv"
    log.write_text("epoch,step,train_loss_step,train_loss_epoch,valid_loss\n"
                   "0,9,9.5,,\n"            # a step row: not part of the curve
                   "0,19,,,8.25\n"          # validation and the epoch's training loss come on separate rows
                   "0,19,,9.0,\n"
                   "1,29,8.0,,\n"
                   "1,39,,8.5,\n")          # killed before epoch 1 validated: no point for it
    assert learning_curve(log, "valid_loss") == [{"epoch": 0, "valid_loss": 8.25, "train_loss_epoch": 9.0}]
    assert learning_curve(log, "valid_loss", epochs=0) == []  # a value logged after the last trained epoch
    assert learning_curve(log, None) == [] and learning_curve(tmp_path / "absent.csv", "valid_loss") == []
