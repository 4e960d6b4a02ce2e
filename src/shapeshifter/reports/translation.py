"""Translation runs as table rows: BLEU, size and time of each configuration, seeds averaged, ratios against the
dense baseline of the same records."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from shapeshifter.reports.frame import PARAMS_COLUMN, REDUCTION_COLUMN, Column, Field, configurations, to_rows


def train_step_s(record: dict[str, Any]) -> float:
    """A run's mean training step time: the record's ``train_step_s`` (measured inside the training loop, so
    validation, checkpoints and the epochs of an interrupted attempt stay out), else for records without it
    ``train_s / train_steps``, which over-counts nothing only when the run was never resumed."""
    timings = record["timings"]
    if timings.get("train_step_s") is not None:
        return float(timings["train_step_s"])
    return timings["train_s"] / max(1, timings["train_steps"])


def generate_s_per_token(record: dict[str, Any]) -> float | None:
    """Test decoding seconds per generated token; None when the record lacks the output length."""
    sys_len = (record["metrics"]["test"].get("tokenized_bleu_detail") or {}).get("sys_len")
    return record["timings"]["test_generate_s"] / sys_len if sys_len else None


def policy_name(record: dict[str, Any]) -> str:
    return record["config"]["shapeshift"]["name"]


def translation_fields(label: Callable[[dict[str, Any]], str] = policy_name) -> dict[str, Field]:
    """What a translation table reads from each record: its configuration (``label``), size, test BLEU, timings."""
    return {"config": label, "params": "params.total", "reduction": "params.reduction_vs_dense",
            "bleu": "metrics.test.tokenized_bleu", "sacrebleu": lambda r: r["metrics"]["test"].get("sacrebleu") or 0.0,
            "train_s_per_step": train_step_s, "test_generate_s": "timings.test_generate_s",
            # per generated token: a weaker model may emit longer outputs, which is not a per-step cost
            "generate_s_per_token": generate_s_per_token,
            "copy_bleu": lambda r: (r["metrics"].get("copy_baseline") or {}).get("tokenized_bleu")}


def translation_rows(records: Sequence[dict[str, Any]], baseline: str = "dense",
                     label: Callable[[dict[str, Any]], str] = policy_name) -> list[dict[str, Any]]:
    """One row per configuration (``label`` of its records; seeds averaged), with ratios against the
    ``baseline`` configuration."""
    table = configurations(records, "config", translation_fields(label), first=["params", "reduction", "copy_bleu"],
                           mean_std=["bleu", "sacrebleu"], mean=["train_s_per_step", "test_generate_s"],
                           mean_of_all=["generate_s_per_token"])
    is_base = table["config"] == baseline
    base = table[is_base].iloc[0] if is_base.any() else None
    ratios = {"bleu_drop_pct": None, "train_time_ratio": None, "infer_time_ratio": None, "infer_token_ratio": None}
    if base is not None:
        ratios = {"bleu_drop_pct": 100 * (base["bleu"] - table["bleu"]) / base["bleu"] if base["bleu"] else None,
                  "train_time_ratio": table["train_s_per_step"] / base["train_s_per_step"],
                  "infer_time_ratio": table["test_generate_s"] / base["test_generate_s"],
                  "infer_token_ratio": table["generate_s_per_token"] / base["generate_s_per_token"]}
    rows = to_rows(table.assign(**ratios))
    rows.sort(key=lambda r: (r["config"] != baseline, -r["params"], r["config"]))
    return rows


TRANSLATION_COLUMNS = [
    Column("config", "configuration"), PARAMS_COLUMN, REDUCTION_COLUMN, Column("bleu", "BLEU (tok)", ".2f"),
    Column("sacrebleu", "sacreBLEU", ".2f"), Column("bleu_drop_pct", "rel. BLEU drop (%)", ".1f"),
    Column("train_time_ratio", "train time/step (× dense)", ".2f"),
    Column("infer_time_ratio", "test decoding time (× dense)", ".2f"),
    Column("infer_token_ratio", "decoding time per output token (× dense)", ".2f"),
]
