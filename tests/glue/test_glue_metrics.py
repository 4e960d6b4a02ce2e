"""GLUE metrics must match the sklearn/scipy definitions the benchmark uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from shapeshifter.glue.metrics import glue_metrics
from shapeshifter.glue.tasks import GLUE_TASKS

RNG = np.random.default_rng(1234)
N = 61


def _fixed(num_labels: int) -> tuple[np.ndarray, np.ndarray]:
    labels = RNG.integers(0, num_labels, N)
    preds = np.where(RNG.random(N) < 0.7, labels, RNG.integers(0, num_labels, N))  # ~70% right, not all
    return preds, labels


@pytest.mark.parametrize("task", ["sst2", "qnli", "rte", "wnli"])
def test_accuracy_tasks(task: str) -> None:
    preds, labels = _fixed(2)
    got = glue_metrics(task, torch.tensor(preds), torch.tensor(labels))
    assert set(got) == {"accuracy"}
    assert got["accuracy"] == pytest.approx(accuracy_score(labels, preds), abs=1e-6)


def test_cola_mcc() -> None:
    preds, labels = _fixed(2)
    got = glue_metrics("cola", preds.tolist(), labels.tolist())
    assert set(got) == {"mcc"}
    assert got["mcc"] == pytest.approx(matthews_corrcoef(labels, preds), abs=1e-6)
    assert 0.1 < got["mcc"] < 0.95


@pytest.mark.parametrize("task", ["mrpc", "qqp"])
def test_accuracy_and_positive_class_f1(task: str) -> None:
    preds, labels = _fixed(2)
    got = glue_metrics(task, torch.tensor(preds), torch.tensor(labels))
    assert set(got) == {"accuracy", "f1"}
    assert got["accuracy"] == pytest.approx(accuracy_score(labels, preds), abs=1e-6)
    assert got["f1"] == pytest.approx(f1_score(labels, preds, pos_label=1), abs=1e-6)


def test_hand_computed_binary() -> None:
    # TP=1 (idx0), FP=1 (idx1), TN=1 (idx2), FN=1 (idx3): acc 0.5, precision 0.5, recall 0.5, F1 0.5.
    got = glue_metrics("mrpc", [1, 1, 0, 0], [1, 0, 0, 1])
    assert got == {"accuracy": pytest.approx(0.5), "f1": pytest.approx(0.5)}
    assert glue_metrics("cola", [1, 1, 0, 0], [1, 0, 0, 1])["mcc"] == pytest.approx(0.0, abs=1e-7)
    assert glue_metrics("cola", [1, 0, 1, 0], [1, 0, 1, 0])["mcc"] == pytest.approx(1.0)


def test_f1_is_of_class_one_not_macro() -> None:
    preds, labels = [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]
    got = glue_metrics("qqp", preds, labels)["f1"]
    assert got == pytest.approx(f1_score(labels, preds, pos_label=1))  # 0.5
    assert got != pytest.approx(f1_score(labels, preds, average="macro"))


def test_stsb_pearson_spearman() -> None:
    labels = RNG.uniform(0, 5, N)
    preds = labels + RNG.normal(0, 1.5, N)
    got = glue_metrics("stsb", torch.tensor(preds, dtype=torch.float32), torch.tensor(labels))
    assert set(got) == {"pearson", "spearman"}
    assert got["pearson"] == pytest.approx(pearsonr(preds, labels)[0], abs=1e-5)
    assert got["spearman"] == pytest.approx(spearmanr(preds, labels)[0], abs=1e-5)


def test_mnli_matched_and_mismatched_keys() -> None:
    pm, lm = _fixed(3)
    pmm, lmm = _fixed(3)
    m = glue_metrics("mnli", pm, lm, split="validation_matched")
    mm = glue_metrics("mnli", pmm, lmm, split="validation_mismatched")
    assert m == {"accuracy_matched": pytest.approx(accuracy_score(lm, pm))}
    assert mm == {"accuracy_mismatched": pytest.approx(accuracy_score(lmm, pmm))}
    assert set(glue_metrics("mnli", pm, lm)) == {"accuracy"}


def test_logits_are_argmaxed() -> None:
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    assert glue_metrics("mnli", logits, [1, 0, 1])["accuracy"] == pytest.approx(2 / 3)


def test_every_task_has_metrics() -> None:
    assert set(GLUE_TASKS) == {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"}
    for name, spec in GLUE_TASKS.items():
        preds = [0.5, 1.0, 2.0] if spec.is_regression else [0, 1, 1]
        labels = [0.4, 1.5, 1.9] if spec.is_regression else [0, 1, 0]
        assert set(glue_metrics(name, preds, labels)) == set(spec.metrics)


def test_metric_input_errors() -> None:
    with pytest.raises(ValueError, match="hidden labels"):
        glue_metrics("sst2", [0, 1], [-1, -1])
    with pytest.raises(ValueError, match="2 predictions but 3 labels"):
        glue_metrics("sst2", [0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="unknown GLUE task"):
        glue_metrics("glue-xyz", [0], [0])
