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
from shapeshifter.reports.frame import Column, check_seed_replicas, mean_std, write_table
from shapeshifter.reports.quality import best_valid, flatten

IGNORED = ("distill", "eval.bleu_every_n_epochs", "seed")

COLUMNS = [
    Column("config", "student"),
    Column("distill", "distilled with"),
    Column("params", "params", ","),
    Column("valid_loss", "valid loss (bits/token)", ".3f"),
    Column("delta", "Δ valid loss vs undistilled", "+.3f"),
    Column("valid_bleu", "valid BLEU (last epoch)", ".2f"),
    Column("bleu", "test BLEU (tok; reported, not used to choose)", ".2f"),
    Column("delta_bleu", "Δ test BLEU vs undistilled", "+.2f"),
    Column("step_ratio", "train time/step (× undistilled)", ".2f"),
    Column("seeds", "seeds"),
]


def twin_key(config: dict[str, Any]) -> tuple:
    flat = flatten(semantic_config(config))
    return tuple(sorted((k, repr(v)) for k, v in flat.items()
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


def _mean(recs: Sequence[dict[str, Any]], get) -> tuple[float | None, float | None]:
    return mean_std(map(get, recs))


def distill_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    distilled = [r for r in records if (r["config"].get("distill") or {}).get("kinds")]
    plain: dict[tuple, list[dict[str, Any]]] = {}
    for rec in records:
        if rec not in distilled:
            plain.setdefault(twin_key(rec["config"]), []).append(rec)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for rec in distilled:
        groups.setdefault((twin_key(rec["config"]), distill_label(rec["config"])), []).append(rec)
    rows = []
    for (key, label), recs in groups.items():
        check_seed_replicas(recs, label)
        twins = [t for t in plain.get(key, []) if t["config"].get("seed") in {r["config"].get("seed") for r in recs}]
        rows.append(distill_row(recs, twins, label))
    rows.sort(key=lambda r: (r["config"], r["valid_loss"] if r["valid_loss"] is not None else 1e9))
    return rows


def distill_row(recs: Sequence[dict[str, Any]], twins: Sequence[dict[str, Any]], label: str) -> dict[str, Any]:
    """One distilled configuration (its seeds averaged) against its undistilled twin's same seeds."""
    def loss(r):
        return best_valid(r)

    def bleu(r):
        return r["metrics"]["test"].get("tokenized_bleu")

    def step(r):
        return (r.get("timings") or {}).get("train_step_s")

    config = recs[0]["config"]
    student = f"{config['shapeshift']['name']}, factor lr ×{config['optim'].get('factor_lr_scale', 1.0):g}"
    row: dict[str, Any] = {"config": student, "distill": label, "params": recs[0]["params"]["total"],
                           "seeds": len(recs), "hashes": [r["config_hash"] for r in recs],
                           "twins": [t["config_hash"] for t in twins]}
    row["valid_loss"], row["valid_loss_std"] = _mean(recs, loss)
    row["valid_bleu"], _ = _mean(recs, lambda r: (r["metrics"].get("valid") or {}).get("valid_bleu"))
    row["bleu"], row["bleu_std"] = _mean(recs, bleu)
    base_loss, base_bleu, base_step = (_mean(twins, f)[0] for f in (loss, bleu, step))
    row["delta"] = None if None in (row["valid_loss"], base_loss) else row["valid_loss"] - base_loss
    row["delta_bleu"] = None if None in (row["bleu"], base_bleu) else row["bleu"] - base_bleu
    ours = _mean(recs, step)[0]
    row["step_ratio"] = None if None in (ours, base_step) else ours / base_step
    return row


def build_distill_table(records: Sequence[dict[str, Any]], out_dir: Path) -> str:
    rows = distill_rows(records)
    if not rows:
        raise FileNotFoundError("no distilled records among the quality_distill / quality_why records")
    used = [r for r in records if r["config_hash"] in {h for row in rows for h in row["hashes"] + row["twins"]}]
    notes = ("Same fixed budget as quality_why (6 epochs, no early stopping); each row is compared with the same "
             "configuration and seeds trained without a teacher (its quality_why record), on the validation "
             "split. The teacher is the quality study's dense run of the same seed. Train time per step includes "
             "the teacher's forward (word, hidden); sequence-level pays the teacher's decoding once, in its "
             "record (timings.teacher_decode_s). Times are from separate runs on a shared machine.")
    return write_table(out_dir, "quality_distill", "Distillation from the dense model: screening at ~10× fewer "
                       "parameters", rows, COLUMNS, used, notes)
