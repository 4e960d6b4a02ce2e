"""GLUE/SNLI runs as table rows: accuracy, size and speed of each shapeshift configuration.

Rows average over seeds; ratios are against the ``dense`` configuration of the same task and setting, so the
table says how much smaller and how much slower (or faster) each Shapeshifter model is than its dense twin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from shapeshifter.reports.frame import PARAMS_COLUMN, REDUCTION_COLUMN, Column, configurations, to_rows
from shapeshifter.reports.translation import policy_name


def setting(record: dict[str, Any]) -> str:
    """``scratch`` (random init) or ``pretrained`` (factors projected from a pretrained checkpoint)."""
    return "scratch" if record["config"]["arch"].get("kind") == "scratch" else "pretrained"


def reported_split(record: dict[str, Any]) -> str:
    """The split a GLUE row reports: test when its labels were given (the main metric was scored there), else
    validation (GLUE hides the test labels)."""
    metrics = record["metrics"]
    return "test" if metrics["main_metric"] in metrics.get("test", {}) else "validation"


def score(record: dict[str, Any], split: str | None = None) -> float | None:
    """The main metric on a split (default: the reported one, `reported_split`), in %; None where that split was
    not scored."""
    metrics, split = record["metrics"], split or reported_split(record)
    return 100 * metrics[split][metrics["main_metric"]] if metrics["main_metric"] in metrics[split] else None


def _majority(record: dict[str, Any]) -> float | None:
    """Predicting the majority class on the reported split, in %."""
    majority = record["metrics"].get("majority_rate") or {}
    split = next((s for s in majority if s.startswith(reported_split(record)[:4])), None)
    return 100 * majority[split] if split and majority[split] is not None else None


def glue_rows(records: Sequence[dict[str, Any]], baseline: str = "dense",
              label: Callable[[dict[str, Any]], str] = policy_name) -> list[dict[str, Any]]:
    """One row per (task, setting, configuration: ``label`` of a record, the shapeshift policy's name unless
    given): the main metric (in %) on the reported split (`reported_split`) and on validation; ratios are
    against the baseline configuration of the same task and setting."""
    fields = {
        "task": lambda r: r.get("task", {}).get("name", "?"), "setting": setting, "config": label,
        "metric": "metrics.main_metric", "split": reported_split, "params": "params.total",
        "reduction": "params.reduction_vs_dense", "score": score,
        "val_score": lambda r: score(r, "validation"), "majority": _majority,
        # missing when no attempt of the run trained (resumed after its last epoch): no step time was measured
        "train_step_s": "timings.train_step_s", "test_s": lambda r: r["timings"].get("test_s") or None}
    keys = ["task", "setting", "config"]
    table = configurations(records, keys, fields, row="/".join,
                           first=["metric", "split", "params", "reduction", "majority"],
                           mean_std=["score", "val_score"], mean=["train_step_s"], mean_of_all=["test_s"])
    base = table[table["config"] == baseline].set_index(["task", "setting"])[["train_step_s", "test_s", "score"]]
    both = table.join(base, on=["task", "setting"], rsuffix="_base")
    table = table.assign(train_time_ratio=both["train_step_s"] / both["train_step_s_base"],
                         test_time_ratio=both["test_s"] / both["test_s_base"].where(both["test_s_base"] != 0),
                         score_drop=both["score_base"] - both["score"])
    rows = to_rows(table)
    rows.sort(key=lambda r: (r["task"], r["setting"] != "scratch", r["config"] != baseline, -r["params"], r["config"]))
    return rows


GLUE_COLUMNS = [
    Column("task", "task"), Column("config", "configuration"), PARAMS_COLUMN, REDUCTION_COLUMN,
    Column("metric", "metric"), Column("score", "test (%)", ".1f"), Column("val_score", "valid (%)", ".1f"),
    Column("majority", "majority class (%)", ".1f"), Column("train_time_ratio", "train time/step (× dense)", ".2f"),
    Column("test_time_ratio", "test time (× dense)", ".2f"),
]
