"""The quality study's tables: converged models at matched parameter budgets, one row per configuration.

``quality`` (translation) comes from the records of ``experiment=quality/grid_*`` (group ``quality``): the dense
model, Shapeshifter of order 2 and 3 at several sizes, Shapeshifter fitted to the trained dense model
(``init_from``), narrow dense models, low-rank and PHM layers. ``quality_glue`` (classification) comes from
``experiment=quality/glue_grid*`` (group ``quality_glue``): encoder_small on the SNLI sample, dense, Shapeshifter,
low-rank and narrow dense at ~10x fewer parameters. Each row averages the seeds of one configuration; every
ratio is against the dense model of the same study. ``quality_width`` asks whether the gap depends on the
model's size: Shapeshifter at ~10x fewer parameters than a narrower base (``experiment=quality/grid_width``,
group ``quality_width``) next to the full-width pair of the ``quality`` records.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from shapeshifter.experiment.records import monitored_metric, record_settings
from shapeshifter.reports.frame import (
    PARAMS_COLUMN,
    REDUCTION_COLUMN,
    Column,
    configurations,
    pareto_front,
    records_frame,
    stamp,
    to_rows,
    write_table,
)
from shapeshifter.reports.glue import glue_rows, score
from shapeshifter.reports.plots import pyplot, save_figure
from shapeshifter.reports.translation import train_step_s, translation_rows

DENSE_ARCH_LABEL = "d128"  # the full-width architecture; d<width> labels are narrow dense baselines, and
# d128-<variant> (quality/grid_tuned: d128-drop0) the full width with one architecture setting changed
BUDGETS = (1, 3, 5, 10, 25, 50, 100)  # the study's parameter reductions; rows are grouped by the nearest one
METHOD_ORDER = ("dense", "Shapeshifter o2", "Shapeshifter o3", "Shapeshifter, projected from dense",
                "Shapeshifter, embeddings only", "low-rank", "PHM", "narrow dense")

# the columns every study table shares
METHOD_COLUMNS = [Column("method", "method"), Column("config", "configuration"), PARAMS_COLUMN, REDUCTION_COLUMN]
VALID_LOSS_COLUMN = Column("valid_loss", "valid loss (bits/token)", ".3f")
BLEU_COLUMN = Column("bleu", "BLEU (tok, test)", ".2f")
TIME_COLUMN = Column("train_time_ratio", "train time/step (× dense)", ".2f")
# how each run's training went: epochs trained and what stopped it (``?`` when the record does not say)
TRAINING_FIELDS = {"epochs": "training.epochs",
                   "stopped_by": lambda r: (r.get("training") or {}).get("stopped_by", "?")}
SEEDS_COLUMN = Column("seeds", "seeds")
TRAINING_COLUMNS = [Column("epochs", "epochs", ".1f"), Column("stopped_by", "stopped by"), SEEDS_COLUMN]
REPORTED_BLEU_COLUMN = Column("bleu", "test BLEU (tok; reported, not used to choose)", ".2f")

QUALITY_COLUMNS = [*METHOD_COLUMNS, VALID_LOSS_COLUMN, BLEU_COLUMN,
                   Column("sacrebleu", "sacreBLEU (test)", ".2f"), TIME_COLUMN, *TRAINING_COLUMNS]
# The CSV other tools read: the columns the study promises, then the rest of the table.
CSV_COLUMNS = [Column(k, k) for k in ("method", "config", "params", "reduction_vs_dense", "bleu", "bleu_std",
                                      "sacrebleu", "valid_loss", "valid_loss_std", "train_time_ratio", "epochs",
                                      "stopped_by", "seeds")]


def arch_label(record: dict[str, Any]) -> str:
    return str(record["config"]["arch"].get("label") or DENSE_ARCH_LABEL)


def full_width(record: dict[str, Any]) -> bool:
    """The dense model's width (``d128`` or a ``d128-<variant>`` of it), not a narrow dense baseline."""
    return arch_label(record).split("-")[0] == DENSE_ARCH_LABEL


def on_narrow_base(record: dict[str, Any]) -> bool:
    """A factorized model of a narrower architecture than dense (quality/grid_width, records of its own): the
    width table compares it with the dense model of its own width."""
    return bool(record.get("policy")) and not full_width(record)


EMBEDDINGS_ONLY = "Shapeshifter, embeddings only"
DISTILLED = ", distilled"  # appended to a method's name when its run learned from a teacher (`distill_tag`)


def distill_tag(config: dict[str, Any]) -> str | None:
    """A distilled run's recipe in a row name (``seq-refs``, ``seq-refs-attention``, ``word``, ``seq-word``), as the
    run names of quality/grid_distill spell it; None for a plain run."""
    node = config.get("distill") or {}
    seq = "seq-refs" if node.get("with_references") else "seq"
    kinds = [{"sequence": seq}.get(k, k) for k in node.get("kinds") or []]
    return "-".join(kinds) or None


def method(record: dict[str, Any]) -> str:
    """The family a run belongs to, read from its policy and architecture, and whether it was distilled."""
    family = _family(record)
    return family + DISTILLED if distill_tag(record["config"]) else family


def _family(record: dict[str, Any]) -> str:
    policy = record.get("policy") or {}
    if not policy:
        return "dense" if full_width(record) else "narrow dense"
    if set(policy) - {"exclude"} == {"embedding"}:  # word2ketXS: the rest of the model stays dense
        return EMBEDDINGS_ONLY
    spec = next(v for k, v in policy.items() if k != "exclude")
    if spec.get("kind") == "lowrank":
        return "low-rank"
    if str(spec.get("scheme", "")).startswith("phm"):
        return "PHM"
    if record["config"]["shapeshift"].get("init") == "project":
        return "Shapeshifter, projected from dense"
    return f"Shapeshifter o{spec.get('order', 2)}"


def config_label(record: dict[str, Any]) -> str:
    """Row name: the policy's name, ``dense-<arch label>`` for a narrow dense model, and ``<name>-<variant>`` for
    a full-width architecture variant (``o2-r8-emb29-proj-drop0``)."""
    name = record["config"]["shapeshift"]["name"]
    label = arch_label(record)
    row = f"{name}{label.removeprefix(DENSE_ARCH_LABEL)}" if full_width(record) else f"{name}-{label}"
    tag = distill_tag(record["config"])
    return distilled_name(row, tag) if tag else row


def distilled_name(config: str, recipe: str) -> str:
    """A distilled row's name: its plain configuration's and its recipe (`split_distilled` reads it back)."""
    return f"{config}-distilled-{recipe}"


def split_distilled(config: str) -> tuple[str, str]:
    """``(plain configuration, recipe)`` of a row name (recipe ``""`` for a plain row)."""
    plain, _, recipe = config.partition("-distilled-")
    return plain, recipe


def by_config(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records grouped by their row (`config_label`), in first-seen order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault(config_label(rec), []).append(rec)
    return groups


def add_study_columns(rows: list[dict[str, Any]], records: Sequence[dict[str, Any]],
                      scale: float = 1.0) -> None:
    """Method, reduction against the study's dense row, best monitored validation value (x ``scale``), epochs
    and how training ended, for rows labelled by `config_label`.

    The reduction is recomputed from the dense row: a narrow dense record counts its own width as dense
    (``reduction_vs_dense`` 1.0).
    """
    fields = {**TRAINING_FIELDS, "config": config_label, "method": method, "best": lambda r: best_valid(r, scale)}
    study = {row["config"]: row for row in to_rows(configurations(
        records, "config", fields, first=["method"], mean_std=["best"], mean=["epochs"],
        stopped_by=("stopped_by", lambda s: ", ".join(sorted(set(s))))))}
    dense = next((r for r in rows if r["config"] == "dense"), None)
    for row in rows:
        row.update((k, study[row["config"]][k]) for k in ("method", "best", "best_std", "epochs", "stopped_by"))
        if dense is not None:
            row["reduction"] = dense["params"] / row["params"]
        row["reduction_vs_dense"] = row["reduction"]
        row["budget"] = nearest_budget(row["reduction"])


def nearest_budget(reduction: float) -> int:
    """The study's budget (`BUDGETS`) nearest to a parameter reduction, on a log scale."""
    return min(BUDGETS, key=lambda b: abs(math.log(reduction / b)))


def method_rank(name: str) -> tuple[int, bool]:
    """Where a method sorts: its family's place in `METHOD_ORDER`, each distilled family after its plain one."""
    family = name.removesuffix(DISTILLED)
    rank = METHOD_ORDER.index(family) if family in METHOD_ORDER else len(METHOD_ORDER)
    return rank, name != family


def _study_order(row: dict[str, Any]) -> tuple:
    return row["budget"], method_rank(row["method"]), -row["params"], row["config"]


def best_valid(record: dict[str, Any], scale: float = 1.0) -> float | None:
    """The evaluated checkpoint's monitored value (``best``; records of the first study runs name it ``best_score``,
    early stopping's copy of the same value), times ``scale``."""
    training = record.get("training") or {}
    best = training.get("best", training.get("best_score"))
    return None if best is None else scale * best


def quality_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """`translation_rows` per configuration, plus method, best valid loss and how training ended."""
    rows = translation_rows(records, baseline="dense", label=config_label)
    add_study_columns(rows, records)
    for row in rows:
        row["valid_loss"], row["valid_loss_std"] = row.pop("best"), row.pop("best_std")
    rows.sort(key=_study_order)
    return rows


def plot_bleu_vs_params(rows: Sequence[dict[str, Any]], path: Path, copy_bleu: float | None, source: str) -> Path:
    """BLEU against parameters, one colour and marker per method, each method's Pareto front as a line.

    Points carry no text labels (they would overlap at equal budgets): methods at one budget are spread
    sideways by a few percent of the x axis, the legend (outside the axes) names them and explains the lines
    and error bars, and the top axis marks the reductions against dense.
    """
    from matplotlib.lines import Line2D

    fig, ax = pyplot().subplots(figsize=(8.0, 4.2), dpi=120)
    markers = "osD^vP*X"
    present = sorted({r["method"] for r in rows}, key=lambda m: (method_rank(m), m))
    families = list(dict.fromkeys(m.removesuffix(DISTILLED) for m in present))
    for i, name in enumerate(present):
        family = families.index(name.removesuffix(DISTILLED))  # a distilled method: its family's colour, hollow
        distilled = name.endswith(DISTILLED)
        pts = sorted((r for r in rows if r["method"] == name and r["bleu"] is not None), key=lambda r: r["params"])
        dodge = 1.0 if name == "dense" else 1.0 + 0.035 * (i - len(present) / 2)
        ax.errorbar([r["params"] * dodge for r in pts], [r["bleu"] for r in pts],
                    yerr=[r["bleu_std"] or 0 for r in pts], fmt=markers[family % len(markers)], color=f"C{family}",
                    label=name, capsize=2, zorder=3, **({"markerfacecolor": "none"} if distilled else {}))
        front = pareto_front(pts)
        if len(front) > 1:
            ax.plot([r["params"] * dodge for r in front], [r["bleu"] for r in front], color=f"C{family}",
                    linewidth=1, linestyle="--" if distilled else "-", zorder=2)
    if copy_bleu is not None:
        ax.axhline(copy_bleu, color="grey", linestyle="--", linewidth=1, label="copy the source")
    ax.errorbar([], [], yerr=[], fmt="o", color="black", markerfacecolor="none", capsize=2,
                label="error bar: ± std over seeds")
    ax.add_line(Line2D([], [], color="black", linewidth=1, label="line: a method's Pareto front"))
    if any(m.endswith(DISTILLED) for m in present):
        ax.add_line(Line2D([], [], color="black", linewidth=1, linestyle="--", marker="o", markerfacecolor="none",
                           label="hollow, dashed: distilled from dense"))
    ax.set_xscale("log")
    ax.set_xlabel("total parameters (log scale)")
    ax.set_ylabel("test BLEU (tokenized)")
    ax.grid(True, alpha=0.3)
    dense = next((r for r in rows if r["method"] == "dense"), None)
    if dense is not None:
        top = ax.secondary_xaxis("top", functions=(lambda p: p, lambda p: p))
        smallest = min(r["params"] for r in rows)
        marks = [b for b in BUDGETS if dense["params"] / b >= smallest * 0.8]
        top.set_xticks([dense["params"] / b for b in marks], [f"{b}×" for b in marks])
        top.minorticks_off()
        top.set_xlabel("fewer parameters than dense", fontsize=8)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    return save_figure(fig, path, source)


def plot_curves(records: Sequence[dict[str, Any]], path: Path, ylabel: str, source: str, scale: float = 1.0) -> Path:
    """The monitored validation value against epochs (``training.curve``), one line per configuration and seed,
    coloured by method, one marker per configuration: whether a run was on its plateau when it stopped. Each
    configuration's first seed is solid, its further seeds dashed; the legend says so."""
    from matplotlib.lines import Line2D

    fig, ax = pyplot().subplots(figsize=(8.0, 4.2), dpi=120)
    methods = sorted({method(r) for r in records}, key=lambda m: (method_rank(m), m))
    groups = by_config(records)
    labels = sorted(groups, key=lambda c: (methods.index(method(groups[c][0])), c))
    for j, label in enumerate(labels):
        recs = sorted(groups[label], key=lambda r: r["config"]["seed"])
        colour = f"C{methods.index(method(recs[0]))}"
        for k, rec in enumerate(recs):
            curve = (rec.get("training") or {}).get("curve") or []
            monitor = monitored_metric(rec)
            ax.plot([p["epoch"] + 1 for p in curve], [scale * p[monitor] for p in curve], color=colour,
                    linestyle="--" if k else "-", marker="osD^vP*X"[j % 8], markevery=5, markersize=3,
                    linewidth=1, label=f"{label} ({method(rec)})" if k == 0 else None)
    ax.add_line(Line2D([], [], color="black", linewidth=1, label="solid: a configuration's first seed"))
    if any(len(recs) > 1 for recs in groups.values()):
        ax.add_line(Line2D([], [], color="black", linewidth=1, linestyle="--", label="dashed: its further seeds"))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    return save_figure(fig, path, source)


def distillation_moves(rows: Sequence[dict[str, Any]], metric: str = "bleu", unit: str = "BLEU") -> str:
    """How far distillation moved each configuration: each distilled row against its plain twin (the same name
    without ``-distilled-<recipe>``), in ``metric``, named by configuration and recipe; empty without a pair."""
    plain = {r["config"]: r for r in rows if not r["method"].endswith(DISTILLED)}
    moves = []
    for row in rows:
        name, recipe = split_distilled(row["config"])
        twin = plain.get(name) if row["method"].endswith(DISTILLED) else None
        if twin is not None and row[metric] is not None and twin[metric] is not None:
            moves.append(f"{name} {recipe} {row[metric] - twin[metric]:+.2f} ({row['seeds']} vs {twin['seeds']} "
                         "seed(s))")
    return f" Distillation moved test {unit}: {'; '.join(moves)}." if moves else ""


HEADLINE_BUDGET = 10  # the budget of the README's headline table (`headline_rows`)
VERDICT_BUDGETS = (HEADLINE_BUDGET, 25)  # where the study answers its question (`verdict`): the table notes, notebook


def headline_rows(rows: Sequence[dict[str, Any]], budget: int = HEADLINE_BUDGET
                  ) -> tuple[list[dict[str, Any]], list[Column]]:
    """The README's view of one budget, built from the quality rows: dense, then one line per plain configuration
    at the budget (of a method that was distilled, only the configurations that were), its test BLEU from the
    labels and under each distillation recipe used at the budget, one column per recipe (``–``: not run)."""
    at = [r for r in rows if r["budget"] == budget]
    distilled = {r["config"]: r for r in at if r["method"].endswith(DISTILLED)}
    twins = {split_distilled(config)[0] for config in distilled}
    taught = {r["method"].removesuffix(DISTILLED) for r in distilled.values()}
    recipes = list(dict.fromkeys(split_distilled(config)[1] for config in distilled))

    def shown(row: dict[str, Any]) -> bool:
        plain = not row["method"].endswith(DISTILLED)
        return row["method"] == "dense" or plain and (row["method"] not in taught or row["config"] in twins)

    lines = []
    for row in filter(shown, [r for r in rows if r["method"] == "dense"] + at):
        line = {k: row[k] for k in ("method", "config", "params")} | {"plain": row["bleu"],
                                                                      "plain_std": row["bleu_std"]}
        for recipe in recipes:
            twin = distilled.get(distilled_name(row["config"], recipe), {})
            line[recipe], line[f"{recipe}_std"] = twin.get("bleu"), twin.get("bleu_std")
        lines.append(line)
    columns = [Column("method", "method"), Column("config", "configuration"), PARAMS_COLUMN,
               Column("plain", "from the labels", ".2f"),
               *(Column(recipe, f"distilled ({recipe})", ".2f") for recipe in recipes)]
    return lines, columns


def write_headline(rows: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]], out_dir: Path) -> str:
    """Write ``quality_10x.md/.tex/.csv`` (`headline_rows`, and `verdict` in its notes; the README shows its
    Markdown)."""
    lines, columns = headline_rows(rows)
    notes = (f"Test BLEU (tok) of the quality table's rows at ~{HEADLINE_BUDGET}× fewer parameters than dense: mean "
             "± std over seeds, a cell without ± is one seed, – not run. A distilled cell is the row "
             "`<configuration>-distilled-<recipe>` of the quality table. The study's question, answered from "
             "these rows: " + verdict_paragraph(rows, HEADLINE_BUDGET))
    return write_table(out_dir, f"quality_{HEADLINE_BUDGET}x",
                       f"Test BLEU at ~{HEADLINE_BUDGET}× fewer parameters, from the labels and distilled from dense",
                       lines, columns, records, notes)


def embeddings_alone(rows: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]]) -> str:
    """word2ketXS's claim at this scale, for each embeddings-only row: how many times fewer embedding parameters,
    and its BLEU against dense as a relative drop, within or outside the two rows' seed spread (sum of their
    stds); empty without such a row or without dense."""
    dense = next((r for r in rows if r["method"] == "dense" and r["bleu"] is not None), None)
    found = []
    for row in rows:
        if dense is None or row["method"].removesuffix(DISTILLED) != EMBEDDINGS_ONLY or row["bleu"] is None:
            continue
        emb = next(r for r in records if config_label(r) == row["config"])["params"]["by_type"]["embedding"]
        drop = dense["bleu"] - row["bleu"]
        spread = (dense["bleu_std"] or 0.0) + (row["bleu_std"] or 0.0)
        full = emb["dense_equivalent"]
        found.append(f"{row['config']} has {full / emb['params']:.0f}× fewer embedding parameters "
                     f"({emb['params']:,} vs {full:,}) and scores {row['bleu']:.2f} BLEU vs dense's "
                     f"{dense['bleu']:.2f}, {_relative_drop(drop, dense['bleu'])} "
                     f"({'within' if abs(drop) <= spread else 'outside'} the seed spread, ±{spread:.2f})")
    return (" The embeddings alone (word2ketXS: a hundred-fold or more reduction of embedding storage with almost "
            "no relative drop in accuracy): " + "; ".join(found) + ".") if found else ""


def compute_spent(records: Sequence[dict[str, Any]]) -> str:
    """What the table's runs cost, in hours of one thread: each run's steps times its measured step time (a
    resumed run counted whole; validation and test decoding left out), the distilled students apart, and each
    teacher decoding of the training sources once (runs that reused a decoding name its key and time)."""
    def hours(recs: Sequence[dict[str, Any]]) -> float:
        return sum(r["timings"]["train_steps"] * train_step_s(r) for r in recs) / 3600

    decodes = {seq["key"]: seq["decode_s"] for r in records
               if (seq := (r.get("distill") or {}).get("sequence")) and seq.get("decode_s") is not None}
    distilled = [r for r in records if distill_tag(r["config"])]
    text = (f" Compute: {hours(records):.1f} h of training steps over {len(records)} runs (steps × each run's "
            f"measured step time, one thread per run)")
    if distilled:
        text += (f", {hours(distilled):.1f} h of them for {len(distilled)} distilled students, plus "
                 f"{sum(decodes.values()) / 3600:.1f} h for {len(decodes)} teacher decoding(s) of the training "
                 "sources")
    return text + "."


def _relative_drop(drop: float, dense: float) -> str:
    return f"{100 * drop / dense:.1f}% below it" if dense > 0 else "no relative drop defined (dense scores 0)"


def build_quality_table(records: Sequence[dict[str, Any]], out_dir: Path) -> str:
    """Write ``quality.md/.tex/.csv``, its ~10x view ``quality_10x.*``, ``quality_bleu_vs_params.png`` and
    ``quality_curves.png``; returns the Markdown."""
    rows = quality_rows(records)
    copy = rows[0].get("copy_bleu")
    notes = ("Each configuration trained until its validation loss stopped improving (early stopping) or up to "
             "the epoch ceiling ('stopped by' says which: max_epochs means it was still improving), the "
             "best-validation checkpoint evaluated with beam search on the test split; mean ± "
             "std over seeds. Configurations differ only in the method (with its factor learning rate, "
             "optim.factor_lr_scale, chosen per method on the validation split: quality_why) and its size (and "
             "seed); a row named -drop0 also trains without dropout (arch.overrides.dropout=0, chosen on the "
             "validation split: quality_why). Train time/step is each run's own mean step time over dense's, "
             "measured in separate processes while other jobs shared the machine: a rough guide; the layer "
             "benchmark (Table 1) measures "
             "time ratios in one process. Plot: lines join each method's Pareto front; points at one budget are "
             "spread sideways by a few percent.")
    if any(r["method"].endswith(DISTILLED) for r in rows):
        notes += (" A distilled row (-distilled-<recipe>) trained the same configuration with the dense run of its "
                  "own seed as teacher (seq-refs: the teacher's beam-5 translations of the training sources beside "
                  "the references, quality/grid_distill_seq_refs; seq-refs-attention: the same plus the KL between "
                  "the teacher's and the student's attention distributions, quality/grid_distill), the recipes "
                  "chosen on the validation split (quality_distill); its time/step includes the teacher's forward "
                  "pass where the recipe needs one (attention) but not the teacher's one-off decoding.")
        notes += distillation_moves(rows)
    others = [verdict_paragraph(rows, budget) for budget in VERDICT_BUDGETS if budget != HEADLINE_BUDGET]
    notes += f" The study's question at the other budgets: {' '.join(others)}" if others else ""  # ~10x: its view
    notes += embeddings_alone(rows, records)
    if copy is not None:
        notes += f" Copying the source scores {copy:.2f} BLEU (tok) on the same test split."
    notes += compute_spent(records)
    md = write_table(out_dir, "quality", "Quality at matched parameter budgets (De→En sample, transformer_demo)",
                     rows, QUALITY_COLUMNS, records, notes, csv_columns=CSV_COLUMNS)
    write_headline(rows, records, out_dir)
    plot_bleu_vs_params(rows, out_dir / "quality_bleu_vs_params.png", copy, stamp(records))
    plot_curves(records, out_dir / "quality_curves.png", "validation loss (bits/token)", stamp(records))
    return md



# -- does the gap depend on the model's size: the same ~10x compression of a narrower base -------------------
WIDTH_COLUMNS = [
    Column("base", "base model"), Column("config", "configuration"), PARAMS_COLUMN,
    Column("reduction", "fewer params than its base (×)", ".1f"),
    VALID_LOSS_COLUMN, Column("valid_gap", "Δ valid loss vs its base (bits)", "+.3f"),
    BLEU_COLUMN, Column("bleu_kept", "BLEU kept (% of its base)", ".0f"), *TRAINING_COLUMNS,
]


def base_label(record: dict[str, Any]) -> str:
    """The architecture a run compresses (``d128``, ``d64``): its label without a variant suffix."""
    return arch_label(record).split("-")[0]


def width_rows(records: Sequence[dict[str, Any]], budget: int = 10) -> list[dict[str, Any]]:
    """Per base architecture with a factorized run on it: its dense model and its from-scratch order-2
    Shapeshifter rows at about ``budget``x fewer parameters than that dense model, widest base first.

    Only plain architectures count (a ``d128-drop0`` variant is not a base of its own); the gap columns are
    against the dense model of the same base.
    """
    bases = {base_label(r) for r in records if on_narrow_base(r)} | {DENSE_ARCH_LABEL}
    rows = []
    for base in sorted(bases, key=lambda b: -int(b.removeprefix("d"))):
        recs = [r for r in records if arch_label(r) == base and method(r) in ("dense", "narrow dense",
                                                                            "Shapeshifter o2")]
        dense = [r for r in recs if not r.get("policy")]
        if not dense:
            continue
        base_rows = translation_rows(recs, baseline=config_label(dense[0]), label=config_label)
        add_study_columns(base_rows, recs)
        ref = base_rows[0]  # translation_rows puts the baseline first
        for row in base_rows:
            row["reduction"] = ref["params"] / row["params"]
            if row is not ref and nearest_budget(row["reduction"]) != budget:
                continue
            row["base"] = f"{base} ({ref['params']:,} params)"
            row["valid_loss"] = row.pop("best")
            row["valid_gap"] = row["valid_loss"] - ref["valid_loss"] if None not in (row["valid_loss"],
                                                                                     ref["valid_loss"]) else None
            row["bleu_kept"] = 100 * row["bleu"] / ref["bleu"] if ref["bleu"] else None
            rows.append(row)
    return rows


def build_width_table(records: Sequence[dict[str, Any]], out_dir: Path) -> str:
    """Write ``quality_width.md/.tex/.csv``: does the ~10x gap to dense shrink as the base model grows?"""
    if not any(on_narrow_base(r) for r in records):  # not built until a run on a narrower base has finished
        raise FileNotFoundError("no finished run on a narrower base (experiment=quality/grid_width) yet")
    rows = width_rows(records)
    used = {h for row in rows for h in row["hashes"]}
    notes = ("Each base model (transformer_demo at the given width: d_model, FFN 2x d_model, same layers, heads and "
             "vocabulary) and Shapeshifter of order 2 from scratch at ~10x fewer parameters than that base, trained "
             "as every row of the quality table (early stopping on the validation loss, 40-epoch ceiling, factors "
             "at 3x the lr). The gap columns compare each row with the dense model of its own base: if the gap "
             "shrinks as the base grows, the size of the model, not only the compression, explains it.")
    return write_table(out_dir, "quality_width", "Does the gap at ~10× depend on the model's size? (De→En sample)",
                       rows, WIDTH_COLUMNS, [r for r in records if r["config_hash"] in used], notes)


# -- why the quality drops: one change at a time against a base configuration --------------------------------
WHY_BASE = {"shapeshift.name": "o2-r8-emb29", "optim.factor_lr_scale": 1.0, "arch.overrides.dropout": 0.1}
WHY_COLUMNS = [
    Column("change", "change against the base (o2-r8-emb29, one lr, dropout 0.1)"), PARAMS_COLUMN, VALID_LOSS_COLUMN,
    Column("delta", "Δ valid loss vs base", "+.3f"), Column("train_loss", "train loss, last epoch", ".3f"),
    REPORTED_BLEU_COLUMN, Column("epochs", "epochs", "g"), SEEDS_COLUMN,
]


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": value}`` for nested mappings (lists and empty mappings stay values)."""
    if not isinstance(node, dict) or not node:
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def describe_change(record: dict[str, Any], base: dict[str, Any]) -> str:
    """The settings in which ``record`` differs from the record ``base`` (names are left out: they follow the
    settings)."""
    a, b = flatten(record_settings(record)), flatten(record_settings(base))

    def value(flat: dict[str, Any], key: str) -> Any:  # a key added later with an empty default ("") is no change
        return None if flat.get(key) == "" else flat.get(key)

    keys = sorted(k for k in a.keys() | b.keys()
                  if value(a, k) != value(b, k) and not k.endswith(".name") and k != "seed")
    return "; ".join(f"{k}: {b.get(k, '–')} → {a.get(k, '–')}" for k in keys) or "base"


def why_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per change against the base run (its seeds averaged: mean ± std; they differ in nothing else:
    `check_seed_replicas`), with its validation loss against the base's."""
    def is_base(rec: dict[str, Any]) -> bool:
        flat = flatten(rec["config"])
        return all(flat.get(k) == v for k, v in WHY_BASE.items())

    base = next((r for r in records if is_base(r)), None)
    if base is None:  # not built until the base run has finished
        raise FileNotFoundError(f"no base record ({WHY_BASE}) among the quality_why records")
    fields = {**TRAINING_FIELDS, "change": lambda r: describe_change(r, base),
              "params": "params.total", "valid_loss": best_valid, "bleu": "metrics.test.tokenized_bleu",
              "train_loss": lambda r: (r["metrics"].get("train") or {}).get("train_loss_epoch")}
    # the records of a row in the order they were read (not sorted, unlike the other tables)
    table = configurations(records, "change", fields, first=["params"], mean_std=["valid_loss", "bleu"],
                           mean=["epochs", "train_loss"], sort_hashes=False)
    base_loss = table.loc[table["change"] == "base", "valid_loss"].iloc[0]
    rows = to_rows(table.assign(delta=table["valid_loss"] - base_loss))
    rows.sort(key=lambda r: (r["change"] != "base", r["valid_loss"] if r["valid_loss"] is not None else 1e9))
    return rows


def build_why_table(records: Sequence[dict[str, Any]], out_dir: Path) -> str:
    rows = why_rows(records)
    notes = ("Every run has the same fixed budget (see epochs) and differs from the base in the listed settings "
             "only; lower validation loss is better. Chosen on the validation split, never on the test split.")
    return write_table(out_dir, "quality_why", "Why the quality drops: one change at a time (~10× fewer parameters)",
                       rows, WHY_COLUMNS, records, notes)


KRONECKER_SUMS = ("Shapeshifter", "PHM")  # the methods the budget target is about (PHM: first factors n x n)


def verdict(rows: Sequence[dict[str, Any]], budget: int = 10, tolerance: float = 1.0) -> str:
    """The study's question at one budget, answered from the rows, for the plain and the distilled rows apart:
    is the best Kronecker-sum row (Shapeshifter or PHM) within ``tolerance`` BLEU of dense, and ahead of the
    other methods trained the same way?"""
    dense = next((r for r in rows if r["method"] == "dense"), None)
    at = [r for r in rows if r.get("budget") == budget and r["bleu"] is not None]
    blocks = []
    for recipe, distilled in (("from the labels", False), ("distilled from dense", True)):
        same = [r for r in at if r["method"].endswith(DISTILLED) == distilled]
        if same or not distilled:
            blocks.append(_verdict_block(dense, same, f"~{budget}×, {recipe}", tolerance, budget))
    return "\n".join(blocks)


def verdict_paragraph(rows: Sequence[dict[str, Any]], budget: int) -> str:
    """`verdict` as one paragraph, for a table's notes."""
    return " ".join(line.strip() for line in verdict(rows, budget).splitlines())


def _verdict_block(dense: dict[str, Any] | None, at: Sequence[dict[str, Any]], where: str, tolerance: float,
                   budget: int) -> str:
    ours = [r for r in at if r["method"].startswith(KRONECKER_SUMS)]
    if dense is None or not ours:
        return f"{where}: not enough finished runs yet (needs the dense row and a Kronecker-sum row)."
    best = max(ours, key=lambda r: r["bleu"])
    lines = [f"{where}: best Kronecker-sum row {_against_dense(best, dense, tolerance)}"]
    full = [r for r in ours if r["reduction"] >= budget]  # the target asks for at least the budget's reduction
    if best["reduction"] < budget and full:
        best_full = max(full, key=lambda r: r["bleu"])
        lines.append(f"  with at least {budget}× fewer: {_against_dense(best_full, dense, tolerance)}")
    for other in sorted({r["method"] for r in at} - {r["method"] for r in ours}):
        rival = max((r for r in at if r["method"] == other), key=lambda r: r["bleu"])
        ahead = best["bleu"] - rival["bleu"]
        lines.append(f"  vs {other} {rival['config']} ({rival['bleu']:.2f}): {'ahead' if ahead > 0 else 'behind'} "
                     f"by {abs(ahead):.2f}.")
    return "\n".join(lines)


def _against_dense(row: dict[str, Any], dense: dict[str, Any], tolerance: float) -> str:
    gap = dense["bleu"] - row["bleu"]
    return (f"{row['config']} ({row['method']}, {row['reduction']:.1f}× fewer, {row['seeds']} seed(s)) scores "
            f"{row['bleu']:.2f} BLEU vs dense {dense['bleu']:.2f}: {'within' if gap <= tolerance else 'more than'} "
            f"{tolerance:g} BLEU (gap {gap:+.2f}).")


# -- the classification side: encoder_small on the SNLI sample -----------------------------------------------
QUALITY_GLUE_COLUMNS = [*METHOD_COLUMNS, Column("val_accuracy", "valid accuracy (%, best)", ".1f"),
                        Column("accuracy", "test accuracy (%)", ".1f"), TIME_COLUMN, *TRAINING_COLUMNS]
QUALITY_GLUE_CSV_COLUMNS = [Column(k, k) for k in (
    "method", "config", "params", "reduction_vs_dense", "accuracy", "accuracy_std", "val_accuracy",
    "val_accuracy_std", "train_time_ratio", "epochs", "stopped_by", "seeds")]


def quality_glue_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """`glue_rows` per configuration (narrow dense apart from dense), with the study's columns: test accuracy,
    best validation accuracy (the monitored value of the evaluated checkpoint), epochs and how training ended."""
    if len({r.get("task", {}).get("name") for r in records}) > 1:
        raise ValueError("quality_glue: records of several tasks; a classification study is one task")
    rows = glue_rows(records, label=config_label)
    add_study_columns(rows, records, scale=100.0)
    for row in rows:
        row["accuracy"], row["accuracy_std"] = row["score"], row["score_std"]
        row["val_accuracy"], row["val_accuracy_std"] = row.pop("best"), row.pop("best_std")
    rows.sort(key=_study_order)
    return rows


def glue_study_notes(rows: Sequence[dict[str, Any]]) -> str:
    """The notes under a classification study table, with the majority-class rate when the records have it."""
    notes = ("Each configuration trained until its validation accuracy stopped improving (early stopping, see "
             "'stopped by'; the linear learning-rate decay spans the max_epochs ceiling), the best-validation "
             "checkpoint evaluated on the test split; mean ± std over seeds. Configurations differ only in the "
             "method and its size (and seed).")
    if any(r["method"].endswith(DISTILLED) for r in rows):
        notes += (" A distilled row (-distilled-word) trained the same configuration with the dense run of its own "
                  "seed as teacher, mixing the task loss with the teacher's logits (alpha 0.9, T 1).")
        notes += distillation_moves(rows, "accuracy", "accuracy (points)")
    majority = next((r["majority"] for r in rows if r.get("majority") is not None), None)
    if majority is not None:
        notes += f" Predicting the majority class scores {majority:.1f}% on the same test split."
    return notes


def build_quality_glue_table(records: Sequence[dict[str, Any]], out_dir: Path) -> str:
    """Write ``quality_glue.md/.tex/.csv`` and ``quality_glue_curves.png``; returns the Markdown."""
    rows = quality_glue_rows(records)
    task = rows[0]["task"] if rows else "?"
    plot_curves(records, out_dir / "quality_glue_curves.png", "validation accuracy (%)", stamp(records), scale=100.0)
    return write_table(out_dir, "quality_glue", f"Quality at ~10× fewer parameters ({task}, encoder_small)", rows,
                       QUALITY_GLUE_COLUMNS, records, glue_study_notes(rows), csv_columns=QUALITY_GLUE_CSV_COLUMNS)


# -- the same study on the full SNLI subset (data=snli_full), with each row's gap to dense ----------------------
GAP_COLUMN = Column("gap", "Δ test accuracy vs dense (points)", "+.1f")
MAJORITY_COLUMN = Column("majority", "majority class (%, test)", ".1f")
QUALITY_SNLI_COLUMNS = [*QUALITY_GLUE_COLUMNS[:6], GAP_COLUMN, MAJORITY_COLUMN, *QUALITY_GLUE_COLUMNS[6:]]
QUALITY_SNLI_CSV_COLUMNS = [*QUALITY_GLUE_CSV_COLUMNS[:6], *(Column(k, k) for k in ("gap", "gap_std", "majority")),
                            *QUALITY_GLUE_CSV_COLUMNS[6:]]


def add_gap_to_dense(rows: list[dict[str, Any]], records: Sequence[dict[str, Any]]) -> None:
    """``gap``: the row's mean test accuracy minus dense's (points); ``gap_std``: the sample std over seeds of the
    per-seed gaps (row seed s minus dense seed s), where two or more seeds of both are recorded. With every seed
    of both finished the mean of the per-seed gaps is ``gap``."""
    dense = next((r for r in rows if r["config"] == "dense"), None)
    accuracy = records_frame(records, config=config_label, seed="config.seed", accuracy=score).pivot(
        index="seed", columns="config", values="accuracy")  # test accuracy (%) of each row (column) and seed
    for row in rows:
        if dense is None or row["accuracy"] is None or dense["accuracy"] is None:
            row["gap"] = row["gap_std"] = None
            continue
        row["gap"] = row["accuracy"] - dense["accuracy"]
        std = (accuracy[row["config"]] - accuracy["dense"]).std()
        row["gap_std"] = None if row is dense or pd.isna(std) else float(std)  # dense: zero by construction


def build_quality_snli_table(records: Sequence[dict[str, Any]], out_dir: Path) -> str:
    """Write ``quality_snli.md/.tex/.csv`` and ``quality_snli_curves.png`` (data=snli_full); returns the
    Markdown."""
    rows = quality_glue_rows(records)
    add_gap_to_dense(rows, records)
    task = rows[0]["task"] if rows else "?"
    notes = glue_study_notes(rows) + (
        " Δ vs dense: the row's mean test accuracy minus dense's, ± the std over seeds of the per-seed gaps "
        "(seed s against dense seed s).")
    plot_curves(records, out_dir / "quality_snli_curves.png", "validation accuracy (%)", stamp(records), scale=100.0)
    return write_table(out_dir, "quality_snli", f"Quality at ~10× fewer parameters ({task}, encoder_small)", rows,
                       QUALITY_SNLI_COLUMNS, records, notes, csv_columns=QUALITY_SNLI_CSV_COLUMNS)
