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

from shapeshifter.distill.settings import ONLINE_KINDS, DistillSettings
from shapeshifter.experiment.records import record_settings
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
    Column("step_ratio", "train step (× plain student, one process)", ".2f"), SEEDS_COLUMN,
]
BENCH_KIND = "bench_distill"  # pipelines/bench_distill.py: a distilled step against the plain one, one process


def twin_key(record: dict[str, Any]) -> str:
    """The result-defining settings a distilled run's record shares with its undistilled twin's (names left
    out)."""
    flat = flatten(record_settings(record))
    return repr(sorted((k, repr(v)) for k, v in flat.items()
                       if not any(k == p or k.startswith(p + ".") for p in IGNORED) and not k.endswith(".name")))


# how each kind reads in a row, from the config's distill node
KIND_LABELS = {
    "word": lambda n: f"word α {n.get('alpha'):g} T {n.get('temperature'):g}",
    "hidden": lambda n: f"hidden ×{n.get('hidden_weight'):g}",
    "attention": lambda n: f"attention ×{n.get('attention_weight', DistillSettings.attention_weight):g}",
    "sequence": lambda n: ("sequence" + (" + references" if n.get("with_references") else "")
                           + f" (beam {n.get('beam')})"),
}


def distill_label(config: dict[str, Any]) -> str:
    """What a distilled run learned from, in words: ``word α 0.5 T 2 + hidden``."""
    node = config.get("distill") or {}
    return " + ".join(KIND_LABELS[kind](node) for kind in node.get("kinds") or []) or "none"


def student(record: dict[str, Any]) -> str:
    config = record["config"]
    return f"{config['shapeshift']['name']}, factor lr ×{config['optim'].get('factor_lr_scale', 1.0):g}"


def is_distilled(record: dict[str, Any]) -> bool:
    return bool((record["config"].get("distill") or {}).get("kinds"))


def step_costs(bench: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest `BENCH_KIND` record per student policy: ``{repr(policy): record}``."""
    newest: dict[str, dict[str, Any]] = {}
    for record in sorted(bench, key=lambda r: str(r.get("finished_at"))):
        newest[repr(record["config"]["policy"])] = record
    return newest


def step_ratio(record: dict[str, Any], costs: dict[str, dict[str, Any]]) -> float | None:
    """What one training step of this distilled run costs over the plain student's, measured by the benchmark
    in one process (sequence-level steps are plain steps on other targets); None without a benchmark."""
    bench = costs.get(repr(record.get("policy")))
    online = [k for k in ONLINE_KINDS if k in record["config"]["distill"]["kinds"]]
    row = (bench or {}).get("results", {}).get("+".join(online) or "plain")
    return row["ratio_to_plain"] if row else None


# what a row compares, read from a distilled run and from its twins alike
FIELDS = {"key": twin_key, "seed": "config.seed", "valid_loss": best_valid,
          "bleu": "metrics.test.tokenized_bleu"}


def distill_rows(records: Sequence[dict[str, Any]],
                 costs: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per distilled configuration (its seeds averaged), beside the mean of its undistilled twins of the
    same seeds: ``delta`` (valid loss) and ``delta_bleu`` against them, ``twins`` their hashes; ``step_ratio``
    from the benchmark records ``costs`` (`step_costs`)."""
    distilled = [r for r in records if is_distilled(r)]
    by = ["key", "distill"]
    fields = {**FIELDS, "distill": lambda r: distill_label(r["config"]), "config": student,
              "params": "params.total", "valid_bleu": "metrics.valid.valid_bleu",
              "step_ratio": lambda r: step_ratio(r, costs or {})}
    table = configurations(distilled, by, fields, row=lambda key: key[1], first=["config", "params", "step_ratio"],
                           mean_std=["valid_loss", "bleu"], mean=["valid_bleu"], sort_hashes=False)
    seeds = records_frame(distilled, **fields)[[*by, "seed"]]
    twins = records_frame([r for r in records if not is_distilled(r)], **FIELDS).merge(seeds, on=["key", "seed"])
    base = twins.groupby(by, sort=False).agg(base_loss=("valid_loss", "mean"), base_bleu=("bleu", "mean"),
                                             twins=("config_hash", list))
    table = table.join(base, on=by)
    table["delta"] = table["valid_loss"] - table["base_loss"]
    table["delta_bleu"] = table["bleu"] - table["base_bleu"]
    rows = to_rows(table)
    rows.sort(key=lambda r: (r["config"], r["valid_loss"] if r["valid_loss"] is not None else 1e9))
    return rows


def teachers_note(records: Sequence[dict[str, Any]]) -> str:
    """The teachers the distilled records name (run and config hash): one for every row, or each of them."""
    teachers = sorted({f"{t['name']} ({t['config_hash']})" for r in records if is_distilled(r)
                       for t in [(r.get("distill") or {}).get("teacher") or {}] if t})
    if len(teachers) == 1:
        return f"Every row's teacher is {teachers[0]}; a row's seeds vary the student alone."
    return f"Teachers: {', '.join(teachers)}." if teachers else ""


def build_distill_table(records: Sequence[dict[str, Any]], out_dir: Path) -> str:
    costs = step_costs([r for r in records if r.get("kind") == BENCH_KIND])
    runs = [r for r in records if r.get("kind") != BENCH_KIND]
    rows = distill_rows(runs, costs)
    if not rows:
        raise FileNotFoundError("no distilled records among the quality_distill / quality_why records")
    named = {h for row in rows for h in row["hashes"] + (row["twins"] or [])}
    policies = {repr(r.get("policy")) for r in runs if is_distilled(r)}
    used = [r for r in runs if r["config_hash"] in named] + [b for p, b in costs.items() if p in policies]
    notes = ("Same fixed budget as quality_why (6 epochs, no early stopping); each row is compared with the same "
             "configuration and seeds trained without a teacher (its quality_why record), on the validation "
             f"split. {teachers_note(runs)} The train step ratio is "
             "measured by pipelines/bench_distill.py in one process (the student's step with the teacher's "
             "forward and the extra loss terms against its plain step; – without that benchmark); "
             "sequence-level steps are plain steps, and the teacher's one decoding of the training set is in the "
             "run's record (timings.teacher_decode_s).")
    return write_table(out_dir, "quality_distill", "Distillation from the dense model: screening at ~10× fewer "
                       "parameters", rows, COLUMNS, used, notes)
