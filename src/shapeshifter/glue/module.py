"""LightningModule that trains any ``model(input_ids, attention_mask, token_type_ids) -> logits`` on a task.

Validation/test metrics are computed once per epoch over the whole split (MCC, F1 and correlations are
not averages of per-batch values). MNLI's two validation loaders are told apart by dataloader index,
which follows ``task_spec.validation_splits``.

Under DDP each rank evaluates a contiguous block of a split; the blocks' predictions are gathered in rank
order (the split's order) before any metric, so every rank computes the metrics of the whole split and
``examples`` counts what was scored. The evaluation loss is logged with ``sync_dist`` (example-weighted over
the ranks).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from shapeshifter.distributed import ALREADY_REDUCED, all_gather_objects, rank_and_world, rank_seed
from shapeshifter.glue.metrics import glue_metrics
from shapeshifter.glue.tasks import TaskSpec, split_tag
from shapeshifter.optim import param_groups

__all__ = ["GlueClassifierModule", "linear_warmup_decay", "reconstruction_errors"]


def linear_warmup_decay(step: int, warmup_steps: int, max_steps: int) -> float:
    """LR multiplier: 0 -> 1 over ``warmup_steps``, then linearly to 0 at ``max_steps`` (BERT schedule)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if max_steps <= warmup_steps:
        return 1.0
    return max(0.0, (max_steps - step) / (max_steps - warmup_steps))


def reconstruction_errors(report: Any) -> dict[str, float]:
    """``{layer name: relative reconstruction error}`` from a shapeshift report (empty if none recorded)."""
    if report is None:
        return {}
    data = report.to_dict() if hasattr(report, "to_dict") else report
    out: dict[str, float] = {}
    for i, layer in enumerate(data.get("layers", [])):
        err = layer.get("reconstruction_error")
        if err is not None:
            out[str(layer.get("name", i))] = float(err)
    return out


class GlueClassifierModule(L.LightningModule):
    """Cross-entropy (MSE for regression) training with AdamW and a linear warmup/decay schedule.

    ``shapeshift_report`` (from :func:`shapeshifter.glue.models.apply_shapeshift`) is kept for the run
    record; its per-layer reconstruction errors are sent to the loggers at the start of training and
    included in :meth:`final_metrics`.

    With a ``seed``, the torch RNG is reseeded with ``seed + global_step`` before every update (as in the
    translation module), so dropout masks depend only on the step and a run resumed from a checkpoint
    reproduces an uninterrupted one (Lightning does not restore the RNG state).
    """

    def __init__(
        self,
        model: nn.Module,
        task_spec: TaskSpec,
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        warmup_steps: int = 0,
        max_steps: int = 1000,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        shapeshift_report: Any = None,
        validation_splits: list[str] | None = None,
        test_splits: list[str] | None = None,
        seed: int | None = None,
        factor_lr_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.spec = task_spec
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.warmup_steps, self.max_steps = warmup_steps, max_steps
        self.seed = seed
        self.factor_lr_scale = factor_lr_scale
        self.first_step: int | None = None  # global step when this fit started training (None: it did not)
        self.shapeshift_report = shapeshift_report
        self.validation_splits = list(validation_splits or task_spec.validation_splits)
        self.test_splits = list(test_splits or task_spec.test_splits)
        self.save_hyperparameters(ignore=["model", "task_spec", "shapeshift_report", "teacher"])  # objects
        self._outputs: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.metrics: dict[str, float] = {}
        self.examples: dict[str, int] = {}  # split -> predictions gathered at the last evaluation of it
        self.test_predictions: dict[str, torch.Tensor] = {}

    # -- core
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            token_type_ids=batch.get("token_type_ids"),
        )

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.spec.is_regression:
            return F.mse_loss(logits.squeeze(-1), labels.float())
        return F.cross_entropy(logits, labels)

    def _predictions(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.squeeze(-1).float() if self.spec.is_regression else logits.argmax(-1)

    def on_train_batch_start(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        if self.seed is not None:
            torch.manual_seed(rank_seed(self.seed + self.global_step, rank_and_world()[0]))

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss of one training batch and extra terms to log: the task loss here, distillation terms in
        `glue.distill_module`."""
        return self._loss(self(batch), batch["labels"]), {}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, extra = self.training_loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["labels"].shape[0], sync_dist=True)
        for name, value in extra.items():
            self.log(name, value.detach(), batch_size=batch["labels"].shape[0], sync_dist=True)
        return loss

    # -- evaluation
    def _eval_step(self, batch: dict[str, torch.Tensor], split: str, stage: str) -> None:
        logits = self(batch)
        labels = batch["labels"]
        self._outputs.setdefault(split, []).append((self._predictions(logits).cpu(), labels.cpu()))
        if not _unlabeled(labels):
            tag = split_tag(self.spec, split)
            name = f"{stage}/loss" + (f"_{tag}" if tag else "")
            self.log(name, self._loss(logits, labels), batch_size=labels.shape[0], add_dataloader_idx=False,
                     sync_dist=True)

    def validation_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._eval_step(batch, self.validation_splits[dataloader_idx], "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, self.test_splits[dataloader_idx], "test")

    def _epoch_end(self, stage: str, splits: list[str]) -> None:
        for split in splits:  # every rank gathers every split, in the same order
            outs = [out for part in all_gather_objects(self._outputs.pop(split, [])) for out in part]
            if not outs:
                continue
            preds = torch.cat([p for p, _ in outs])
            labels = torch.cat([y for _, y in outs])
            self.examples[split] = len(labels)
            if stage == "test":
                self.test_predictions[split] = preds
            if _unlabeled(labels):
                continue  # GLUE test sets: predictions only
            scores = glue_metrics(self.spec, preds, labels, split=split)
            for key, value in scores.items():
                self.metrics[f"{stage}/{key}"] = value
                self.log(f"{stage}/{key}", value, prog_bar=stage == "val", add_dataloader_idx=False,
                         **ALREADY_REDUCED)

    def on_validation_epoch_start(self) -> None:
        for s in self.validation_splits:
            self._outputs.pop(s, None)

    def on_validation_epoch_end(self) -> None:
        self._epoch_end("val", self.validation_splits)

    def on_test_epoch_end(self) -> None:
        self._epoch_end("test", self.test_splits)

    # -- shapeshift record
    def reconstruction_errors(self) -> dict[str, float]:
        """Per-layer relative reconstruction errors of the projected init (empty when not projected)."""
        return reconstruction_errors(self.shapeshift_report)

    def on_train_start(self) -> None:
        self.first_step = self.global_step
        errors = self.reconstruction_errors()
        if errors and self.loggers:
            record = {f"shapeshift/reconstruction_error/{k}": v for k, v in errors.items()}
            record["shapeshift/reconstruction_error_mean"] = sum(errors.values()) / len(errors)
            for logger in self.loggers:
                logger.log_metrics(record, step=0)

    def final_metrics(self) -> dict[str, float]:
        """Latest validation/test metrics plus reconstruction-error summary, as plain floats."""
        out = dict(self.metrics)
        errors = self.reconstruction_errors()
        if errors:
            out["shapeshift/reconstruction_error_mean"] = sum(errors.values()) / len(errors)
            out["shapeshift/reconstruction_error_max"] = max(errors.values())
        return out

    # -- optimisation
    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW without weight decay on biases and norm parameters; per-step LR schedule."""
        def no_decay(name: str, p: torch.nn.Parameter) -> bool:
            return p.ndim < 2 or "norm" in name.lower() or name.endswith("bias")

        groups = param_groups(self, self.lr, self.factor_lr_scale, self.weight_decay, no_decay)
        opt = torch.optim.AdamW(groups, lr=self.lr, betas=self.betas, eps=self.eps)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: linear_warmup_decay(s, self.warmup_steps, self.max_steps)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _unlabeled(labels: torch.Tensor) -> bool:
    return bool(labels.numel()) and bool((labels == -1).all())
