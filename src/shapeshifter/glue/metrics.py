"""GLUE metrics exactly as the benchmark defines them, computed with ``torchmetrics`` (no downloads).

CoLA: Matthews correlation; STS-B: Pearson and Spearman; MRPC/QQP: accuracy and F1 of class 1;
MNLI: accuracy on matched and mismatched sets; everything else: accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import functional as tmf

from shapeshifter.glue.tasks import TaskSpec, get_task, split_tag

__all__ = ["compute_metric", "glue_metrics"]


def _as_tensor(x: torch.Tensor | Sequence[float] | Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(list(x))
    return t.reshape(-1).to(dtype)


def compute_metric(name: str, preds: torch.Tensor, labels: torch.Tensor, num_labels: int) -> float:
    """One metric on class-index (or, for correlations, real-valued) predictions."""
    if name in ("pearson", "spearman"):
        p, y = preds.double(), labels.double()
        if p.numel() < 2:
            return float("nan")
        fn = tmf.pearson_corrcoef if name == "pearson" else tmf.spearman_corrcoef
        return float(fn(p, y))
    p, y = preds.long(), labels.long()
    if name == "accuracy":
        return float(tmf.accuracy(p, y, task="multiclass", num_classes=num_labels, average="micro"))
    if name == "mcc":
        if num_labels == 2:
            return float(tmf.matthews_corrcoef(p, y, task="binary"))
        return float(tmf.matthews_corrcoef(p, y, task="multiclass", num_classes=num_labels))
    if name == "f1":
        if num_labels != 2:
            raise ValueError(f"'f1' is the positive-class F1 of a binary task; got {num_labels} labels")
        return float(tmf.f1_score(p, y, task="binary"))
    if name == "macro_f1":
        return float(tmf.f1_score(p, y, task="multiclass", num_classes=num_labels, average="macro"))
    raise ValueError(f"unknown metric {name!r}")


def glue_metrics(
    task: str | TaskSpec,
    preds: torch.Tensor | Sequence,
    labels: torch.Tensor | Sequence,
    split: str | None = None,
) -> dict[str, float]:
    """Score ``preds`` against ``labels`` with the task's official metrics.

    ``preds`` are class indices, or logits of shape ``(N, num_labels)`` (argmax is taken); for STS-B they
    are real-valued scores. For MNLI pass ``split="validation_matched"`` / ``"validation_mismatched"`` to
    get keys ``accuracy_matched`` / ``accuracy_mismatched``; without ``split`` the key is ``accuracy``.
    """
    spec = get_task(task) if isinstance(task, str) else task
    if spec.is_regression:
        p, y = _as_tensor(preds, torch.float64), _as_tensor(labels, torch.float64)
    else:
        pt = preds if isinstance(preds, torch.Tensor) else torch.as_tensor(preds)
        if pt.ndim == 2:
            pt = pt.argmax(dim=-1)
        p, y = _as_tensor(pt, torch.long), _as_tensor(labels, torch.long)
        if p.numel() and (int(y.min()) < 0 or int(y.max()) >= spec.num_labels):
            raise ValueError(
                f"task {spec.name!r}: labels must lie in [0, {spec.num_labels}); got range "
                f"[{int(y.min())}, {int(y.max())}] (GLUE test splits carry hidden labels = -1)"
            )
    if p.shape != y.shape:
        raise ValueError(f"task {spec.name!r}: {p.numel()} predictions but {y.numel()} labels")
    tag = split_tag(spec, split) if split is not None else None
    suffix = f"_{tag}" if tag else ""
    return {f"{m}{suffix}": compute_metric(m, p, y, spec.num_labels) for m in spec.metrics}
