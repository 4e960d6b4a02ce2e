"""The distillation screening table (``quality_distill``): each distilled run beside the same configuration
trained without a teacher (its ``quality_why`` record), on the validation split.

A run's undistilled twin is the record whose result-defining config equals the run's once the ``distill`` node
and the validation-BLEU schedule (``eval.bleu_every_n_epochs``, which the screening adds) are left out; seeds
are averaged per configuration (mean ± std).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shapeshifter.app.records import semantic_config
from shapeshifter.reports.frame import PARAMS_COLUMN, Column, configurations, records_frame, to_rows, write_table
from shapeshifter.reports.quality import (
    REPORTED_BLEU_COLUMN,
    SEEDS_COLUMN,
    VALID_LOSS_COLUMN,
    best_valid,
    flatten,
)

IGNORED = ("distill", "eval.bleu_every_n_epochs", "seed")

COLUMNS = [
    Column("config", "student"), Column("distill", "distilled with"), PARAMS_COLUMN, VALID_LOSS_COLUMN,
    Column("delta", "Δ valid loss vs undistilled", "+.3f"), Column("valid_bleu", "valid BLEU (last epoch)", ".2f"),
    REPORTED_BLEU_COLUMN, Column("delta_bleu", "Δ test BLEU vs undistilled", "+.2f"),
    Column("step_ratio", "train time/step (× undistilled)", ".2f"), SEEDS_COLUMN,
]


def twin_key(config: dict[str, Any]) -> str:
    """The result-defining settings a distilled run shares with its undistilled twin (names left out)."""
    flat = flatten(semantic_config(config))
    return repr(sorted((k, repr(v)) for k, v in flat.items()
                       if not any(k == p or k.startswith(p + ".") for p in IGNORED) and not k.endswith(".name")))


def distill_label(config: dict[str, Any]) -> str:
    """What a distilled run learned from, in words: ``word α 0.5 T 2 + hidden``."""
    node = config.get("distill") or {}
    parts = []
    for kind in node.get("kinds") or []:
        if kind == "word":
            parts.append(f"word α {node.get('alpha'):g} T {node.get('temperature'):g}")
        elif kind == "hidden":
            parts.append(f"hidden ×{node.get('hidden_weight'):g}")
        else:
            parts.append("sequence" + (" + references" if node.get("with_references") else "")
                         + f" (beam {node.get('beam')})")
    return " + ".join(parts) or "none"


def student(record: dict[str, Any]) -> str:
    config = record["config"]
    return f"{config['shapeshift']['name']}, factor lr ×{config['optim'].get('factor_lr_scale', 1.0):g}"


def is_distilled(record: dict[str, Any]) -> bool:
    return bool((record["config"].get("distill") or {}).get("kinds"))


# what a row compares, read from a distilled run and from its twins alike
FIELDS = {"key": lambda r: twin_key(r["config"]), "seed": "config.seed", "valid_loss": best_valid,
          "bleu": "metrics.test.tokenized_bleu", "step": "timings.train_step_s"}


def distill_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per distilled configuration (its seeds averaged), beside the mean of its undistilled twins of the
    same seeds: ``delta`` (valid loss), ``delta_bleu`` and ``step_ratio`` against them, ``twins`` their hashes."""
    distilled = [r for r in records if is_distilled(r)]
    by = ["key", "distill"]
    fields = {**FIELDS, "distill": lambda r: distill_label(r["config"]), "config": student,
              "params": "params.total", "valid_bleu": "metrics.valid.valid_bleu"}
    table = configurations(distilled, by, fields, row=lambda key: key[1], first=["config", "params"],
                           mean_std=["valid_loss", "bleu"], mean=["valid_bleu", "step"], sort_hashes=False)
    seeds = records_frame(distilled, **fields)[[*by, "seed"]]
    twins = records_frame([r for r in records if not is_distilled(r)], **FIELDS).merge(seeds, on=["key", "seed"])
    base = twins.groupby(by, sort=False).agg(base_loss=("valid_loss", "mean"), base_bleu=("bleu", "mean"),
                                             base_step=("step", "mean"), twins=("config_hash", list))
    table = table.join(base, on=by)
    table["delta"] = table["valid_loss"] - table["base_loss"]
    table["delta_bleu"] = table["bleu"] - table["base_bleu"]
    table["step_ratio"] = table["step"] / table["base_step"]
    rows = to_rows(table)
    rows.sort(key=lambda r: (r["config"], r["valid_loss"] if r["valid_loss"] is not None else 1e9))
    return rows


def build_distill_table(records: Sequence[dict[str, Any]], out_dir: Path) -> str:
    rows = distill_rows(records)
    if not rows:
        raise FileNotFoundError("no distilled records among the quality_distill / quality_why records")
    named = {h for row in rows for h in row["hashes"] + (row["twins"] or [])}
    used = [r for r in records if r["config_hash"] in named]
    notes = ("Same fixed budget as quality_why (6 epochs, no early stopping); each row is compared with the same "
             "configuration and seeds trained without a teacher (its quality_why record), on the validation "
             "split. The teacher is the quality study's dense run of the same seed. Train time per step includes "
             "the teacher's forward (word, hidden); sequence-level pays the teacher's decoding once, in its "
             "record (timings.teacher_decode_s). Times are from separate runs on a shared machine.")
    return write_table(out_dir, "quality_distill", "Distillation from the dense model: screening at ~10× fewer "
                       "parameters", rows, COLUMNS, used, notes)
