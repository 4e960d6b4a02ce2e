"""The paper's tables rebuilt from run records only: Table 1 (time overhead), Table 2 (quality vs size),
the embedding-compression table, the ablation (rank x scheme x layers) and the GLUE table.

Records live under ``<records>/<group>/``; the group of a table is its id at full scale and ``<id>-smoke`` at
smoke scale (see ``conf/scale/``). Outputs go to ``<tables>/`` (full) or ``<tables>/smoke/`` as Markdown,
LaTeX (booktabs), CSV and PNG, each stamped with the records it came from. Rebuilding from the same records
gives the same bytes: rows are sorted, floats formatted, no timestamps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from shapeshifter.experiment.records import load_records
from shapeshifter.reports.frame import (
    PARAMS_COLUMN,
    REDUCTION_COLUMN,
    Column,
    by_configuration,
    check_seed_replicas,
    pareto_front,
    stamp,
    to_rows,
    write_table,
)
from shapeshifter.reports.glue import GLUE_COLUMNS, glue_rows
from shapeshifter.reports.plots import log_ticks, plot_quality_vs_params, pyplot, save_figure
from shapeshifter.reports.translation import TRANSLATION_COLUMNS, translation_rows

# Figures quoted from the paper (not measured here); shown beside our measurements.
PAPER_TRAIN_OVERHEAD = 0.17
PAPER_PREDICT_OVERHEAD = 0.13
PAPER_PARAM_REDUCTION = ">10×"


def finished_records(records_dir: Path, kind: str) -> list[dict[str, Any]]:
    """The finished records of one kind; FileNotFoundError when there are none (that table is not built)."""
    records = [r for r in load_records(records_dir) if r.get("kind") == kind]
    if not records:
        raise FileNotFoundError(f"no finished {kind} records under {records_dir}")
    return records


# -- Table 1: time overhead ----------------------------------------------------------------------------------
TABLE1_COLUMNS = [
    Column("config", "configuration"), Column("device", "device"), Column("compiled", "compiled"), PARAMS_COLUMN,
    REDUCTION_COLUMN, Column("train_ms", "train step (ms)", ".1f"),
    Column("train_ratio", "train step (× dense)", ".2f"), Column("forward_ratio", "forward, no grad (× dense)", ".2f"),
    Column("beam_ratio", "beam search (× dense)", ".2f"), Column("peak_mb", "train step peak memory (MB)", ".1f"),
    Column("memory_ratio", "peak memory (× dense)", ".2f"),
]


def table1_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per (record, policy) of the benchmark: its device, eager or compiled (`compiled`), size, times and
    ratios to dense; peak memory (MB) missing where a record predates the benchmark measuring it."""
    def row(rec: dict[str, Any], name: str, res: dict[str, Any]) -> dict[str, Any]:
        peak = res.get("peak_train_bytes")
        return {"config_hash": rec["config_hash"], "device": rec["config"]["device"], "compiled": compiled(rec),
                "config": name,
                "params": res["params"], "reduction": res["reduction_vs_dense"],
                "train_ms": 1000 * res["median"]["train_step_s"], "train_ratio": res["ratio_to_dense"]["train_step_s"],
                "forward_ratio": res["ratio_to_dense"]["forward_s"], "beam_ratio": res["ratio_to_dense"]["beam_s"],
                "peak_mb": None if peak is None else peak / 2**20,
                "memory_ratio": None if peak is None else res["peak_train_ratio_to_dense"]}

    return pd.DataFrame([row(rec, name, res) for rec in records for name, res in rec["results"].items()])


def compiled(record: dict[str, Any]) -> str:
    """"yes" for a Table 1 record measured with ``--compile`` (torch.compile), "no" for eager (every record
    before the option)."""
    return "yes" if record["config"].get("compile") else "no"


def table1_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (device, eager or compiled, policy); ratios averaged over the records (seeds) with ± std when
    several; ratios are against dense under the same mode (compiled vs compiled)."""
    for mode in {(rec["config"]["device"], compiled(rec)) for rec in records}:
        check_seed_replicas([rec for rec in records if (rec["config"]["device"], compiled(rec)) == mode],
                            f"Table 1 on {mode[0]}" + (" compiled" if mode[1] == "yes" else ""))
    measured = ["train_ms", "train_ratio", "forward_ratio", "beam_ratio", "peak_mb", "memory_ratio"]
    table = by_configuration(table1_frame(records), ["device", "compiled", "config"], first=["params", "reduction"],
                             mean_std=measured)
    rows = to_rows(table)
    rows.sort(key=lambda r: (r["device"], r["compiled"], r["reduction"], r["config"]))
    return rows


TABLE1_SERIES = (("train_ratio", "train step"), ("forward_ratio", "forward"), ("beam_ratio", "beam"),
                 ("memory_ratio", "train peak memory"))


def _spread(values: Sequence[float], gap: float = 1.3) -> list[float]:
    """Sorted values, dropping any within a factor ``gap`` of the last one kept (tick labels that do not overlap
    on a log axis)."""
    kept: list[float] = []
    for v in sorted(set(values)):
        if not kept or v / kept[-1] >= gap:
            kept.append(v)
    return kept


def _plot_table1_series(ax: Any, pts: Sequence[dict[str, Any]], compiled: bool) -> None:
    """One line per Table 1 measurement of one mode (eager or compiled) on one device's panel."""
    for i, (key, label) in enumerate(TABLE1_SERIES):
        measured = [r for r in pts if r.get(key) is not None]
        if not measured:  # records that predate the memory measurement
            continue
        memory = key == "memory_ratio"
        name = label if memory else f"{label} time"
        ax.plot([r["reduction"] for r in measured], [r[key] for r in measured], color=f"C{i}",
                marker="s" if memory else "o", markersize=4, linestyle="--" if memory else "-",
                markerfacecolor="none" if compiled else f"C{i}", label=f"{name} (compiled)" if compiled else name)


def plot_ratio_vs_reduction(rows: Sequence[dict[str, Any]], path: Path, source: str = "") -> Path:
    """Time and peak-memory ratios to dense against how many times fewer parameters each policy has: one panel
    per device (one y axis), one line per measurement in the same colour on every panel (compiled rows: the same
    colour, hollow markers), both policy families (rN-emb16 and the o2 budgets) on one x axis; the legend sits
    right of the panels."""
    devices = sorted({r["device"] for r in rows})
    fig, axes = pyplot().subplots(1, len(devices), figsize=(2.0 + 3.6 * len(devices), 3.8), dpi=120, sharey=True,
                                  squeeze=False)
    for ax, device in zip(axes[0], devices, strict=True):
        pts = sorted((r for r in rows if r["device"] == device and r["config"] != "dense"),
                     key=lambda r: r["reduction"])
        for mode in sorted({r.get("compiled", "no") for r in pts}):
            _plot_table1_series(ax, [r for r in pts if r.get("compiled", "no") == mode], compiled=mode == "yes")
        ax.axhline(1.0, color="grey", linewidth=1, label="dense (= 1)")
        ax.axhline(1 + PAPER_TRAIN_OVERHEAD, color="C5", linestyle=":", linewidth=1.2,
                   label=f"paper: train +{PAPER_TRAIN_OVERHEAD:.0%} (quoted)")
        ax.axhline(1 + PAPER_PREDICT_OVERHEAD, color="C6", linestyle=":", linewidth=1.2,
                   label=f"paper: prediction +{PAPER_PREDICT_OVERHEAD:.0%} (quoted)")
        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        ticks = _spread([r["reduction"] for r in pts], gap=(hi / lo) ** 0.12)  # labels ~1/8 of a panel apart
        ax.set_xticks(ticks, [f"{t:.0f}×" if t >= 10 else f"{t:.1f}×" for t in ticks], fontsize=8)
        ax.minorticks_off()
        ax.set_title(device, fontsize=10)
        ax.set_xlabel("fewer parameters than dense (×, log scale)", fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("time or peak memory (× dense)")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7)
    return save_figure(fig, path, source)


def _runs_by_device(records: Sequence[dict[str, Any]]) -> str:
    """'5 with 1 CPU thread(s) on cpu; 3 on cuda': each device's repetitions (and threads) of its own."""
    parts = []
    for device in sorted({rec["config"]["device"] for rec in records}):
        cfg = next(rec["config"] for rec in records if rec["config"]["device"] == device)
        threads = f" with {cfg['threads']} CPU thread(s)" if device == "cpu" else ""
        parts.append(f"{cfg['reps']}{threads} on {device}")
    return "; ".join(parts)


def _compiled_note(records: Sequence[dict[str, Any]]) -> str:
    """A sentence on the compiled rows, only when the table has any (eager-only tables keep their text)."""
    if not any(compiled(rec) == "yes" for rec in records):
        return ""
    return (" compiled: yes = training step, forward and beam search under torch.compile (bench_model --compile), "
            "ratios against the compiled dense model; no = eager.")


def build_table1(records_dir: Path, out_dir: Path, name: str = "table1",
                 title: str = "Table 1: time overhead of Shapeshifter vs dense") -> str:
    records = finished_records(records_dir, "bench_model")
    rows = table1_rows(records)
    cfg = records[0]["config"]
    amp = " Every measurement under bf16 autocast (weights and Adam state in fp32)." if cfg.get("amp") else ""
    notes = (f"Whole {cfg['arch']} model ({'small variant, ' if cfg.get('scale') == 'smoke' else ''}"
             f"{cfg['tokens']:,}-token batch; beam {cfg['beam']} over {cfg['decode_sentences']} sentences, "
             f"{cfg['decode_len']} steps); ratios are medians of same-repetition ratios over interleaved "
             f"repetitions ({_runs_by_device(records)}); rN-emb16 = rank N in "
             f"attention/FFN/output, rank 16 for the embeddings; o2-rN-embE = order 2, rank N, embeddings rank E "
             f"(the quality study's ~3×/10×/25× budgets). Peak memory: parameters, Adam state and batch plus the "
             f"most one training step allocates on top (CUDA: max_memory_allocated; CPU: profiler allocator "
             f"events), measured alone after the timings; – where a record predates it.{amp}{_compiled_note(records)}"
             f" The paper reports "
             f"+{PAPER_TRAIN_OVERHEAD:.0%} training and +{PAPER_PREDICT_OVERHEAD:.0%} prediction time for its "
             f"policy (quoted, not measured here).")
    md = write_table(out_dir, name, title, rows, TABLE1_COLUMNS, records, notes)
    plot_ratio_vs_reduction(rows, out_dir / f"{name}_ratio_vs_reduction.png", stamp(records))
    return md


# -- translation tables ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TranslationTable:
    name: str
    title: str
    columns: tuple[Column, ...]


EXTRA = {c.key: c for c in (Column("layers", "factorized"), Column("rank", "rank"), Column("emb_rank", "emb. rank"),
                             Column("order", "order"), Column("scheme", "scheme"))}
_BASE = {c.key: c for c in TRANSLATION_COLUMNS}

TRANSLATION_TABLES = {
    "table2": TranslationTable("table2", "Table 2: IWSLT'14 De→En quality vs size", tuple(TRANSLATION_COLUMNS)),
    "table2_wmt": TranslationTable("table2_wmt", "Table 2 (WMT En→Ro): quality vs size", tuple(TRANSLATION_COLUMNS)),
    "embedding_table": TranslationTable(
        "embedding_table", "Embedding compression: embeddings only, order × rank",
        (_BASE["config"], EXTRA["order"], EXTRA["emb_rank"], _BASE["params"], _BASE["reduction"], _BASE["bleu"],
         _BASE["bleu_drop_pct"])),
    "ablation": TranslationTable(
        "ablation", "Ablation: rank × reshape scheme × factorized layers",
        (_BASE["config"], EXTRA["layers"], EXTRA["rank"], EXTRA["scheme"], _BASE["params"], _BASE["reduction"],
         _BASE["bleu"], _BASE["bleu_drop_pct"], _BASE["train_time_ratio"])),
}


def _policy_columns(record: dict[str, Any]) -> dict[str, Any]:
    """Layers / rank / order / scheme of a run, read from its policy (``–`` for the dense baseline)."""
    policy = record.get("policy") or {}
    if not policy:
        return {"layers": None, "rank": "–", "emb_rank": "–", "order": "–", "scheme": "–"}
    specs = list(policy.values())
    main = next((policy[t] for t in ("attention", "ffn", "embedding", "output") if t in policy), specs[0])
    scheme = main["scheme"] if isinstance(main["scheme"], str) else "custom"
    return {"layers": ", ".join(policy), "rank": main["rank"],
            "emb_rank": policy["embedding"]["rank"] if "embedding" in policy else "–",
            "order": main["order"], "scheme": scheme}


def build_translation_table(spec: TranslationTable | str, records_dir: Path, out_dir: Path) -> str:
    """A quality-vs-size table of translation runs (``spec``: a `TranslationTable` or the name of one in
    `TRANSLATION_TABLES`), written as ``<out_dir>/<spec.name>.*``."""
    spec = TRANSLATION_TABLES[spec] if isinstance(spec, str) else spec
    name = spec.name
    records = finished_records(records_dir, "translation")
    rows = translation_rows(records)
    by_name = {r["config"]["shapeshift"]["name"]: r for r in sorted(records, key=lambda r: r["config_hash"])}
    for row in rows:
        row.update(_policy_columns(by_name[row["config"]]))
    notes = f"Ratios are against the dense baseline of the same table; the paper reports {PAPER_PARAM_REDUCTION} " \
            "fewer parameters for its rank policy (quoted)."
    front = pareto_front(rows)
    notes += f" Pareto front (fewer parameters vs higher BLEU): {', '.join(r['config'] for r in front)}."
    copy = rows[0].get("copy_bleu")
    if copy is not None:
        notes += f" Copy-the-source BLEU (tok) on the same test split: {copy:.2f}."
    md = write_table(out_dir, name, spec.title, rows, spec.columns, records, notes)
    plot_quality_vs_params(rows, out_dir / f"{name}_bleu_vs_params.png", baseline=copy, source=stamp(records))
    return md


# -- GLUE table ------------------------------------------------------------------------------------------------
GLUE_TABLE_COLUMNS = [*GLUE_COLUMNS[:1], Column("setting", "init"), *GLUE_COLUMNS[1:]]


def plot_glue_scores(rows: Sequence[dict[str, Any]], path: Path, source: str = "") -> Path:
    """Score against total parameters, one panel per task: one colour per configuration (the same on every
    panel), one marker shape per setting (scratch / pretrained), one legend for all right of the panels (text
    beside the points overlapped where configurations have about the same size and score)."""
    from matplotlib.lines import Line2D

    tasks = sorted({r["task"] for r in rows})
    configs = list(dict.fromkeys(r["config"] for r in sorted(rows, key=lambda r: -r["params"])))
    cols = min(4, len(tasks))
    nrows = -(-len(tasks) // cols)
    fig, axes = pyplot().subplots(nrows, cols, figsize=(1.6 + 3.2 * cols, 2.8 * nrows), dpi=120, squeeze=False)
    settings = (("o", "scratch"), ("s", "pretrained"))
    for ax, task in zip(axes.flat, tasks, strict=False):  # extra panels are hidden below
        pts = [r for r in rows if r["task"] == task and r["score"] is not None]
        for marker, init in settings:
            for r in (r for r in pts if r["setting"] == init):
                ax.scatter([r["params"]], [r["score"]], marker=marker, s=28, zorder=3,
                           color=f"C{configs.index(r['config']) % 10}")
        majority = next((r["majority"] for r in rows if r["task"] == task and r.get("majority") is not None), None)
        if majority is not None:
            ax.axhline(majority, color="grey", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        if pts:
            log_ticks(ax, [r["params"] for r in pts])
        ax.set_title(f"{task} ({next(r['metric'] for r in rows if r['task'] == task)})", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.set_xlabel("total parameters", fontsize=8)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    handles = [Line2D([], [], linestyle="", marker="o", color=f"C{i % 10}", label=c) for i, c in enumerate(configs)]
    handles += [Line2D([], [], linestyle="", marker=m, color="black", markerfacecolor="none", label=init)
                for m, init in settings if any(r["setting"] == init for r in rows)]
    if any(r.get("majority") is not None for r in rows):
        handles.append(Line2D([], [], color="grey", linestyle="--", linewidth=1, label="majority class"))
    axes[0][len(tasks[:cols]) - 1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7)
    return save_figure(fig, path, source)


def build_glue_table(records_dir: Path, out_dir: Path) -> str:
    records = finished_records(records_dir, "glue")
    rows = glue_rows(records)
    notes = ("Scores: the task's main metric (%) on the test split, or validation where test labels are hidden, at "
             "the best validation checkpoint. init: scratch = random init (factors drawn to the dense layer's "
             "variance); pretrained = factors projected from the pretrained checkpoint, then fine-tuned. Time "
             "ratios are against the dense model of the same task and init.")
    md = write_table(out_dir, "glue_table", "GLUE: tasks × {dense, Shapeshifter}, from scratch and projected "
                       "from pretrained", rows, GLUE_TABLE_COLUMNS, records, notes)
    plot_glue_scores(rows, out_dir / "glue_table_score_vs_params.png", stamp(records))
    return md
