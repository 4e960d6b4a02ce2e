"""`GlueClassifierModule` with a frozen teacher classifier: logit distillation (``word`` in the ``distill`` group:
``(1 - alpha) * CE + alpha * T^2 * KL`` on the class distribution; for a regression task, the teacher's output
mixed into the MSE target) and hidden-state MSE after each encoder layer (from-scratch encoders).

As in `translation.distill_module`, the teacher is not a registered child (never in a checkpoint, the optimizer
or ``train()``); validation and test are the plain module's.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from shapeshifter.distill.losses import hidden_mse, hidden_projection, kl_teacher_student
from shapeshifter.glue.module import GlueClassifierModule


@contextmanager
def layer_outputs(model: nn.Module, into: list[Tensor]):
    """Collect the output of each of ``model.layers`` (a from-scratch encoder's, ``(B, T, C)``) during a forward."""
    handles = [layer.register_forward_hook(lambda m, args, out: into.append(out)) for layer in model.layers]
    try:
        yield into
    finally:
        for handle in handles:
            handle.remove()


class GlueDistillModule(GlueClassifierModule):
    """Training loss: the task loss mixed with the teacher's logits (``word``) plus ``hidden_weight * MSE``."""

    def __init__(self, model: nn.Module, task_spec: Any, *, teacher: nn.Module, kinds: tuple[str, ...],
                 alpha: float = 0.5, temperature: float = 2.0, hidden_weight: float = 1.0,
                 teacher_dim: int | None = None, student_dim: int | None = None, **kwargs: Any) -> None:
        super().__init__(model, task_spec, **kwargs)
        object.__setattr__(self, "teacher", teacher)  # not a registered child: never saved, never trained
        self.kinds = tuple(kinds)
        self.alpha, self.temperature, self.hidden_weight = float(alpha), float(temperature), float(hidden_weight)
        self.hidden = "hidden" in self.kinds
        if self.hidden and not (hasattr(model, "layers") and hasattr(teacher, "layers")):
            raise ValueError("distill=hidden on GLUE needs from-scratch encoders (arch.kind=scratch) for student and "
                             "teacher; use distill=word (logits) with a pretrained encoder")
        self.hidden_projection = (hidden_projection(student_dim, teacher_dim)
                                  if self.hidden and student_dim and teacher_dim else None)

    def on_fit_start(self) -> None:
        self.teacher.to(self.device)
        self.teacher.eval()

    def _logits(self, model: nn.Module, batch: dict[str, Tensor], states: list[Tensor]) -> Tensor:
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                  "token_type_ids": batch.get("token_type_ids")}
        if not self.hidden:
            return model(**inputs)
        with layer_outputs(model, states):
            return model(**inputs)

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        student_states: list[Tensor] = []
        teacher_states: list[Tensor] = []
        logits = self._logits(self.model, batch, student_states)
        with torch.no_grad():
            t_logits = self._logits(self.teacher, batch, teacher_states)
        labels = batch["labels"]
        loss, extra = self._loss(logits, labels), {}
        if "word" in self.kinds:
            if self.spec.is_regression:
                kd = F.mse_loss(logits.squeeze(-1), t_logits.squeeze(-1).float())
            else:
                kd = self.temperature**2 * kl_teacher_student(logits, t_logits, self.temperature) / labels.shape[0]
            loss = (1.0 - self.alpha) * loss + self.alpha * kd
            extra["train/kd"] = kd
        if self.hidden:
            # hooks return (B, T, C); hidden_mse takes fairseq's (T, B, C)
            mse = hidden_mse([s.transpose(0, 1) for s in student_states],
                             [t.transpose(0, 1) for t in teacher_states], batch["attention_mask"].bool(),
                             self.hidden_projection)
            loss = loss + self.hidden_weight * mse
            extra["train/hidden_mse"] = mse
        return loss, extra
