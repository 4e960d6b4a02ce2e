"""Score a trained GLUE checkpoint again, without training: the GLUE side of ``pipelines/evaluate.py``.

The classifier is rebuilt by the run's task (`shapeshifter.glue.task.GlueTask`) as in training (same data, so the same
word vocabulary; same arch and shapeshift policy), the checkpoint's weights are loaded into it strictly, and
Lightning's validate / test loops compute the task's metrics over the whole split, as at the end of training.

Checkpoints are read with ``torch.load(weights_only=True)`` (`experiment.checkpoints.load_checkpoint`): only
tensors and plain containers are unpickled, never arbitrary objects, and a file that needs more is refused with
one line naming it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from shapeshifter.experiment.checkpoints import load_checkpoint, load_state

SPLITS = ("valid", "test")


def build_evaluation_module(task: Any) -> Any:
    """The task's LightningModule over the data already in ``task.dm``, with factors drawn at random rather than
    projected (the checkpoint replaces every weight, and projecting a pretrained encoder only costs time)."""
    task.init = "random"
    return task.build_module({})


def load_weights(module: Any, checkpoint: Path) -> None:
    """The classifier's weights from a Lightning checkpoint (safe loader, strict match, errors naming the file)."""
    state = load_checkpoint(checkpoint)["state_dict"]
    prefix = "model."
    load_state(module.model, {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, checkpoint)


def evaluation_trainer() -> Any:
    """A bare Trainer for one evaluation pass: no logger, no checkpoints, no progress bar, one device."""
    import lightning as L

    return L.Trainer(accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False)


def split_names(dm: Any, split: str) -> list[str]:
    """The data splits behind ``valid`` or ``test`` (MNLI has two of each)."""
    return dm.validation_split_names if split == "valid" else dm.test_split_names


def run_split(trainer: Any, module: Any, dm: Any, split: str) -> float:
    """Validate or test ``module`` on ``split``; returns the seconds it took."""
    if not split_names(dm, split):
        raise ValueError(f"task {dm.spec.name!r} has no {split} split in this run's data")
    t0 = time.perf_counter()
    if split == "valid":
        trainer.validate(module, datamodule=dm, verbose=False)
    else:
        trainer.test(module, datamodule=dm, verbose=False)
    return time.perf_counter() - t0


def evaluate_glue(task: Any, checkpoint: Path, split: str = "test") -> dict[str, Any]:
    """Scores of ``checkpoint`` (a run of ``task``, a `GlueTask` over the run's config) on its validation
    (``valid``) or test split(s).

    Returns a JSON-able report; ``metrics`` is empty for a split without labels (GLUE's hidden test sets).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    task.validate()
    dm = task.load_data()
    module = build_evaluation_module(task)
    load_weights(module, checkpoint)
    seconds = run_split(evaluation_trainer(), module, dm, split)
    scores = task.scores(module)
    names = split_names(dm, split)
    return {"task": dm.spec.name, "split": split, "splits": names, "checkpoint": str(checkpoint),
            "examples": {s: len(dm.datasets[s]) for s in names},
            "metrics": scores["validation" if split == "valid" else "test"],
            "main_metric": scores["main_metric"],
            "majority_rate": {s: scores["majority_rate"].get(s) for s in names},
            "seconds": seconds}
