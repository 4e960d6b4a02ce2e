"""Training bookkeeping shared by the translation and GLUE runs: early stopping, a step limit that survives a
resume, how a run ended, and the check that it ran its whole schedule before its record may say "done".

Why a step limit of our own: with ``Trainer(max_steps=N)`` Lightning (2.6, ``FitLoop.restarting``) treats a
checkpoint written at the end of an epoch's validation (every ``last.ckpt``) as taken inside that epoch; the
resumed fit replays the finished epoch as an empty one and counts it again, so a run killed during epoch k
stops one epoch early. Runs are therefore epoch-based in Lightning (``max_steps=-1``) and a step limit, when
one is asked for, is `StopAtStep`.

Why a ``last.ckpt`` callback of our own: ``ModelCheckpoint(monitor=..., save_last=True)`` rewrites ``last.ckpt``
only in epochs whose score enters its top k (Lightning 2.6, ``on_validation_end``), so after the last
improvement a resume restarts from the best epoch and trains the epochs after it again (`last_checkpoint_callback`).

Crash safety: every checkpoint Lightning writes goes through `VerifiedCheckpointIO`: a temporary file of its
own in the checkpoint folder, synced and renamed over the old one (Lightning's own atomic save renames from a
temporary folder that may lie on another filesystem, which is a copy), so a kill or a full disk never leaves a
torn ``last.ckpt`` or ``best-*.ckpt``. Every checkpoint Lightning reads (resume, ``validate``/``test`` with
``ckpt_path``) goes through it too: CRC-checked and loaded with ``weights_only=True``, whatever
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says. A file damaged later (a torn copy, changed bytes, a pickle that needs
more than the safe unpickler) is caught by `resume_point`, which moves it aside and resumes from the previous
epoch's ``last.prev.ckpt`` that `LastCheckpoint` keeps.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from shapeshifter.experiment.checkpoints import (
    load_checkpoint,
    save_atomically,
    verify_checkpoint,
)

log = logging.getLogger("shapeshifter")

LAST, PREVIOUS = "last.ckpt", "last.prev.ckpt"


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt`` rewritten after every epoch; the one it replaces is kept as ``last.prev.ckpt``."""

    def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
        path = Path(filepath)
        if trainer.is_global_zero and path.is_file():
            os.replace(path, path.with_name(PREVIOUS))
        super()._save_checkpoint(trainer, filepath)


def last_checkpoint_callback(dirpath: str | Path) -> ModelCheckpoint:
    """``<dirpath>/last.ckpt``, rewritten at the end of every epoch (after its validation), to resume from.

    List it after the monitored checkpoint callback: Lightning runs checkpoint callbacks last and in list order,
    so ``last.ckpt`` then holds that callback's best score and path of the same epoch (and early stopping's
    state).
    """
    return LastCheckpoint(dirpath=str(dirpath), filename="last", monitor=None, save_top_k=1,
                          enable_version_counter=False)


def resume_point(ckpt_dir: Path, move_damaged: bool = True) -> Path | None:
    """The checkpoint to resume from: ``last.ckpt``, else ``last.prev.ckpt``, else None (a fresh start).

    A file that is not a readable checkpoint is moved aside to ``<name>.corrupt[.N]`` (kept for inspection,
    never deleted) with a warning, and the next candidate is tried; ``move_damaged=False`` (the ranks of a DDP
    job other than rank zero, which alone touches files) only skips it.
    """
    for name in (LAST, PREVIOUS):
        path = Path(ckpt_dir) / name
        if not path.is_file():
            continue
        try:
            verify_checkpoint(path)
            return path
        except ValueError as err:
            why = str(err)
        if not move_damaged:
            continue
        aside, n = path.with_name(f"{name}.corrupt"), 1
        while aside.exists():
            aside, n = path.with_name(f"{name}.corrupt.{n}"), n + 1
        os.replace(path, aside)
        log.warning("%s; moved to %s", why, aside.name)
    return None


PATH_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path")


def relocate_checkpoint_paths(checkpoint: dict[str, Any], folder: Path) -> None:
    """Make the paths a checkpoint's ``ModelCheckpoint`` states hold name files in ``folder`` (where the
    checkpoint was read from) when they name another folder: a run folder that was copied or moved then evaluates
    its own ``best-*.ckpt``, not the one of the folder it was copied from (nor fails when that is gone)."""
    here = os.path.realpath(folder)
    for state in (checkpoint.get("callbacks") or {}).values():
        if not isinstance(state, dict) or not state.get("dirpath") or os.path.realpath(state["dirpath"]) == here:
            continue
        moved = _moved_into(here)
        for key in PATH_KEYS:
            if isinstance(state.get(key), str):
                state[key] = moved(state[key])
        if isinstance(state.get("best_k_models"), dict):
            state["best_k_models"] = {moved(k): v for k, v in state["best_k_models"].items()}
        log.info("checkpoint paths of %s relocated to %s (the run folder was copied or moved)", state["dirpath"], here)
        state["dirpath"] = here


def _moved_into(folder: str) -> Callable[[str], str]:
    return lambda path: os.path.join(folder, os.path.basename(path)) if path else path


class VerifiedCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint reads and writes, made safe (module docstring): reads are CRC-checked and use
    ``weights_only=True`` (`experiment.checkpoints.load_checkpoint`; a bad file is a ValueError naming it),
    with the callbacks' paths relocated into the folder read from; writes are atomic in the destination folder."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        save_atomically(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        checkpoint = load_checkpoint(path, map_location=map_location or "cpu")
        relocate_checkpoint_paths(checkpoint, Path(path).parent)
        return checkpoint


def stopping_callbacks(patience: int | None, monitor: str, mode: str) -> list[Callback]:
    """Early stopping on ``monitor`` after ``patience`` validations without improvement (none when unset)."""
    if not patience:
        return []
    return [EarlyStopping(monitor=monitor, mode=mode, patience=int(patience), check_finite=True)]


class StopAtStep(Callback):
    """Stop after ``max_steps`` optimizer steps (validating first, as early stopping does), mid-epoch if need be.

    Replaces ``Trainer(max_steps=...)``, whose resume from an end-of-epoch checkpoint loses an epoch (module
    docstring).
    """

    def __init__(self, max_steps: int) -> None:
        self.max_steps = int(max_steps)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step >= self.max_steps:
            trainer.should_stop = True


def training_summary(trainer: Any, callbacks: list, max_steps: int | None = None) -> dict[str, Any]:
    """Epochs run, why training stopped (early stopping, max_epochs or max_steps) and the best monitored value
    (the one of the checkpoint that is evaluated). ``max_steps``: the step limit when it is not the Trainer's
    (`StopAtStep`)."""
    stopper = next((c for c in callbacks if isinstance(c, EarlyStopping)), None)
    best = next((c for c in callbacks if isinstance(c, ModelCheckpoint) and c.monitor not in (None, "step")), None)
    early = stopper is not None and stopper.stopped_epoch > 0
    if max_steps is None and trainer.max_steps and trainer.max_steps > 0:
        max_steps = trainer.max_steps
    reason = "early_stopping" if early else ("max_steps" if max_steps and trainer.global_step >= max_steps
                                             else "max_epochs")
    out = {"epochs": trainer.current_epoch, "steps": trainer.global_step, "stopped_by": reason,
           "patience": stopper.patience if stopper is not None else None}
    if best is not None and best.best_model_score is not None:
        out.update(monitor=best.monitor, best=float(best.best_model_score))
    return out


def expected_steps(trainer: Any, max_epochs: int | None, max_steps: int | None = None) -> float:
    """Optimizer steps a run that is not stopped early must reach: ``max_epochs`` x the batches the Trainer
    takes per epoch (``limit_train_batches`` counted), capped by ``max_steps``."""
    per_epoch = math.ceil(trainer.num_training_batches / max(1, trainer.accumulate_grad_batches))
    epochs = max_epochs if max_epochs is not None and max_epochs >= 0 else math.inf
    steps = epochs * per_epoch if per_epoch else math.inf
    return min(steps, max_steps) if max_steps is not None and max_steps > 0 else steps


def check_schedule_completed(summary: dict[str, Any], expected: float) -> None:
    """Refuse to call a run finished when it stopped short of its schedule without early stopping (a signal,
    a resume that skipped an epoch): its record is marked "failed" with this error and the next attempt resumes
    from ``last.ckpt``."""
    if summary["stopped_by"] != "early_stopping" and summary["steps"] < expected:
        raise RuntimeError(f"training ended after {summary['steps']} of {expected} optimizer steps "
                           f"(epoch {summary['epochs']}, stopped by {summary['stopped_by']}) without early stopping; "
                           "the run is not finished; rerun the same command to resume from last.ckpt")


CURVE_COLUMNS = ("train_loss_epoch", "val/loss")  # per-epoch values kept beside the monitored one


def learning_curve(metrics_csv: Path | None, monitor: str | None, epochs: int | None = None) -> list[dict[str, float]]:
    """Per-epoch ``monitor`` (the validation value early stopping watches) and training loss, read from the
    run's CSV log (appended across resumes, `loggers.keep_previous_csv`), so a record shows whether its
    run had reached a plateau. Only epochs below ``epochs`` (those trained) count: the evaluation of the best
    checkpoint logs validation values under the epoch after the last, and a resumed run's log holds those of the
    attempt before. ``[]`` without a log or a monitor."""
    import csv

    if monitor is None or metrics_csv is None or not metrics_csv.is_file():
        return []
    by_epoch: dict[int, dict[str, float]] = {}
    with metrics_csv.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if not row.get("epoch"):
                continue
            values = {k: float(row[k]) for k in (monitor, *CURVE_COLUMNS) if row.get(k) not in (None, "")}
            if values:
                by_epoch.setdefault(int(row["epoch"]), {}).update(values)
    return [{"epoch": e, **v} for e, v in sorted(by_epoch.items())
            if monitor in v and (epochs is None or e < epochs)]


def logged_before(metrics_csv: Path | None, epochs: int) -> dict[str, float]:
    """The last value of every metric the run's CSV log holds for its first ``epochs`` epochs. A run resumed
    after its last epoch trains none, so Lightning's ``callback_metrics`` lack what the attempt before logged
    (the last validation, the step times); the log (kept across resumes) still has it."""
    import csv

    if metrics_csv is None or not metrics_csv.is_file():
        return {}
    last: dict[str, float] = {}
    with metrics_csv.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("epoch") not in (None, "") and int(row["epoch"]) < epochs:
                last.update({k: float(v) for k, v in row.items() if k not in ("epoch", "step") and v not in ("", None)})
    return last
