"""Records to tables: one row per record in a DataFrame, one row per configuration after a group-by (mean and
std over seeds), then Markdown, LaTeX and CSV text in the project's fixed format. `configurations` is that path
(with the replica check) in one call; every table's rows start there.

Every output is stamped with the config hashes of the records it was built from, and is byte-identical
when rebuilt from the same records (rows are sorted, floats formatted, no timestamps). pandas' own
``to_markdown`` pads columns and ``to_latex`` needs jinja2 and writes its own layout, so the text is emitted
here from a frame of formatted cells; the CSV goes through ``DataFrame.to_csv``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from shapeshifter.experiment.records import record_settings

Field = str | Callable[[dict[str, Any]], Any]  # a dotted path into a record, or a function of the record


@dataclass(frozen=True)
class Column:
    """A table column: the row key it shows, its header, and how a present value is written (a format spec such
    as ``.2f``, or a function)."""

    key: str
    header: str
    fmt: str | Callable[[Any], str] = ""

    def text(self, value: Any) -> str:
        return format(value, self.fmt) if isinstance(self.fmt, str) else self.fmt(value)


# the size columns every table shows
PARAMS_COLUMN = Column("params", "params", ",")
REDUCTION_COLUMN = Column("reduction", "fewer params (×)", ".1f")


# -- records -> DataFrame -> one row per configuration -----------------------------------------------------------
def records_frame(records: Sequence[dict[str, Any]], **fields: Field) -> pd.DataFrame:
    """One row per record: its ``config_hash`` and each of ``fields``, a dotted path into the record
    (``metrics.test.sacrebleu``, flattened by `pandas.json_normalize`; missing where a record lacks it) or a
    function of the record."""
    if not records:  # no rows, but the columns a group-by needs
        return pd.DataFrame(columns=["config_hash", *fields])
    flat = pd.json_normalize(list(records))
    frame = pd.DataFrame({"config_hash": flat["config_hash"]})
    for name, field in fields.items():
        if callable(field):
            frame[name] = pd.Series([field(rec) for rec in records], index=flat.index)
        else:
            frame[name] = flat[field] if field in flat else float("nan")
    return frame


def by_configuration(frame: pd.DataFrame, by: str | list[str], first: Sequence[str] = (), mean: Sequence[str] = (),
                     mean_std: Sequence[str] = (), mean_of_all: Sequence[str] = (), sort_hashes: bool = True,
                     **other: tuple[str, Callable[[pd.Series], Any]]) -> pd.DataFrame:
    """One row per configuration (the ``by`` columns), in first-seen order: ``seeds`` (records averaged),
    ``hashes`` (their config hashes, sorted unless ``sort_hashes`` is false), the first record's ``first``
    columns, the mean over the seeds that have a value of each ``mean`` column, the same plus the sample std
    (``<column>_std``, missing for one value) of each ``mean_std`` column, the mean of each ``mean_of_all``
    column only where every seed has one, and ``other`` named aggregations (``name=(column, function)``)."""
    groups = frame.groupby(by, sort=False, dropna=False)
    out = groups.agg(seeds=("config_hash", "size"),
                     **{c: (c, lambda s: s.iloc[0]) for c in first},
                     **{c: (c, "mean") for c in (*mean, *mean_std)},
                     **{f"{c}_std": (c, "std") for c in mean_std},
                     **{c: (c, lambda s: s.mean(skipna=False)) for c in mean_of_all}, **other)
    out["hashes"] = groups["config_hash"].apply(sorted if sort_hashes else list)
    return out.reset_index()


def configurations(records: Sequence[dict[str, Any]], by: str | list[str], fields: dict[str, Field],
                   row: Callable[[Any], str] = str, **how: Any) -> pd.DataFrame:
    """Records to a table's rows, the path every table takes: one row per record (`records_frame` of
    ``fields``), the replica check of each configuration (`check_seed_replicas`, the row named ``row(key)``),
    then one row per configuration (`by_configuration`, told ``how`` to aggregate each column)."""
    frame = records_frame(records, **fields)
    for key, index in frame.groupby(by, sort=False, dropna=False).indices.items():
        check_seed_replicas([records[i] for i in index], row(key))
    return by_configuration(frame, by, **how)


def to_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as plain dicts of Python values, ``None`` where a value is missing."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def check_seed_replicas(records: Sequence[dict[str, Any]], row: str) -> None:
    """Records averaged into one row must differ only in their seed (and output paths): a row that silently
    mixed, say, two learning rates or repetition counts would report a mean ± std of different experiments."""
    def settings(rec: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in record_settings(rec).items() if k != "seed"}
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


def pareto_front(rows: Sequence[dict[str, Any]], metric: str = "bleu") -> list[dict[str, Any]]:
    """The rows no other row beats on both size and quality (fewer or equal parameters and a higher or equal
    ``metric``, strictly better on one), sorted by parameters: the configurations worth choosing from a sweep."""
    scored = [r for r in rows if r.get(metric) is not None]

    def dominated(r: dict[str, Any]) -> bool:
        return any(o["params"] <= r["params"] and o[metric] >= r[metric]
                   and (o["params"] < r["params"] or o[metric] > r[metric]) for o in scored)

    return sorted((r for r in scored if not dominated(r)), key=lambda r: (r["params"], r["config"]))


# -- rows -> text --------------------------------------------------------------------------------------------------
def _cell(row: dict[str, Any], col: Column) -> str:
    value = row.get(col.key)
    text = col.text(value) if value is not None else "–"
    std = row.get(f"{col.key}_std")
    return f"{text} ± {std:.2f}" if std is not None else text


def cells(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> pd.DataFrame:
    """The table as text: one formatted cell per row and column (``value ± std`` where a row has a std,
    ``–`` where it has no value), headed by the columns' headers."""
    return pd.DataFrame([[_cell(r, c) for c in columns] for r in rows], columns=[c.header for c in columns],
                        dtype=object)


def to_markdown(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    text = cells(rows, columns)
    lines = ["| " + " | ".join(text.columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(line) + " |" for line in text.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def to_latex(rows: Sequence[dict[str, Any]], columns: Sequence[Column], caption: str) -> str:
    def esc(text: str) -> str:
        return text.replace("_", r"\_").replace("%", r"\%").replace("×", r"$\times$").replace("±", r"$\pm$")

    text = cells(rows, columns).map(esc)
    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "r" * (len(columns) - 1) + "}",
             r"\toprule", " & ".join(esc(h) for h in text.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(line) + r" \\" for line in text.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{esc(caption)}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _csv_value(value: Any) -> Any:
    return "" if value is None else f"{value:.6g}" if isinstance(value, float) else value


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """The raw values (floats to 6 significant digits) under the columns' keys, and when the rows name the
    records they average, their hashes last."""
    data = pd.DataFrame([[_csv_value(r.get(c.key)) for c in columns] for r in rows],
                        columns=[c.key for c in columns], dtype=object)
    if any("hashes" in r for r in rows):  # each row names the records it averages
        data["config_hashes"] = [" ".join(r.get("hashes", [])) for r in rows]
    return data.to_csv(index=False, lineterminator="\n")


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


STAMP_PREFIX = "Built from "  # how `stamp`'s line begins (pages.py leaves it out of the copies it makes)


def stamp(records: Sequence[dict[str, Any]]) -> str:
    """A line naming the records a table was built from."""
    hashes = sorted(r["config_hash"] for r in records)
    commits = sorted({str(r.get("git_commit")) for r in records})
    return f"{STAMP_PREFIX}{len(records)} run record(s): {', '.join(hashes)} (code: {', '.join(commits)})"
