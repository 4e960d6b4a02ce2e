"""GLUE/SNLI demo tables from run records only: accuracy, size and speed of each shapeshift configuration.

Rows average over seeds; ratios are against the ``dense`` configuration of the same records, so the table
says how much smaller and how much slower (or faster) each Shapeshifter model is than its dense twin.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

from shapeshifter.app.tables import (
    PARAMS_COLUMN,
    REDUCTION_COLUMN,
    Column,
    check_seed_replicas,
    fmt_num,
    mean_std,
    policy_name,
)


def setting(record: dict[str, Any]) -> str:
    """``scratch`` (random init) or ``pretrained`` (factors projected from a pretrained checkpoint)."""
    return "scratch" if record["config"]["arch"].get("kind") == "scratch" else "pretrained"


def reported_split(record: dict[str, Any]) -> str:
    """The split a GLUE row reports: test when its labels were given (the main metric was scored there), else
    validation (GLUE hides the test labels)."""
    metrics = record["metrics"]
    return "test" if metrics["main_metric"] in metrics.get("test", {}) else "validation"


def glue_rows(records: Sequence[dict[str, Any]], baseline: str = "dense",
              label: Callable[[dict[str, Any]], str] = policy_name) -> list[dict[str, Any]]:
    """One row per (task, setting, configuration: ``label`` of a record, the shapeshift policy's name unless
    given): the main metric (in %) on the reported split (`reported_split`) and on validation; ratios are
    against the baseline configuration of the same task and setting."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for rec in records:
        key = (rec.get("task", {}).get("name", "?"), setting(rec), label(rec))
        groups.setdefault(key, []).append(rec)
    rows = []
    for (task, init, name), recs in groups.items():
        check_seed_replicas(recs, f"{task}/{init}/{name}")
        first = recs[0]
        metric = first["metrics"]["main_metric"]
        split = reported_split(first)
        score = mean_std([100 * r["metrics"][split][metric] for r in recs if metric in r["metrics"][split]])
        val = mean_std([100 * r["metrics"]["validation"][metric] for r in recs
                         if metric in r["metrics"]["validation"]])
        majority = (first["metrics"].get("majority_rate") or {})
        maj_split = next((s for s in majority if s.startswith(split[:4])), None)
        rows.append({
            "task": task, "setting": init, "config": name, "seeds": len(recs), "metric": metric, "split": split,
            "params": first["params"]["total"], "reduction": first["params"]["reduction_vs_dense"],
            "score": score[0], "score_std": score[1], "val_score": val[0], "val_score_std": val[1],
            "majority": 100 * majority[maj_split] if maj_split and majority[maj_split] is not None else None,
            # None when no attempt of the run trained (resumed after its last epoch): no step time was measured
            "train_step_s": mean_std([r["timings"]["train_step_s"] for r in recs
                                      if r["timings"].get("train_step_s") is not None])[0],
            "test_s": statistics.mean(r["timings"].get("test_s") or float("nan") for r in recs),
            "hashes": sorted(r["config_hash"] for r in recs),
        })
    for row in rows:
        key = (row["task"], row["setting"], baseline)
        base = next((r for r in rows if (r["task"], r["setting"], r["config"]) == key), None)
        steps = row["train_step_s"], base["train_step_s"] if base else None
        row["train_time_ratio"] = steps[0] / steps[1] if None not in steps else None
        row["test_time_ratio"] = row["test_s"] / base["test_s"] if base and base["test_s"] else None
        row["score_drop"] = (base["score"] - row["score"]) if base and base["score"] is not None else None
    rows.sort(key=lambda r: (r["task"], r["setting"] != "scratch", r["config"] != baseline, -r["params"], r["config"]))
    return rows


GLUE_COLUMNS = [
    Column("task", "task"),
    Column("config", "configuration"),
    PARAMS_COLUMN,
    REDUCTION_COLUMN,
    Column("metric", "metric"),
    Column("score", "test (%)", fmt_num(".1f")),
    Column("val_score", "valid (%)", fmt_num(".1f")),
    Column("majority", "majority class (%)", fmt_num(".1f")),
    Column("train_time_ratio", "train time/step (× dense)", fmt_num(".2f")),
    Column("test_time_ratio", "test time (× dense)", fmt_num(".2f")),
]
