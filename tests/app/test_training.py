"""Shared training bookkeeping: how a run ended, and when its record may say "done"."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from shapeshifter.app.training import check_schedule_completed, expected_steps, stopping_callbacks


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
