"""Tables and plots generated from run records only (never from live runs).

Every output is stamped with the config hashes of the records it was built from, and is byte-identical
when rebuilt from the same records (rows are sorted, floats formatted, no timestamps).
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shapeshifter.app.records import semantic_config


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    fmt: Callable[[Any], str] = str


def train_step_s(record: dict[str, Any]) -> float:
    """A run's mean training step time: the record's ``train_step_s`` (measured inside the training loop, so
    validation, checkpoints and the epochs of an interrupted attempt stay out), else for records without it
    ``train_s / train_steps``, which over-counts nothing only when the run was never resumed."""
    timings = record["timings"]
    if timings.get("train_step_s") is not None:
        return float(timings["train_step_s"])
    return timings["train_s"] / max(1, timings["train_steps"])


def fmt_num(fmt: str) -> Callable[[Any], str]:
    """A cell formatter: ``format(v, fmt)``, or a dash for a missing value."""
    return lambda v: "–" if v is None else format(v, fmt)


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample std over seeds; std is None for a single value (nothing to report), both None for none."""
    if not values:
        return None, None
    return (values[0], None) if len(values) == 1 else (statistics.mean(values), statistics.stdev(values))


def check_seed_replicas(records: Sequence[dict[str, Any]], row: str) -> None:
    """Records averaged into one row must differ only in their seed (and output paths): a row that silently
    mixed, say, two learning rates or repetition counts would report a mean ± std of different experiments."""
    def settings(rec: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in semantic_config(rec["config"]).items() if k != "seed"}
        if isinstance(out.get("shapeshift"), dict) and "init_from" in out["shapeshift"]:
            # the source is the dense run *of the same seed*: its path differs between replicas by design
            out["shapeshift"] = {k: v for k, v in out["shapeshift"].items() if k != "init_from"}
        if isinstance(out.get("distill"), dict):  # the teacher too is the dense run of the same seed
            out["distill"] = {k: v for k, v in out["distill"].items() if k != "teacher"}
        return out

    seen: dict[Any, dict[str, Any]] = {}
    for rec in records:
        seed = rec["config"].get("seed")
        if seed in seen:
            raise ValueError(
                f"row {row!r}: records {seen[seed].get('_path', seen[seed]['config_hash'])} and "
                f"{rec.get('_path', rec['config_hash'])} are the same configuration and seed ({seed}); a duplicate "
                f"is not a second seed: remove one of them")
        seen[seed] = rec
    first = settings(records[0])
    for rec in records[1:]:
        other = settings(rec)
        if other != first:
            keys = sorted(k for k in first.keys() | other.keys() if first.get(k) != other.get(k))
            raise ValueError(
                f"row {row!r}: records {records[0].get('_path', records[0]['config_hash'])} and "
                f"{rec.get('_path', rec['config_hash'])} differ in {keys}, not only in the seed; move the outdated "
                f"record out of the records folder (or give the configurations different names)")


def _per_token(recs: Sequence[dict[str, Any]]) -> float | None:
    """Mean test decoding seconds per generated token; None when a record lacks the output length."""
    values = []
    for r in recs:
        sys_len = (r["metrics"]["test"].get("tokenized_bleu_detail") or {}).get("sys_len")
        if not sys_len:
            return None
        values.append(r["timings"]["test_generate_s"] / sys_len)
    return statistics.mean(values)


def policy_name(record: dict[str, Any]) -> str:
    return record["config"]["shapeshift"]["name"]


def translation_rows(records: Sequence[dict[str, Any]], baseline: str = "dense",
                     label: Callable[[dict[str, Any]], str] = policy_name) -> list[dict[str, Any]]:
    """One row per configuration (``label`` of its records; seeds averaged), with ratios against the
    ``baseline`` configuration."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault(label(rec), []).append(rec)
    rows = []
    for name, recs in groups.items():
        check_seed_replicas(recs, name)
        bleu = mean_std([r["metrics"]["test"]["tokenized_bleu"] for r in recs])
        sacre = mean_std([r["metrics"]["test"].get("sacrebleu") or 0.0 for r in recs])
        first = recs[0]
        rows.append({
            "config": name,
            "seeds": len(recs),
            "params": first["params"]["total"],
            "reduction": first["params"]["reduction_vs_dense"],
            "bleu": bleu[0], "bleu_std": bleu[1],
            "sacrebleu": sacre[0], "sacrebleu_std": sacre[1],
            "train_s_per_step": statistics.mean(map(train_step_s, recs)),
            "test_generate_s": statistics.mean(r["timings"]["test_generate_s"] for r in recs),
            # per generated token: a weaker model may emit longer outputs, which is not a per-step cost
            "generate_s_per_token": _per_token(recs),
            "copy_bleu": (first["metrics"].get("copy_baseline") or {}).get("tokenized_bleu"),
            "hashes": sorted(r["config_hash"] for r in recs),
        })
    base = next((r for r in rows if r["config"] == baseline), None)
    for row in rows:
        row["bleu_drop_pct"] = (100 * (base["bleu"] - row["bleu"]) / base["bleu"]) if base and base["bleu"] else None
        row["train_time_ratio"] = row["train_s_per_step"] / base["train_s_per_step"] if base else None
        row["infer_time_ratio"] = row["test_generate_s"] / base["test_generate_s"] if base else None
        per_token = row["generate_s_per_token"], base["generate_s_per_token"] if base else None
        row["infer_token_ratio"] = per_token[0] / per_token[1] if None not in per_token else None
    rows.sort(key=lambda r: (r["config"] != baseline, -r["params"], r["config"]))
    return rows


# the size columns every table shows
PARAMS_COLUMN = Column("params", "params", lambda v: f"{v:,}")
REDUCTION_COLUMN = Column("reduction", "fewer params (×)", fmt_num(".1f"))

TRANSLATION_COLUMNS = [
    Column("config", "configuration"),
    PARAMS_COLUMN,
    REDUCTION_COLUMN,
    Column("bleu", "BLEU (tok)", fmt_num(".2f")),
    Column("sacrebleu", "sacreBLEU", fmt_num(".2f")),
    Column("bleu_drop_pct", "rel. BLEU drop (%)", fmt_num(".1f")),
    Column("train_time_ratio", "train time/step (× dense)", fmt_num(".2f")),
    Column("infer_time_ratio", "test decoding time (× dense)", fmt_num(".2f")),
    Column("infer_token_ratio", "decoding time per output token (× dense)", fmt_num(".2f")),
]


def _cell(row: dict[str, Any], col: Column) -> str:
    value = row.get(col.key)
    text = col.fmt(value) if value is not None else "–"
    std = row.get(f"{col.key}_std")
    return f"{text} ± {std:.2f}" if std is not None else text


def to_markdown(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    lines = ["| " + " | ".join(c.header for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_cell(r, c) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_latex(rows: Sequence[dict[str, Any]], columns: Sequence[Column], caption: str) -> str:
    def esc(text: str) -> str:
        return text.replace("_", r"\_").replace("%", r"\%").replace("×", r"$\times$").replace("±", r"$\pm$")

    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "r" * (len(columns) - 1) + "}",
             r"\toprule", " & ".join(esc(c.header) for c in columns) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(_cell(r, c)) for c in columns) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{esc(caption)}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    provenance = any("hashes" in r for r in rows)  # each row names the records it averages
    writer.writerow([c.key for c in columns] + (["config_hashes"] if provenance else []))
    for r in rows:
        cells = [r.get(c.key) if not isinstance(r.get(c.key), float) else f"{r[c.key]:.6g}" for c in columns]
        writer.writerow(cells + ([" ".join(r.get("hashes", []))] if provenance else []))
    return buf.getvalue()


def write_table(out_dir: Path, name: str, title: str, rows: Sequence[dict[str, Any]], columns: Sequence[Column],
                records: Sequence[dict[str, Any]], notes: str = "", caption: str | None = None,
                csv_columns: Sequence[Column] | None = None) -> str:
    """Write ``<name>.md/.tex/.csv`` (the LaTeX caption defaults to title, notes and the records' stamp; the CSV
    has ``csv_columns`` when given, else the table's) and return the Markdown."""
    md = f"## {title}\n\n" + to_markdown(rows, columns) + (f"\n{notes}\n" if notes else "") + f"\n{stamp(records)}\n"
    if caption is None:
        caption = f"{title}. {notes} {stamp(records)}".replace("  ", " ")
    outputs = {"md": md, "tex": to_latex(rows, columns, caption), "csv": to_csv(rows, csv_columns or columns)}
    out_dir.mkdir(parents=True, exist_ok=True)  # every format rendered first: a failure writes none of them
    for suffix, text in outputs.items():
        (out_dir / f"{name}.{suffix}").write_text(text)
    return md


def stamp(records: Sequence[dict[str, Any]]) -> str:
    """A line naming the records a table was built from."""
    hashes = sorted(r["config_hash"] for r in records)
    commits = sorted({str(r.get("git_commit")) for r in records})
    return f"Built from {len(records)} run record(s): {', '.join(hashes)} (code: {', '.join(commits)})"


def pareto_front(rows: Sequence[dict[str, Any]], metric: str = "bleu") -> list[dict[str, Any]]:
    """The rows no other row beats on both size and quality (fewer or equal parameters and a higher or equal
    ``metric``, strictly better on one), sorted by parameters: the configurations worth choosing from a sweep."""
    scored = [r for r in rows if r.get(metric) is not None]

    def dominated(r: dict[str, Any]) -> bool:
        return any(o["params"] <= r["params"] and o[metric] >= r[metric]
                   and (o["params"] < r["params"] or o[metric] > r[metric]) for o in scored)

    return sorted((r for r in scored if not dominated(r)), key=lambda r: (r["params"], r["config"]))


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend (tables are built on headless machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path, source: str = "") -> Path:
    """Lay out, write and close a figure. ``source`` (the records' `stamp`) goes into the PNG's Description
    field; no software version or date is written, so the same records give the same bytes."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None, "Description": source or None})
    plt.close(fig)
    return path


# One (marker, colour) pair per point of a plot keyed by its legend: 12 markers x 10 colours, 60 distinct pairs.
POINT_MARKERS = "osD^vP*Xh<>p"


def point_style(i: int) -> dict[str, str]:
    """The marker and colour of the ``i``-th configuration of a plot whose legend names each point."""
    return {"marker": POINT_MARKERS[i % len(POINT_MARKERS)], "color": f"C{i % 10}"}


def compact_number(v: float) -> str:
    """``20k``, ``1.5M``, ``500``: a tick label short enough for a log axis."""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{unit}"
    return f"{v:.3g}"


def log_ticks(ax: Any, values: Sequence[float]) -> None:
    """Labelled x ticks of a log axis at 1-2-5, 1-3 or 1 per decade (fewer as the values span more decades), in
    compact form, minor ticks unlabelled: matplotlib labels the minor ticks of a short log axis, and they overlap.
    Values within one step of each other get their own two ends as ticks."""
    import math

    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    lo, hi = min(values), max(values)
    span = math.log10(hi / lo) if lo > 0 else 0.0
    steps = (1, 2, 5) if span <= 1.5 else (1, 3) if span <= 3 else (1,)
    view_lo, view_hi = ax.get_xlim()
    ticks = [s * 10.0**k for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 2)
             for s in steps if view_lo <= s * 10.0**k <= view_hi]
    if len(ticks) < 2:
        ticks = sorted({lo, hi})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.set_xticks(ticks, [compact_number(t) for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_quality_vs_params(rows: Sequence[dict[str, Any]], path: Path, metric: str = "bleu",
                           ylabel: str = "test BLEU (tokenized)", baseline: float | None = None,
                           baseline_label: str = "copy source", source: str = "") -> Path:
    """Quality against total parameters, one marker (shape and colour) per configuration, named in the legend
    beside the axes: text beside the points overlapped wherever configurations have about the same size and
    score."""
    scored = [r for r in rows if r.get(metric) is not None]
    fig, ax = pyplot().subplots(figsize=(7.5, max(3.8, 1.2 + 0.17 * len(rows))), dpi=120)
    front = pareto_front(rows, metric)
    if len(front) > 1:
        ax.step([r["params"] for r in front], [r[metric] for r in front], where="post", color="grey", linewidth=1,
                zorder=2, label="Pareto front")
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", linewidth=1, label=baseline_label)
    for i, r in enumerate(scored):
        ax.scatter([r["params"]], [r[metric]], s=30, zorder=3, label=r["config"], **point_style(i))
    ax.set_xscale("log")
    if scored:
        log_ticks(ax, [r["params"] for r in scored])
    ax.set_xlabel("total parameters (log scale)")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # nothing scored and no baseline: an empty plot, no legend
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, ncol=1 if len(rows) <= 22 else 2)
    return save_figure(fig, path, source)
